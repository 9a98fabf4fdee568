//! Gateways sharing one store, as replicas do: each one's verification
//! projection follows the others' writes through the outbox, at once for a
//! caller that names its write's `seq` (`x-lienthong-min-seq`), within the
//! follow interval otherwise.

use std::time::Duration;

use lienthong_proto::v1;
use tokio_stream::StreamExt;
use tonic::{Code, Request};

use crate::exchange::kyc;
use crate::registry::residence;
use crate::support::{TestGateway, bad_fields, reason};

const MIN_SEQ: &str = "x-lienthong-min-seq";
const SEQ: &str = "x-lienthong-seq";

/// A claim of `name` for citizen `pid`.
fn named(pid: u64, name: &str) -> v1::IdentityClaim {
    v1::IdentityClaim {
        reference: "r".into(),
        pid: format!("{pid:012}"),
        full_name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// `message` asking for a verification no older than `seq` (as sent).
fn at_least<T>(message: T, seq: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(MIN_SEQ, seq.parse().unwrap());
    request
}

/// The `x-lienthong-seq` an answer names.
fn seq_of(metadata: &tonic::metadata::MetadataMap) -> u64 {
    metadata
        .get(SEQ)
        .expect("the answer names its seq")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A name change through `gw`'s registry service; its receipt's seq.
async fn rename(gw: &TestGateway, id: &str, pid: u64, name: &str) -> u64 {
    gw.registry("civil")
        .await
        .change_name(v1::ChangeNameRequest {
            request_id: id.into(),
            pid: format!("{pid:012}"),
            full_name: name.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .seq
}

#[tokio::test]
async fn a_write_through_one_gateway_is_seen_through_another_that_is_asked_for_its_seq() {
    let a = TestGateway::start().await;
    // b reads the outbox only when asked (or when it writes itself).
    let b = TestGateway::beside(&a, Duration::from_secs(3_600)).await;
    let person = a.find(|c| c.status == 0 && !c.female);
    let mut bank = b.client("bank").await;

    let seq = rename(&a, "n-1", person.pid, "Lê Văn Thu").await;
    // Without the header, b answers from what it holds: the old name.
    let answer = bank
        .verify_identity(kyc(named(person.pid, "Lê Văn Thu")))
        .await
        .unwrap();
    assert!(seq_of(answer.metadata()) < seq);
    let verification = answer.into_inner().verification.unwrap();
    assert_eq!(verification.verdict(), v1::Verdict::Mismatch);

    // Asked for the write's seq, b catches up first.
    let answer = bank
        .verify_identity(at_least(
            kyc(named(person.pid, "Lê Văn Thu")),
            &seq.to_string(),
        ))
        .await
        .unwrap();
    assert!(seq_of(answer.metadata()) >= seq);
    let verification = answer.into_inner().verification.unwrap();
    assert_eq!(verification.verdict(), v1::Verdict::Match);

    // A batch stream the same way: the header is the stream's.
    let seq = rename(&a, "n-2", person.pid, "Lê Văn Thuận").await;
    let batch = v1::VerifyBatchRequest {
        batch_id: "b-1".into(),
        purpose: "KYC_ONBOARDING".into(),
        r#match: None,
        claims: vec![named(person.pid, "Lê Văn Thuận")],
    };
    let answers = bank
        .verify_batch(at_least(tokio_stream::iter(vec![batch]), &seq.to_string()))
        .await
        .unwrap();
    assert!(seq_of(answers.metadata()) >= seq);
    let answer = answers.into_inner().next().await.unwrap().unwrap();
    let Some(v1::claim_result::Outcome::Verification(v)) = &answer.results[0].outcome else {
        panic!("{answer:?}");
    };
    assert_eq!(v.verdict(), v1::Verdict::Match);

    // A seq the store has not committed, or no number at all: refused,
    // naming the header.
    for bad in [(seq + 1_000).to_string(), "soon".to_owned()] {
        let refused = bank
            .verify_identity(at_least(kyc(named(person.pid, "x")), &bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(reason(&refused), "ARGUMENT_INVALID");
        assert_eq!(bad_fields(&refused), [MIN_SEQ]);
        let batch = v1::VerifyBatchRequest {
            batch_id: "b-2".into(),
            purpose: "KYC_ONBOARDING".into(),
            r#match: None,
            claims: vec![named(person.pid, "x")],
        };
        let refused = bank
            .verify_batch(at_least(tokio_stream::iter(vec![batch]), &bad))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "ARGUMENT_INVALID", "{bad}");
    }
}

#[tokio::test]
async fn another_gateways_writes_reach_the_projection_by_themselves() {
    let a = TestGateway::start().await;
    let b = TestGateway::beside(&a, Duration::from_millis(50)).await;
    let mover = a.find(|c| c.status == 0 && c.permanent.as_ref().is_some_and(|p| p.province != 48));
    let mut bank = b.client("bank").await;
    let lives_in_048 = v1::IdentityClaim {
        reference: "r".into(),
        pid: format!("{:012}", mover.pid),
        permanent_residence: residence("048", ""),
        ..Default::default()
    };
    let verdict =
        async |bank: &mut lienthong_proto::v1::exchange_service_client::ExchangeServiceClient<
            _,
        >| {
            bank.verify_identity(kyc(lives_in_048.clone()))
                .await
                .unwrap()
                .into_inner()
                .verification
                .unwrap()
                .verdict()
        };
    assert_eq!(verdict(&mut bank).await, v1::Verdict::Mismatch);
    a.registry("police")
        .await
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "r-1".into(),
            pid: format!("{:012}", mover.pid),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: residence("048", "12 Bạch Đằng, Hải Châu"),
        })
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while verdict(&mut bank).await != v1::Verdict::Match {
        assert!(
            tokio::time::Instant::now() < until,
            "the write through a never reached b"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
