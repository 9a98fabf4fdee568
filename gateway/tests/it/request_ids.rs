//! Every call's id: returned in `x-request-id`, on the call's log line and
//! in its audit records (a batch's record carries its stream's).

use lienthong_proto::v1::{self, exchange_service_client::ExchangeServiceClient};

use crate::support::{LOG_END, connect_as, id_of, serve_args, spawn_serve_logged, wait_for};

fn verify(purpose: &str, pid: &str) -> v1::VerifyIdentityRequest {
    v1::VerifyIdentityRequest {
        purpose: purpose.into(),
        claim: Some(v1::IdentityClaim {
            reference: "r".into(),
            pid: pid.into(),
            ..Default::default()
        }),
        r#match: None,
    }
}

#[tokio::test]
async fn each_call_has_an_id_returned_logged_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (mut serving, addr, log) = spawn_serve_logged(&serve_args(
        data,
        &["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    ))
    .await;
    let sample = std::fs::read_to_string(dir.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let pid = person["pid"].as_str().unwrap();
    let pki = lienthong_gateway::tls::PkiLayout::under(dir.path());
    let mut bank = ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await);

    // The caller's own id is kept; a refusal carries its id too.
    let mut mine = tonic::Request::new(verify("KYC_ONBOARDING", pid));
    mine.metadata_mut()
        .insert("x-request-id", "bank-ref.0001".parse().unwrap());
    let answered = bank.verify_identity(mine).await.unwrap();
    assert_eq!(id_of(answered.metadata()), "bank-ref.0001");
    let refused = bank
        .verify_identity(verify("MARKETING", pid))
        .await
        .unwrap_err();
    let given = id_of(refused.metadata());
    assert!(uuid::Uuid::parse_str(&given).is_ok(), "{given}");
    // A batch's claims share the stream's id.
    let batch = v1::VerifyBatchRequest {
        batch_id: "b".into(),
        purpose: "KYC_ONBOARDING".into(),
        claims: (0..3).map(|_| verify("", pid).claim.unwrap()).collect(),
        ..Default::default()
    };
    let mut stream = tonic::Request::new(tokio_stream::iter(vec![batch]));
    stream
        .metadata_mut()
        .insert("x-request-id", "bank-batch-7".parse().unwrap());
    let answers = bank.verify_batch(stream).await.unwrap();
    assert_eq!(id_of(answers.metadata()), "bank-batch-7");
    let mut answers = answers.into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 3);

    // Stop, so the log and the audit are complete.
    crate::support::terminate(&mut serving, std::time::Duration::from_secs(30)).await;
    wait_for(std::time::Duration::from_secs(10), "the log closes", || {
        log.lock().unwrap().last().map(String::as_str) == Some(LOG_END)
    })
    .await;
    let recorded: Vec<(String, String, String)> =
        lienthong_gateway::audit::records(&dir.path().join("audit"))
            .unwrap()
            .into_iter()
            .map(|r| (r.entry.trace_id, r.entry.operation, r.entry.outcome))
            .collect();
    let row =
        |id: &str, op: &str, outcome: &str| (id.to_owned(), op.to_owned(), outcome.to_owned());
    assert_eq!(
        recorded,
        [
            row("bank-ref.0001", "verify_identity", "OK"),
            row(&given, "verify_identity", "PURPOSE_NOT_PERMITTED"),
            // The batch of three claims: one record.
            row("bank-batch-7", "verify_batch", "OK"),
        ]
    );
    // One log line a call, with its id.
    let lines = log.lock().unwrap().clone();
    for (id, n) in [
        ("bank-ref.0001", 1),
        (given.as_str(), 1),
        ("bank-batch-7", 1),
    ] {
        let with_id = lines
            .iter()
            .filter(|l| l.contains(&format!("request_id={id}")))
            .count();
        assert_eq!(with_id, n, "{id}: {lines:#?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request_id=bank-batch-7") && l.contains("claims=3")),
        "{lines:#?}"
    );
}
