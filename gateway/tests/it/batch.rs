//! VerifyBatch: per-claim results in order, bad claims as results, limits.

use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::v1::{self, claim_result::Outcome};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::exchange::{claim_of, wire_date};
use crate::support::{TestGateway, reason};

fn batch(id: &str, claims: Vec<v1::IdentityClaim>) -> v1::VerifyBatchRequest {
    v1::VerifyBatchRequest {
        batch_id: id.into(),
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        r#match: Some(v1::MatchOptions {
            strategy: v1::MatchStrategy::Partial as i32,
            threshold: 90,
        }),
        claims,
    }
}

/// The status that ends a stream whose only batch is refused.
async fn refusal(
    client: &mut lienthong_proto::v1::exchange_service_client::ExchangeServiceClient<
        tonic::transport::Channel,
    >,
    request: v1::VerifyBatchRequest,
) -> tonic::Status {
    let mut answers = client
        .verify_batch(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    answers.next().await.unwrap().unwrap_err()
}

#[derive(Debug, PartialEq)]
enum Expect {
    Verdict(v1::Verdict),
    Error(&'static str, &'static str),
}

#[tokio::test]
async fn mixed_batch_answers_each_claim_in_order() {
    let gw = TestGateway::start().await;
    let alive = gw.find(|c| c.life_status() == LifeStatus::Alive);
    let dead = gw.find(|c| c.life_status() == LifeStatus::Deceased);
    let mut cases: Vec<(v1::IdentityClaim, Expect)> = Vec::new();
    cases.push((claim_of(&alive, "ok"), Expect::Verdict(v1::Verdict::Match)));
    let mut unaccented = claim_of(&alive, "unaccented");
    unaccented.full_name = Some(lienthong_proto::name::fold_diacritics(&alive.full_name));
    cases.push((unaccented, Expect::Verdict(v1::Verdict::Match)));
    let mut wrong_name = claim_of(&alive, "wrong-name");
    wrong_name.full_name = Some("Hoàng Thị Không Có".into());
    cases.push((wrong_name, Expect::Verdict(v1::Verdict::Mismatch)));
    let mut wrong_year = claim_of(&alive, "wrong-year");
    wrong_year.date_of_birth = Some(wire_date(
        alive.date_of_birth().unwrap().add_years(3).unwrap(),
    ));
    cases.push((wrong_year, Expect::Verdict(v1::Verdict::Mismatch)));
    let mut malformed = claim_of(&alive, "malformed");
    malformed.pid = "07920312".into();
    cases.push((malformed, Expect::Error("PID_MALFORMED", "pid")));
    let mut bad_date = claim_of(&alive, "bad-date");
    bad_date.date_of_birth = Some(v1::Date {
        year: 2001,
        month: 2,
        day: 30,
    });
    cases.push((bad_date, Expect::Error("ARGUMENT_INVALID", "date_of_birth")));
    let mut unknown = claim_of(&alive, "unknown");
    unknown.pid = gw.unknown_pid().to_string();
    unknown.date_of_birth = None;
    unknown.sex = 0;
    cases.push((unknown, Expect::Verdict(v1::Verdict::NotFound)));
    cases.push((
        claim_of(&dead, "deceased"),
        Expect::Verdict(v1::Verdict::Match),
    ));

    // Two batches on one stream: answers come back per batch, in order.
    let claims: Vec<_> = cases.iter().map(|(c, _)| c.clone()).collect();
    let requests = tokio_stream::iter(vec![batch("b1", claims.clone()), batch("b2", claims)]);
    let mut answers = gw
        .client("telco")
        .await
        .verify_batch(requests)
        .await
        .unwrap()
        .into_inner();
    for id in ["b1", "b2"] {
        let answer = answers.next().await.unwrap().unwrap();
        assert_eq!(answer.batch_id, id);
        assert_eq!(answer.results.len(), cases.len());
        for ((claim, expect), result) in cases.iter().zip(&answer.results) {
            assert_eq!(result.reference, claim.reference);
            let got = match result.outcome.as_ref().unwrap() {
                Outcome::Verification(v) => {
                    if claim.reference == "deceased" {
                        assert_eq!(v.holder_status(), v1::HolderStatus::Deceased);
                    }
                    let failed: Vec<v1::ClaimedField> = v
                        .fields
                        .iter()
                        .filter(|f| !f.matched)
                        .map(|f| f.field())
                        .collect();
                    let want_failed = match claim.reference.as_str() {
                        "wrong-name" => vec![v1::ClaimedField::FullName],
                        "wrong-year" => {
                            vec![v1::ClaimedField::PidDigits, v1::ClaimedField::DateOfBirth]
                        }
                        _ => vec![],
                    };
                    assert_eq!(failed, want_failed, "{}", claim.reference);
                    Expect::Verdict(v.verdict())
                }
                Outcome::Error(e) => {
                    let leak = claim.full_name.as_deref().unwrap_or("\u{0}");
                    assert!(!e.description.contains(leak));
                    match (e.reason.as_str(), e.field.as_str()) {
                        ("PID_MALFORMED", "pid") => Expect::Error("PID_MALFORMED", "pid"),
                        ("ARGUMENT_INVALID", "date_of_birth") => {
                            Expect::Error("ARGUMENT_INVALID", "date_of_birth")
                        }
                        other => panic!("unexpected claim error {other:?}"),
                    }
                }
            };
            assert_eq!(&got, expect, "{}", claim.reference);
        }
    }
    assert!(
        answers.next().await.is_none(),
        "the stream ends after the last batch"
    );
}

#[tokio::test]
async fn large_batches_and_the_limit() {
    let gw = TestGateway::start().await;
    let citizens: Vec<_> = gw.population.iter().collect();
    let full: Vec<_> = (0..10_000)
        .map(|i| claim_of(&citizens[i % citizens.len()], &i.to_string()))
        .collect();
    let mut client = gw.client("telco").await;
    let mut answers = client
        .verify_batch(tokio_stream::iter(vec![batch("full", full.clone())]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    assert_eq!(answer.results.len(), 10_000);
    assert!(answer.results.iter().enumerate().all(|(i, r)| r.reference == i.to_string()
        && matches!(&r.outcome, Some(Outcome::Verification(v)) if v.verdict() == v1::Verdict::Match)));

    let mut over = full;
    over.push(claim_of(&citizens[0], "10000"));
    let status = refusal(&mut client, batch("over", over)).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "BATCH_TOO_LARGE");
}

#[tokio::test]
async fn a_batch_for_a_purpose_not_granted_fails_the_stream() {
    let gw = TestGateway::start().await;
    let c = gw.find(|_| true);
    // Thousands of claims, refused: one audit record, about no citizen (no
    // claim was read), however many the batch holds.
    let mut req = batch("b", vec![claim_of(&c, "r"); 5_000]);
    req.purpose = "MARKETING".into();
    let status = refusal(&mut gw.client("telco").await, req).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PURPOSE_NOT_PERMITTED");
    let records = lienthong_gateway::audit::records(&gw.audit_path()).unwrap();
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.entry.outcome == "PURPOSE_NOT_PERMITTED")
        .collect();
    assert_eq!(refused.len(), 1, "one record for the refused batch");
    assert_eq!(refused[0].entry.request_id, "b");
    assert!(refused[0].entry.pids.is_empty(), "{:?}", refused[0].entry);
}

/// A client that stops reading answers stops the gateway reading batches:
/// the stream is throttled end to end instead of queueing without bound,
/// and once the client reads again every answer arrives, in order.
#[tokio::test]
async fn an_unread_answer_stream_throttles_the_sender() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const BATCHES: usize = 80;
    let gw = TestGateway::start().await;
    let citizens: Vec<_> = gw.population.iter().collect();
    let claims: Vec<_> = citizens.iter().map(|c| claim_of(c, "r")).collect();
    let citizens_len = claims.len();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let requests = tokio_stream::iter(0..BATCHES).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        batch(&i.to_string(), claims.clone())
    });
    let mut answers = gw
        .client("telco")
        .await
        .verify_batch(requests)
        .await
        .unwrap()
        .into_inner();

    // Wait until the sender has stalled: no batch pulled for half a second
    // (a deadline bounds the wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (usize::MAX, Instant::now());
    loop {
        let now = pulled.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(Instant::now() < deadline, "the sender never stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        last < BATCHES / 2,
        "{last} of {BATCHES} batches taken with no answer read"
    );

    for i in 0..BATCHES {
        let answer = answers.next().await.unwrap().unwrap();
        assert_eq!(answer.batch_id, i.to_string());
        assert_eq!(answer.results.len(), citizens_len);
    }
    assert_eq!(pulled.load(Ordering::SeqCst), BATCHES);
}

/// A batch message as a caller could send it, each claim (field 4) as raw
/// bytes: empty ones, two bytes each on the wire, or ones that are no claim.
#[derive(Clone, PartialEq, prost::Message)]
struct EmptyClaims {
    #[prost(string, tag = "1")]
    batch_id: String,
    #[prost(string, tag = "2")]
    purpose: String,
    #[prost(bytes = "vec", repeated, tag = "4")]
    claims: Vec<Vec<u8>>,
}

#[tokio::test]
async fn a_message_of_a_million_empty_claims_is_refused_before_it_is_decoded() {
    let gw = TestGateway::start().await;
    let mut grpc = tonic::client::Grpc::new(gw.channel("telco").await);
    grpc.ready().await.unwrap();
    // 2 MB, well under the message limit, and a million claims.
    let message = EmptyClaims {
        batch_id: "flood".into(),
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        claims: vec![Vec::new(); 1_000_000],
    };
    let answers = grpc
        .streaming::<_, EmptyClaims, v1::VerifyBatchResponse, _>(
            tonic::Request::new(tokio_stream::iter(vec![message])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/lienthong.v1.ExchangeService/VerifyBatch",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let refused = match answers {
        Ok(answers) => answers.into_inner().message().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::InvalidArgument, "BATCH_TOO_LARGE"),
        "{refused:?}"
    );
    assert!(refused.message().contains("1000000"), "{refused:?}");
    // One record for the refusal, not a million.
    let records = lienthong_gateway::audit::records(&gw.audit_path()).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].entry.outcome, "BATCH_TOO_LARGE");
}

#[tokio::test]
async fn a_batch_that_does_not_decode_ends_the_stream_invalid_argument_and_is_audited() {
    let gw = TestGateway::start().await;
    let mut grpc = tonic::client::Grpc::new(gw.channel("telco").await);
    grpc.ready().await.unwrap();
    // Its claims field holds bytes that are no IdentityClaim.
    let message = EmptyClaims {
        batch_id: "garbled".into(),
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        claims: vec![vec![0xFF; 16]],
    };
    let answers = grpc
        .streaming::<_, EmptyClaims, v1::VerifyBatchResponse, _>(
            tonic::Request::new(tokio_stream::iter(vec![message])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/lienthong.v1.ExchangeService/VerifyBatch",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let refused = match answers {
        Ok(answers) => answers.into_inner().message().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::InvalidArgument, "ARGUMENT_INVALID"),
        "{refused:?}"
    );
    let records = lienthong_gateway::audit::records(&gw.audit_path()).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (
            records[0].entry.agency.as_str(),
            records[0].entry.operation.as_str(),
            records[0].entry.outcome.as_str()
        ),
        ("telco", "verify_batch", "ARGUMENT_INVALID")
    );
    // The same caller goes on being served.
    let mut client = lienthong_proto::v1::exchange_service_client::ExchangeServiceClient::new(
        gw.channel("telco").await,
    );
    let alive = gw.find(|c| c.life_status() == LifeStatus::Alive);
    let mut answers = client
        .verify_batch(tokio_stream::iter(vec![batch(
            "after",
            vec![claim_of(&alive, "ok")],
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.next().await.unwrap().unwrap().results.len(), 1);
}
