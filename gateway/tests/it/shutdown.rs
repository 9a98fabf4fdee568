//! A graceful stop, through the real binary: SIGTERM turns health
//! NOT_SERVING (the gateway as a whole too) and refuses new connections
//! while a call in flight is answered; under load, every write it
//! acknowledged has its event published and its audit record signed before
//! the process exits, no call fails before the signal, and nothing is left
//! half-done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lienthong_gateway::audit::records;
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::population::Population;
use lienthong_proto::v1;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use rusqlite::{Connection, OpenFlags};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::amqp::{EventTap, unique};
use crate::registry::move_to;
use crate::support::{
    Failures, GatedAdapter, connect, connect_as, run_bin, serve_args, signal, spawn_serve, wait_for,
};

/// Runs a `lienthong` subcommand on `data`: success and what it printed.
fn lienthong(args: &[&str], data: &str) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend(["--data-dir", data]);
    run_bin(&all, Duration::from_secs(120))
}

#[tokio::test]
async fn sigterm_turns_health_not_serving_refuses_new_connections_and_answers_the_call_in_flight() {
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    // The PKI first, so a test adapter can serve with the banking
    // adapter's certificate.
    let (ok, out) = lienthong(&["certs"], data_s);
    assert!(ok, "{out}");
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    let banking = GatedAdapter::start(&pki, "banking").await;
    let endpoints = format!("banking=https://{}", banking.addr);
    let (mut child, addr) = spawn_serve(&serve_args(
        data_s,
        &[
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "--sector-endpoints",
            &endpoints,
            // The adapter holds the look-up as long as the test needs.
            "--sector-deadline-ms",
            "60000",
            // Longer than every wait below together (3 × 2.5 s).
            "--shutdown-drain-ms",
            "10000",
        ],
    ))
    .await;
    let channel = connect_as(addr, &pki, "vietcombank").await;
    let mut health = HealthClient::new(channel.clone());
    let mut status = async |service: &str| {
        health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?} on the open connection: {s:?}"))
            .into_inner()
            .status()
    };
    for service in ["", "lienthong.v1.ExchangeService"] {
        assert_eq!(status(service).await, ServingStatus::Serving, "{service:?}");
    }
    let sample = std::fs::read_to_string(data.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let mut bank = ExchangeServiceClient::new(channel.clone());
    let call = tokio::spawn(async move {
        bank.query_sector(v1::QuerySectorRequest {
            purpose: "KYC_ONBOARDING".into(),
            pid: person["pid"].as_str().unwrap().into(),
            sector: "banking".into(),
            query: "kyc_status".into(),
        })
        .await
    });
    wait_for(
        Duration::from_secs(20),
        "the look-up at the adapter",
        || banking.arrived() == 1,
    )
    .await;

    signal(&child, "-TERM");
    // On the connection already open, the gateway as a whole and each of
    // its services say they no longer serve.
    for service in ["", "lienthong.v1.ExchangeService"] {
        let until = tokio::time::Instant::now() + Duration::from_millis(2_500);
        while status(service).await != ServingStatus::NotServing {
            assert!(
                tokio::time::Instant::now() < until,
                "{service:?} still SERVING 2.5 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A new connection is refused.
    let until = tokio::time::Instant::now() + Duration::from_millis(2_500);
    while connect(
        addr,
        &pki.ca_cert(),
        Some((
            &pki.agency_cert("vietcombank"),
            &pki.agency_key("vietcombank"),
        )),
    )
    .await
    .is_ok()
    {
        assert!(
            tokio::time::Instant::now() < until,
            "new connections still accepted 2.5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!call.is_finished(), "the call waits for its adapter");
    // The call that was in flight is answered.
    banking.open();
    let answer = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the call in flight is answered within the grace period")
        .unwrap()
        .expect("the call in flight answers OK")
        .into_inner();
    assert!(
        matches!(
            answer.answer.and_then(|a| a.answer),
            Some(v1::sector_answer::Answer::KycStatus(v1::KycStatus {
                verified_accounts: 1,
                ..
            }))
        ),
        "the adapter's answer"
    );
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("the gateway exits once its calls are answered")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn sigterm_under_load_publishes_every_acknowledged_event_and_closes_the_audit() {
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let args = serve_args(
        data_s,
        &[
            "--seed",
            "6",
            "--events-exchange",
            &exchange,
            "--shutdown-drain-ms",
            "1000",
        ],
    );
    let (mut child, addr) = spawn_serve(&args).await;
    let people: Arc<Vec<u64>> = Arc::new(
        Population::new(6, 2_000)
            .unwrap()
            .iter()
            .filter(|c| c.life_status() != LifeStatus::Deceased)
            .map(|c| c.pid)
            .collect(),
    );
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let failures = Failures::default();
    let mut writers = Vec::new();
    for w in 0..8_u64 {
        let channel = connect_as(addr, &pki, "residence-police").await;
        let (people, acked, failures) = (people.clone(), acked.clone(), failures.clone());
        writers.push(tokio::spawn(async move {
            let mut client = RegistryServiceClient::new(channel);
            let mut i = w;
            loop {
                let pid = people[(i as usize) % people.len()];
                match client
                    .change_residence(move_to(format!("t-{i}"), pid, i))
                    .await
                {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push(r.into_inner().receipt.unwrap().event_id),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    // Refused or cut off by the stop: the write may or may
                    // not have happened, and the client was not told it did.
                    Err(s) => {
                        failures.record(s);
                        return;
                    }
                }
                i += 8;
            }
        }));
    }
    wait_for(Duration::from_secs(60), "500 acknowledged writes", || {
        acked.lock().unwrap().len() >= 500
    })
    .await;
    // The gateway stops within its grace period.
    let signalled = std::time::Instant::now();
    let status = crate::support::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    for w in writers {
        w.await.unwrap();
    }
    // Open connections are served for the drain (1 s) after the signal, and
    // only then told to go away: no call fails before, and after it a
    // stopping server refuses (UNAVAILABLE) or cuts (CANCELLED). One that
    // aborted the calls it had would fail here.
    let drained = signalled + Duration::from_secs(1);
    failures.assert_only_after(drained, "the drain after SIGTERM", |s| {
        matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
    });
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();

    // Every acknowledged write's event reached the broker before the exit:
    // no restart is needed to deliver them.
    tap.wait_until(
        Duration::from_secs(10),
        "every acknowledged write's event",
        |r| {
            let got: BTreeSet<&str> = r.iter().filter_map(|m| m.message_id.as_deref()).collect();
            acked.iter().all(|id| got.contains(id.as_str()))
        },
    )
    .await;
    // Nothing half-done: every committed event is marked published, and
    // every committed write has its audit record, all signed.
    let (ok, outbox) = lienthong(&["outbox"], data_s);
    assert!(ok && outbox.contains("waiting for broker  0\n"), "{outbox}");
    let registry = data.path().join("registry.db");
    let committed = count(&registry, "SELECT count(*) FROM outbox");
    assert!(committed >= acked.len() as i64);
    let log = records(&data.path().join("audit")).unwrap();
    let written = log
        .iter()
        .filter(|r| r.entry.operation == "change_residence" && r.entry.outcome == "OK")
        .count();
    assert_eq!(
        written as i64, committed,
        "one audit record per committed write"
    );
    let (ok, verified) = lienthong(&["audit", "verify"], data_s);
    assert!(ok, "{verified}");
    assert!(
        verified.contains(&format!(
            "the last checkpoint covers record {}\n",
            log.len()
        )),
        "the stop signed the last checkpoint: {verified}"
    );
    tap.delete().await;
}

#[tokio::test]
async fn a_stream_still_open_is_cut_after_the_grace_period_and_the_audit_closes() {
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let (mut child, addr, log) = crate::support::spawn_serve_logged(&serve_args(
        data_s,
        &[
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "--shutdown-grace-ms",
            "500",
            "--shutdown-drain-ms",
            "0",
        ],
    ))
    .await;
    let sample = std::fs::read_to_string(data.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    let mut telco = lienthong_proto::v1::exchange_service_client::ExchangeServiceClient::new(
        connect_as(addr, &pki, "viettel").await,
    );
    // A verification job's stream: one batch answered, and it stays open.
    let (send, batches) = tokio::sync::mpsc::channel(1);
    send.send(lienthong_proto::v1::VerifyBatchRequest {
        batch_id: "b".into(),
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        claims: vec![lienthong_proto::v1::IdentityClaim {
            reference: "r".into(),
            pid: person["pid"].as_str().unwrap().into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answers = telco
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());

    // The open stream does not hold the gateway past its grace period.
    let status = crate::support::terminate(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("grace period is over")),
        "{:#?}",
        log.lock().unwrap()
    );
    drop(send);
    let recorded = records(&data.path().join("audit")).unwrap().len();
    assert_eq!(recorded, 1, "the stream's one claim");
    let (ok, verified) = lienthong(&["audit", "verify"], data_s);
    assert!(ok, "{verified}");
    assert!(
        verified.contains("the last checkpoint covers record 1\n"),
        "closed with a signed checkpoint although a handle was still held: {verified}"
    );
}
