//! The server's limits against the real gateway: an oversized message and
//! an overload each get their status, while other callers are served; and
//! every limit set on the real binary by flag, environment or file.

use std::time::Duration;

use lienthong_gateway::api::ServerLimits;
use lienthong_proto::v1;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;

use crate::support::{
    BIN, GatedAdapter, TestGateway, connect_as, output_within, reason, run_bin, serve_args,
    spawn_serve_with,
};

fn verify(pid: &str) -> v1::VerifyIdentityRequest {
    v1::VerifyIdentityRequest {
        purpose: "KYC_ONBOARDING".into(),
        claim: Some(v1::IdentityClaim {
            reference: "r".into(),
            pid: pid.into(),
            ..Default::default()
        }),
        r#match: None,
    }
}

fn batch(purpose: &str, pid: &str, claims: usize, name_len: usize) -> v1::VerifyBatchRequest {
    v1::VerifyBatchRequest {
        batch_id: "b".into(),
        purpose: purpose.into(),
        claims: (0..claims)
            .map(|i| v1::IdentityClaim {
                reference: format!("c{i}"),
                pid: pid.into(),
                full_name: Some("A".repeat(name_len)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_caller_is_still_served() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_message_bytes: 64 * 1024,
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let mut bank = gw.client("bank").await;
    // 100 claims with 1,000-letter names: about 100 KB.
    let too_big = bank
        .verify_batch(tokio_stream::iter(vec![batch(
            "KYC_ONBOARDING",
            &me,
            100,
            1_000,
        )]))
        .await;
    let status = match too_big {
        Ok(answers) => answers.into_inner().message().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    // The same client, the same connection, a message within the limit.
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch(
            "KYC_ONBOARDING",
            &me,
            10,
            10,
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 10);
    bank.verify_identity(verify(&me)).await.unwrap();
}

#[tokio::test]
async fn a_batch_over_the_configured_size_is_refused_with_its_limit() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_batch_claims: 5,
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let mut bank = gw.client("bank").await;
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch(
            "KYC_ONBOARDING",
            &me,
            5,
            10,
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 5);
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch(
            "KYC_ONBOARDING",
            &me,
            6,
            10,
        )]))
        .await
        .unwrap()
        .into_inner();
    let refused = answers.message().await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::InvalidArgument, "BATCH_TOO_LARGE")
    );
    assert!(refused.message().contains('5'), "{refused:?}");
}

#[tokio::test]
async fn over_the_in_flight_limit_a_call_is_shed_at_once_and_others_resume() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_in_flight: 1,
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    // A verification stream holds the only permit while it is open.
    let (send, batches) = tokio::sync::mpsc::channel(1);
    let mut telco = gw.client("telco").await;
    send.send(batch("SUBSCRIBER_VERIFICATION", &me, 5, 10))
        .await
        .unwrap();
    let mut answers = telco
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 5);

    // Meanwhile another agency is shed, at once, with a retry hint.
    let mut bank = gw.client("bank").await;
    let started = std::time::Instant::now();
    let shed = bank.verify_identity(verify(&me)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "not queued");
    assert_eq!(
        (shed.code(), reason(&shed).as_str()),
        (Code::Unavailable, "OVERLOADED")
    );
    use tonic_types::StatusExt;
    assert!(shed.get_details_retry_info().is_some(), "{shed:?}");
    // Health probes are not counted.
    let health = HealthClient::new(gw.channel("bank").await)
        .check(HealthCheckRequest {
            service: "lienthong.v1.ExchangeService".into(),
        })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1, "SERVING");
    // The stream goes on being served, then ends; the permit comes back.
    send.send(batch("SUBSCRIBER_VERIFICATION", &me, 3, 10))
        .await
        .unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 3);
    drop(send);
    assert!(answers.message().await.unwrap().is_none());
    // The permit returns once the stream's last frame is sent, a moment
    // after the client has read it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match bank.verify_identity(verify(&me)).await {
            Ok(_) => break,
            Err(s) if reason(&s) == "OVERLOADED" && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(s) => panic!("not admitted again: {s:?}"),
        }
    }
}

/// Every limit set on the real binary, through each way of setting it (a
/// flag, an environment variable, the configuration file), each refused with
/// its status; the bound on streams per connection; a stream that sends
/// nothing holds its place in flight.
#[tokio::test]
async fn the_binary_enforces_each_limit_it_is_given_by_flag_environment_or_file() {
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let (ok, out) = run_bin(&["certs", "--data-dir", data_s], Duration::from_secs(120));
    assert!(ok, "{out}");
    std::fs::write(data.path().join("lienthong.toml"), "max_batch_claims = 3\n").unwrap();
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    // An adapter that never answers: a sector look-up runs into the
    // gateway's deadline, not the sector's.
    let banking = GatedAdapter::start(&pki, "banking").await;
    let endpoints = format!("banking=https://{}", banking.addr);
    let flags = [
        "--max-message-bytes",
        "4096",
        "--max-streams-per-connection",
        "2",
        // Each agency may hold them all here (the share is another test's).
        "--max-in-flight-per-agency",
        "3",
        "--sector-endpoints",
        &endpoints,
        "--sector-deadline-ms",
        "60000",
    ];
    let env = [
        ("LIENTHONG_MAX_IN_FLIGHT", "3"),
        ("LIENTHONG_DEADLINE_MS", "1000"),
        // Longer than this test: no connection of it is closed for idling
        // (the closing itself is tls.rs's test).
        ("LIENTHONG_CONNECTION_IDLE_MS", "600000"),
    ];
    let mut config = std::process::Command::new(BIN);
    config
        .args(["config", "--data-dir", data_s])
        .args(flags)
        .envs(env);
    let shown =
        String::from_utf8(output_within(&mut config, Duration::from_secs(60)).stdout).unwrap();
    for (key, from) in [
        ("max_message_bytes = 4096", "# flag"),
        ("max_streams_per_connection = 2", "# flag"),
        ("max_in_flight = 3", "# environment"),
        ("deadline_ms = 1000", "# environment"),
        ("connection_idle_ms = 600000", "# environment"),
        ("max_batch_claims = 3", "# file"),
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(key) && l.trim_end().ends_with(from)),
            "{key} {from}:\n{shown}"
        );
    }
    let mut args = serve_args(
        data_s,
        &["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    );
    args.extend(flags);
    let (_serving, addr, _log) = spawn_serve_with(&args, &env).await;
    let sample = std::fs::read_to_string(data.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let me = person["pid"].as_str().unwrap().to_owned();
    let mut bank = ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await);

    // --max-message-bytes: a message over it is OUT_OF_RANGE; the same
    // connection then goes on.
    let mut big = verify(&me);
    big.claim.as_mut().unwrap().full_name = Some("A".repeat(8_000));
    let refused = bank.verify_identity(big).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    bank.verify_identity(verify(&me)).await.unwrap();

    // max_batch_claims (from the file): 3 claims pass, 4 are BATCH_TOO_LARGE.
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch("KYC_ONBOARDING", &me, 3, 4)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 3);
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch("KYC_ONBOARDING", &me, 4, 4)]))
        .await
        .unwrap()
        .into_inner();
    let refused = answers.message().await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::InvalidArgument, "BATCH_TOO_LARGE")
    );
    assert!(refused.message().contains('3'), "{refused:?}");

    // LIENTHONG_DEADLINE_MS: a call its adapter never answers is ended at
    // the gateway's deadline.
    let started = std::time::Instant::now();
    let late = bank
        .query_sector(v1::QuerySectorRequest {
            purpose: "KYC_ONBOARDING".into(),
            pid: me.clone(),
            sector: "banking".into(),
            query: "kyc_status".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (late.code(), reason(&late).as_str()),
        (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
        "{late:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not the sector's deadline"
    );

    // --max-streams-per-connection 2: a telecom job's connection holds two
    // open streams; its third call waits for one of them to end...
    let telco_channel = connect_as(addr, &pki, "viettel").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (send, batches) = tokio::sync::mpsc::channel(1);
        send.send(batch("SUBSCRIBER_VERIFICATION", &me, 1, 4))
            .await
            .unwrap();
        let mut answers = ExchangeServiceClient::new(telco_channel.clone())
            .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 1);
        held.push((send, answers));
    }
    let mut third = ExchangeServiceClient::new(telco_channel.clone());
    let mut third_call = verify(&me);
    third_call.purpose = "SUBSCRIBER_VERIFICATION".into();
    let third = tokio::spawn(async move { third.verify_identity(third_call).await });
    // ...while another connection is served meanwhile (2 of 3 in flight).
    bank.verify_identity(verify(&me)).await.unwrap();
    // A stream that sends nothing holds its place: three in flight, so the
    // LIENTHONG_MAX_IN_FLIGHT bound sheds the next call at once.
    let (_silent_send, silent) = tokio::sync::mpsc::channel::<v1::VerifyBatchRequest>(1);
    let _silent = bank
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(silent))
        .await
        .unwrap();
    let mut other = ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await);
    let shed = other.verify_identity(verify(&me)).await.unwrap_err();
    assert_eq!(
        (shed.code(), reason(&shed).as_str()),
        (Code::Unavailable, "OVERLOADED"),
        "{shed:?}"
    );
    assert!(
        !third.is_finished(),
        "the third stream on one connection waits"
    );
    // One of the job's streams ends: its third call goes out and is answered.
    let (send, mut answers) = held.pop().unwrap();
    drop(send);
    assert!(answers.message().await.unwrap().is_none());
    tokio::time::timeout(Duration::from_secs(20), third)
        .await
        .expect("the waiting call goes out once a stream ends")
        .unwrap()
        .expect("and is answered");
}

#[tokio::test]
async fn a_certificate_for_no_agency_gets_health_and_takes_no_permit() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_in_flight: 1,
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    // A valid certificate of the gateway's CA, for nobody in the policy.
    lienthong_gateway::tls::ensure_pki(&gw.pki, ["stranger"]).unwrap();
    let stranger = gw.channel("stranger").await;
    // The only permit is held by an agency's open stream.
    let (send, batches) = tokio::sync::mpsc::channel(1);
    send.send(batch("SUBSCRIBER_VERIFICATION", &me, 1, 4))
        .await
        .unwrap();
    let mut answers = gw
        .client("telco")
        .await
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 1);
    // The stranger is refused for who it is, not shed for want of a permit
    // (it never asked for one), and its refusal is audited.
    let refused = ExchangeServiceClient::new(stranger.clone())
        .verify_identity(verify(&me))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::PermissionDenied, "AGENCY_UNKNOWN"),
        "{refused:?}"
    );
    let audited = lienthong_gateway::audit::records(&gw.audit_path()).unwrap();
    assert!(
        audited
            .iter()
            .any(|r| r.entry.agency == "stranger" && r.entry.outcome == "AGENCY_UNKNOWN"),
        "the refusal is in the audit log"
    );
    // Health it may ask.
    let health = HealthClient::new(stranger)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1, "SERVING");
    drop(send);
}

#[tokio::test]
async fn no_agency_holds_more_than_its_share_of_the_calls_in_flight() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_in_flight: 4,
        max_in_flight_per_agency: 2,
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    // A telecom job holds two streams open that send nothing more: its share.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (send, batches) = tokio::sync::mpsc::channel(1);
        send.send(batch("SUBSCRIBER_VERIFICATION", &me, 1, 4))
            .await
            .unwrap();
        let mut answers = gw
            .client("telco")
            .await
            .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 1);
        held.push((send, answers));
    }
    // Its third call is shed, with a retry hint, though permits are free...
    let third = gw
        .client("telco")
        .await
        .verify_batch(tokio_stream::iter(vec![batch(
            "SUBSCRIBER_VERIFICATION",
            &me,
            1,
            4,
        )]))
        .await;
    let shed = match third {
        Ok(answers) => answers.into_inner().message().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(
        (shed.code(), reason(&shed).as_str()),
        (Code::Unavailable, "OVERLOADED"),
        "{shed:?}"
    );
    assert!(shed.message().contains("its share of 2"), "{shed:?}");
    use tonic_types::StatusExt;
    assert!(shed.get_details_retry_info().is_some());
    // ...which the other agencies have: a bank is served meanwhile.
    gw.client("bank")
        .await
        .verify_identity(verify(&me))
        .await
        .unwrap();
    // One of its streams ends: its share has room again.
    let (send, mut answers) = held.pop().unwrap();
    drop(send);
    assert!(answers.message().await.unwrap().is_none());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = gw
            .client("telco")
            .await
            .verify_batch(tokio_stream::iter(vec![batch(
                "SUBSCRIBER_VERIFICATION",
                &me,
                1,
                4,
            )]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await;
        match again {
            Ok(Some(answer)) => {
                assert_eq!(answer.results.len(), 1);
                break;
            }
            // The place comes back once the stream's last frame is sent, a
            // moment after the client has read it.
            Err(s) if reason(&s) == "OVERLOADED" && std::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!("not admitted again: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_stream_that_sends_nothing_is_ended_and_gives_its_place_back() {
    let gw = TestGateway::with_limits(ServerLimits {
        max_in_flight: 1,
        stream_idle: Duration::from_millis(500),
        ..ServerLimits::default()
    })
    .await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let (send, batches) = tokio::sync::mpsc::channel(1);
    send.send(batch("SUBSCRIBER_VERIFICATION", &me, 1, 4))
        .await
        .unwrap();
    let mut answers = gw
        .client("telco")
        .await
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 1);
    // Then nothing: the gateway ends the stream, saying why.
    let ended = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("an idle stream is ended")
        .unwrap_err();
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::DeadlineExceeded, "STREAM_IDLE"),
        "{ended:?}"
    );
    // Its place in flight came back: another agency is admitted.
    let mut bank = gw.client("bank").await;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match bank.verify_identity(verify(&me)).await {
            Ok(_) => break,
            Err(s) if reason(&s) == "OVERLOADED" && std::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(s) => panic!("not admitted: {s:?}"),
        }
    }
    drop(send);
}
