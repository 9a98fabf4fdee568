//! VerifyIdentity and GetCitizen over mTLS: verdicts, refusals, fields.

use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::v1::{self, predicate::Kind};
use lienthong_proto::{Citizen, Date, Pid};
use tonic::Code;

use crate::support::{TestGateway, bad_fields, reason};

pub fn wire_date(d: Date) -> v1::Date {
    v1::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

/// A claim of everything the bank knows about `c`, all of it right.
pub fn claim_of(c: &Citizen, reference: &str) -> v1::IdentityClaim {
    v1::IdentityClaim {
        reference: reference.to_owned(),
        pid: Pid::from_u64(c.pid).unwrap().to_string(),
        full_name: Some(c.full_name.to_uppercase()),
        date_of_birth: Some(wire_date(c.date_of_birth().unwrap())),
        sex: if c.female {
            v1::Sex::Female
        } else {
            v1::Sex::Male
        } as i32,
        old_id_number: None,
        permanent_residence: c.permanent.as_ref().map(|a| v1::Residence {
            province_code: format!("{:03}", a.province),
            address_line: String::new(),
        }),
        predicates: Vec::new(),
    }
}

pub fn kyc(claim: v1::IdentityClaim) -> v1::VerifyIdentityRequest {
    v1::VerifyIdentityRequest {
        purpose: "KYC_ONBOARDING".into(),
        r#match: None,
        claim: Some(claim),
    }
}

/// The verification in a VerifyIdentity answer that must have succeeded.
pub fn answer(
    r: Result<tonic::Response<v1::VerifyIdentityResponse>, tonic::Status>,
) -> v1::IdentityVerification {
    r.expect("answered")
        .into_inner()
        .verification
        .expect("a verification")
}

fn fields_of(v: &v1::IdentityVerification) -> Vec<(v1::ClaimedField, bool)> {
    v.fields.iter().map(|f| (f.field(), f.matched)).collect()
}

#[tokio::test]
async fn verified_match_says_nothing_more() {
    let gw = TestGateway::start().await;
    let c = gw.find(|c| {
        c.life_status() == LifeStatus::Alive && c.card_issued_on != 0 && c.card_expires_on == 0
    });
    let mut claim = claim_of(&c, "kyc-1");
    claim.predicates = vec![
        v1::Predicate {
            kind: Some(Kind::AgeAtLeast(v1::AgeAtLeast { years: 18 })),
        },
        v1::Predicate {
            kind: Some(Kind::Alive(v1::Alive {})),
        },
        v1::Predicate {
            kind: Some(Kind::PermanentResidentOf(v1::PermanentResidentOf {
                province_code: format!("{:03}", c.permanent.as_ref().unwrap().province),
            })),
        },
    ];
    let v = answer(gw.client("bank").await.verify_identity(kyc(claim)).await);
    assert_eq!(v.reference, "kyc-1");
    assert_eq!(v.verdict(), v1::Verdict::Match);
    assert_eq!(
        fields_of(&v),
        [
            (v1::ClaimedField::PidDigits, true),
            (v1::ClaimedField::FullName, true),
            (v1::ClaimedField::DateOfBirth, true),
            (v1::ClaimedField::Sex, true),
            (v1::ClaimedField::PermanentResidence, true),
        ]
    );
    assert!(v.fields.iter().all(|f| f.score == 100));
    assert_eq!(v.holder_status(), v1::HolderStatus::Alive);
    assert_eq!(v.card_validity(), v1::CardValidity::Valid);
    let adult = c.date_of_birth().unwrap().age_on(Date::today()) >= 18;
    let holds: Vec<bool> = v.predicates.iter().map(|p| p.holds).collect();
    assert_eq!(holds, [adult, true, true]);
}

#[tokio::test]
async fn mismatch_per_field() {
    let gw = TestGateway::start().await;
    let c = gw.find(|c| c.life_status() == LifeStatus::Alive && !c.old_id_number.is_empty());
    let mut client = gw.client("bank").await;
    let dob = c.date_of_birth().unwrap();
    let other_province = if c.permanent.as_ref().unwrap().province == 1 {
        "079"
    } else {
        "001"
    };
    type Edit = Box<dyn Fn(&mut v1::IdentityClaim)>;
    type Case = (&'static str, Edit, Vec<(v1::ClaimedField, bool)>);
    let cases: Vec<Case> = vec![
        (
            "name",
            Box::new(|cl| cl.full_name = Some("Tên Không Đúng".into())),
            vec![(v1::ClaimedField::FullName, false)],
        ),
        (
            "day of birth",
            Box::new(move |cl| {
                let other = Date::from_days(
                    dob.to_days()
                        + if dob.month() == 12 && dob.day() == 31 {
                            -1
                        } else {
                            1
                        },
                )
                .unwrap();
                cl.date_of_birth = Some(wire_date(other));
            }),
            vec![
                (v1::ClaimedField::PidDigits, true),
                (v1::ClaimedField::DateOfBirth, false),
            ],
        ),
        (
            "sex",
            Box::new(|cl| {
                cl.sex = if cl.sex == v1::Sex::Male as i32 {
                    v1::Sex::Female
                } else {
                    v1::Sex::Male
                } as i32
            }),
            vec![
                (v1::ClaimedField::PidDigits, false),
                (v1::ClaimedField::Sex, false),
            ],
        ),
        (
            "old id number",
            Box::new(|cl| cl.old_id_number = Some("000000000".into())),
            vec![(v1::ClaimedField::OldIdNumber, false)],
        ),
        (
            "province",
            Box::new(move |cl| {
                cl.permanent_residence = Some(v1::Residence {
                    province_code: other_province.into(),
                    address_line: String::new(),
                })
            }),
            vec![(v1::ClaimedField::PermanentResidence, false)],
        ),
    ];
    for (name, edit, wrong) in cases {
        let mut claim = claim_of(&c, name);
        claim.old_id_number = Some(c.old_id_number.clone());
        edit(&mut claim);
        let v = answer(client.verify_identity(kyc(claim)).await);
        assert_eq!(v.verdict(), v1::Verdict::Mismatch, "{name}");
        let failed: Vec<_> = fields_of(&v)
            .into_iter()
            .filter(|(f, m)| !m || wrong.iter().any(|(w, _)| w == f))
            .collect();
        assert_eq!(failed, wrong, "{name}");
    }
}

#[tokio::test]
async fn pid_digits_contradicting_the_date_of_birth() {
    let gw = TestGateway::start().await;
    let c = gw.find(|c| c.life_status() == LifeStatus::Alive);
    let mut claim = claim_of(&c, "r");
    let dob = c.date_of_birth().unwrap();
    claim.date_of_birth = Some(wire_date(dob.add_years(-1).unwrap()));
    let v = answer(gw.client("bank").await.verify_identity(kyc(claim)).await);
    assert_eq!(v.verdict(), v1::Verdict::Mismatch);
    assert_eq!(fields_of(&v)[0], (v1::ClaimedField::PidDigits, false));
    assert!(fields_of(&v).contains(&(v1::ClaimedField::DateOfBirth, false)));
}

#[tokio::test]
async fn malformed_and_unknown_pids() {
    let gw = TestGateway::start().await;
    let mut client = gw.client("bank").await;
    let c = gw.find(|_| true);
    for bad in ["12345", "07920312345x", "003203123456", "0792031234567"] {
        let mut claim = claim_of(&c, "r");
        claim.pid = bad.into();
        let status = client.verify_identity(kyc(claim)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(reason(&status), "PID_MALFORMED", "{bad}");
        assert_eq!(bad_fields(&status), ["claim.pid"], "{bad}");
        assert!(
            !status.message().contains(bad),
            "the message does not echo the input"
        );
    }
    // Well-formed but not on the register.
    let unknown = gw.unknown_pid();
    let mut claim = claim_of(&c, "r");
    claim.pid = unknown.to_string();
    claim.date_of_birth = None;
    claim.sex = 0;
    let v = answer(client.verify_identity(kyc(claim)).await);
    assert_eq!(v.verdict(), v1::Verdict::NotFound);
    assert!(v.fields.is_empty());
    assert_eq!(v.holder_status(), v1::HolderStatus::Unspecified);
}

#[tokio::test]
async fn deceased_holder() {
    let gw = TestGateway::start().await;
    let c = gw.find(|c| c.life_status() == LifeStatus::Deceased);
    let mut claim = claim_of(&c, "r");
    claim.predicates = vec![v1::Predicate {
        kind: Some(Kind::Alive(v1::Alive {})),
    }];
    let v = answer(gw.client("bank").await.verify_identity(kyc(claim)).await);
    assert_eq!(
        v.verdict(),
        v1::Verdict::Match,
        "the claim is right; the holder is dead"
    );
    assert_eq!(v.holder_status(), v1::HolderStatus::Deceased);
    assert_ne!(v.card_validity(), v1::CardValidity::Valid);
    assert!(!v.predicates[0].holds);
}

#[tokio::test]
async fn purpose_and_operation_refusals() {
    let gw = TestGateway::start().await;
    let c = gw.find(|_| true);
    let mut req = kyc(claim_of(&c, "r"));
    req.purpose = "MARKETING".into();
    let status = gw
        .client("bank")
        .await
        .verify_identity(req)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PURPOSE_NOT_PERMITTED");
    // The telco may verify batches only.
    let mut req = kyc(claim_of(&c, "r"));
    req.purpose = "SUBSCRIBER_VERIFICATION".into();
    let status = gw
        .client("telco")
        .await
        .verify_identity(req)
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PURPOSE_NOT_PERMITTED");
}

fn get(pid: u64, fields: &[v1::CitizenField]) -> v1::GetCitizenRequest {
    v1::GetCitizenRequest {
        purpose: "HEALTH_INSURANCE_CHECK".into(),
        pid: Pid::from_u64(pid).unwrap().to_string(),
        fields: fields.iter().map(|f| *f as i32).collect(),
        consent_token: String::new(),
    }
}

#[tokio::test]
async fn get_citizen_returns_requested_fields_with_provenance() {
    use v1::citizen_field_value::Value;
    let gw = TestGateway::start().await;
    let c = gw.find(|c| c.father != 0 && c.card_issued_on != 0);
    let resp = gw
        .client("clinic")
        .await
        .get_citizen(get(
            c.pid,
            &[
                v1::CitizenField::FullName,
                v1::CitizenField::DateOfBirth,
                v1::CitizenField::Father,
                v1::CitizenField::Card,
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    let fields: Vec<_> = resp.values.iter().map(|v| v.field()).collect();
    assert_eq!(
        fields,
        [
            v1::CitizenField::FullName,
            v1::CitizenField::DateOfBirth,
            v1::CitizenField::Father,
            v1::CitizenField::Card
        ]
    );
    assert_eq!(resp.values[0].value, Some(Value::Text(c.full_name.clone())));
    assert_eq!(
        resp.values[1].value,
        Some(Value::Date(wire_date(c.date_of_birth().unwrap())))
    );
    assert_eq!(
        resp.values[2].value,
        Some(Value::Text(Pid::from_u64(c.father).unwrap().to_string()))
    );
    let Some(Value::Card(card)) = &resp.values[3].value else {
        panic!("a card")
    };
    assert_eq!(card.number, Pid::from_u64(c.pid).unwrap().to_string());
    let birth = resp.values[0].provenance.as_ref().unwrap();
    assert_eq!(
        birth.office,
        format!("civil-registry/{:03}", c.birth_province)
    );
    assert!(birth.changed_on.is_some());
    assert_eq!(
        resp.values[3].provenance.as_ref().unwrap().office,
        "card-issuer/C06"
    );
}

#[tokio::test]
async fn a_field_not_granted_refuses_the_whole_request() {
    let gw = TestGateway::start().await;
    let c = gw.find(|_| true);
    let status = gw
        .client("clinic")
        .await
        .get_citizen(get(
            c.pid,
            &[
                v1::CitizenField::FullName,
                v1::CitizenField::Religion,
                v1::CitizenField::Spouse,
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "FIELD_NOT_PERMITTED");
    assert_eq!(bad_fields(&status), ["fields", "fields"]);
    assert!(status.message().contains("religion") && status.message().contains("spouse"));
    assert!(!status.message().contains(&c.full_name));
    // The bank has no get_citizen grant at all.
    let mut req = get(c.pid, &[v1::CitizenField::FullName]);
    req.purpose = "KYC_ONBOARDING".into();
    let status = gw.client("bank").await.get_citizen(req).await.unwrap_err();
    assert_eq!(reason(&status), "PURPOSE_NOT_PERMITTED");
    // A Pid that is not on the register.
    let status = gw
        .client("clinic")
        .await
        .get_citizen(get(
            gw.unknown_pid().as_u64(),
            &[v1::CitizenField::FullName],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "CITIZEN_NOT_FOUND");
}

#[tokio::test]
async fn an_agency_over_its_rate_is_refused_and_others_are_not() {
    let gw = TestGateway::start().await;
    let mut metered = gw.client("metered").await;
    let mut bank = gw.client("bank").await;
    let pid = gw.population.pid(0).to_string();
    let ask = || v1::VerifyIdentityRequest {
        purpose: "KYC_ONBOARDING".into(),
        claim: Some(v1::IdentityClaim {
            pid: pid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Its burst of 3 passes; the 4th is refused with when to retry (one
    // request per 1,000 s is its sustained rate).
    for _ in 0..3 {
        metered.verify_identity(ask()).await.unwrap();
    }
    let err = metered.verify_identity(ask()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(reason(&err), "RATE_LIMITED");
    let retry = tonic_types::StatusExt::get_details_retry_info(&err)
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(retry.as_secs() > 900, "{retry:?}");
    // Another agency is not slowed by it.
    for _ in 0..20 {
        bank.verify_identity(ask()).await.unwrap();
    }
}

/// A message whose field 2 (VerifyIdentityRequest.claim, a message) holds
/// bytes that are no message: it cannot be decoded as the RPC's request.
#[derive(Clone, PartialEq, prost::Message)]
struct Undecodable {
    #[prost(bytes = "vec", tag = "2")]
    claim: Vec<u8>,
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument_and_audited() {
    let gw = TestGateway::start().await;
    let mut grpc = tonic::client::Grpc::new(gw.channel("bank").await);
    grpc.ready().await.unwrap();
    let refused = grpc
        .unary::<Undecodable, v1::VerifyIdentityResponse, _>(
            tonic::Request::new(Undecodable {
                claim: vec![0xFF; 16],
            }),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/lienthong.v1.ExchangeService/VerifyIdentity",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (tonic::Code::InvalidArgument, "ARGUMENT_INVALID"),
        "{refused:?}"
    );
    assert_eq!(bad_fields(&refused), ["message"]);
    let audited = lienthong_gateway::audit::records(&gw.audit_path()).unwrap();
    assert!(
        audited.iter().any(|r| r.entry.agency == "bank"
            && r.entry.operation == "verify_identity"
            && r.entry.outcome == "ARGUMENT_INVALID"),
        "the refusal is audited"
    );
    // The same caller goes on being served.
    gw.client("bank")
        .await
        .verify_identity(kyc(claim_of(&gw.find(|_| true), "r")))
        .await
        .unwrap();
}
