//! The server's limits against the real gateway: an oversized message and
//! an overload each get their status, while other callers are served.

use std::time::Duration;

use lienthong_gateway::api::ServerLimits;
use lienthong_proto::v1;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{TestGateway, reason};

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
