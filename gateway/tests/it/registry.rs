//! RegistryService over mTLS, and the events its writes publish to the real
//! RabbitMQ, consumed by a real AMQP consumer.

use std::time::Duration;

use lienthong_proto::citizen::{LifeStatus, Marital};
use lienthong_proto::v1;
use tonic::Code;

use crate::amqp::{EventTap, unique};
use crate::support::{TestGateway, preconditions, reason};

pub fn date(year: i32, month: i32, day: i32) -> Option<v1::Date> {
    Some(v1::Date { year, month, day })
}

pub fn residence(province: &str, line: &str) -> Option<v1::Residence> {
    Some(v1::Residence {
        province_code: province.into(),
        address_line: line.into(),
    })
}

/// A ChangeResidence request moving `pid` (temporarily) to a numbered address.
pub fn move_to(request_id: String, pid: u64, n: u64) -> v1::ChangeResidenceRequest {
    v1::ChangeResidenceRequest {
        request_id,
        pid: format!("{pid:012}"),
        kind: v1::ResidenceKind::Temporary as i32,
        residence: residence("048", &format!("{n} Bạch Đằng, Hải Châu")),
    }
}

fn alive(c: &lienthong_proto::Citizen) -> bool {
    c.life_status() == LifeStatus::Alive
}

fn single_adult(c: &lienthong_proto::Citizen) -> bool {
    alive(c) && c.marital_status() == Marital::Single && c.date_of_birth().unwrap().year() < 1995
}

#[tokio::test]
async fn each_write_emits_one_event_with_every_property_in_order() {
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let gw = TestGateway::with_events(&exchange).await;
    let mut civil = gw.registry("civil").await;
    let mut police = gw.registry("police").await;
    let groom = gw.find(|c| single_adult(c) && !c.female);
    let bride = gw.find(|c| single_adult(c) && c.female);
    let mover = gw.find(|c| alive(c) && c.pid != groom.pid && c.pid != bride.pid);
    let pid = |p: u64| format!("{p:012}");

    let mut receipts = Vec::new();
    let born = civil
        .register_birth(v1::RegisterBirthRequest {
            request_id: "b-1".into(),
            full_name: "Trần Gia Bảo".into(),
            date_of_birth: date(2026, 5, 19),
            sex: v1::Sex::Male as i32,
            birth_province_code: "079".into(),
            mother_pid: pid(bride.pid),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    receipts.push(("citizen.born", born.clone()));
    let r = police
        .change_residence(move_to("r-1".into(), mover.pid, 7))
        .await
        .unwrap();
    receipts.push(("citizen.residence_changed", r.into_inner().receipt.unwrap()));
    let r = civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-1".into(),
            pid: pid(mover.pid),
            full_name: "Lê Thị Thu Hà".into(),
        })
        .await
        .unwrap();
    receipts.push(("citizen.name_changed", r.into_inner().receipt.unwrap()));
    let r = civil
        .record_marriage(v1::RecordMarriageRequest {
            request_id: "m-1".into(),
            pid: pid(groom.pid),
            spouse_pid: pid(bride.pid),
            married_on: date(2026, 3, 8),
        })
        .await
        .unwrap();
    receipts.push(("citizen.married", r.into_inner().receipt.unwrap()));
    let r = police
        .issue_card(v1::IssueCardRequest {
            request_id: "c-1".into(),
            pid: pid(groom.pid),
            issued_on: date(2026, 4, 1),
        })
        .await
        .unwrap();
    receipts.push(("citizen.card_issued", r.into_inner().receipt.unwrap()));
    let r = civil
        .record_death(v1::RecordDeathRequest {
            request_id: "d-1".into(),
            pid: pid(groom.pid),
            date_of_death: date(2026, 6, 30),
        })
        .await
        .unwrap();
    receipts.push(("citizen.died", r.into_inner().receipt.unwrap()));

    let got = tap
        .wait_until(Duration::from_secs(30), "six events", |r| r.len() >= 6)
        .await;
    for (i, ((kind, receipt), m)) in receipts.iter().zip(&got).enumerate() {
        assert_eq!(
            receipt.seq,
            i as u64 + 1,
            "receipts number the outbox gap-free"
        );
        assert_eq!(m.routing_key, *kind);
        assert_eq!(m.message_id.as_deref(), Some(receipt.event_id.as_str()));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        let b = &m.body;
        assert_eq!(b["id"], receipt.event_id.as_str());
        assert_eq!(b["seq"], receipt.seq);
        assert_eq!(b["type"], *kind);
        assert_eq!(b["pid"], receipt.pid.as_str());
        assert_eq!(b["occurred_at"], receipt.recorded_at.as_str());
        assert!(b["data"].is_object());
        let h = |k: &str| m.headers.get(k).map(String::as_str);
        assert_eq!(h("cloudEvents_specversion"), Some("1.0"));
        assert_eq!(h("cloudEvents_id"), Some(receipt.event_id.as_str()));
        assert_eq!(h("cloudEvents_type"), Some(*kind));
        assert_eq!(h("cloudEvents_source"), Some("urn:lienthong:registry"));
        assert_eq!(h("cloudEvents_time"), Some(receipt.recorded_at.as_str()));
        assert_eq!(h("cloudEvents_subject"), Some(receipt.pid.as_str()));
    }
    assert_eq!(got[0].body["data"]["mother"], pid(bride.pid));
    assert_eq!(got[0].body["data"]["birth_province_code"], "079");
    assert!(born.pid.starts_with("079226"), "{}", born.pid); // 079 · male 2000s · 26
    assert_eq!(got[3].body["data"]["spouse"], pid(bride.pid));
    assert_eq!(got[5].body["data"]["widowed_spouse"], pid(bride.pid));

    // Exactly one each: a seventh write's event is the seventh message.
    let r = police
        .change_residence(move_to("r-2".into(), mover.pid, 8))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let got = tap
        .wait_until(Duration::from_secs(30), "the seventh event", |r| {
            r.iter().any(|m| m.body["seq"] == 7)
        })
        .await;
    assert_eq!(got.len(), 7, "no event was sent twice");
    assert_eq!(got[6].message_id.as_deref(), Some(r.event_id.as_str()));
    tap.delete().await;
}

#[tokio::test]
async fn a_retried_request_id_changes_nothing_and_emits_nothing() {
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let gw = TestGateway::with_events(&exchange).await;
    let mut civil = gw.registry("civil").await;
    let person = gw.find(alive);
    let rename = |name: &str| v1::ChangeNameRequest {
        request_id: "office-12/2026/000731".into(),
        pid: format!("{:012}", person.pid),
        full_name: name.into(),
    };
    let first = civil
        .change_name(rename("Đỗ Minh Châu"))
        .await
        .unwrap()
        .into_inner();
    let retry = civil
        .change_name(rename("Đỗ Minh Châu"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry, "a retry gets the first receipt");
    // The same id for a different request is refused and changes nothing.
    let err = civil
        .change_name(rename("Đỗ Minh Khang"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "REQUEST_ID_REUSED")
    );
    let mut clinic = gw.client("clinic").await;
    let record = clinic
        .get_citizen(v1::GetCitizenRequest {
            purpose: "HEALTH_INSURANCE_CHECK".into(),
            pid: format!("{:012}", person.pid),
            fields: vec![v1::CitizenField::FullName as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let name = format!("{:?}", record.values[0].value);
    assert!(name.contains("Đỗ Minh Châu"), "{name}");
    // One event only: the next write's event follows it directly.
    let mut police = gw.registry("police").await;
    police
        .change_residence(move_to("after".into(), person.pid, 1))
        .await
        .unwrap();
    let got = tap
        .wait_until(Duration::from_secs(30), "two events", |r| {
            r.iter()
                .any(|m| m.routing_key == "citizen.residence_changed")
        })
        .await;
    let kinds: Vec<_> = got.iter().map(|m| m.routing_key.as_str()).collect();
    assert_eq!(kinds, ["citizen.name_changed", "citizen.residence_changed"]);
    tap.delete().await;
}

#[tokio::test]
async fn refusals_have_their_own_reasons() {
    let gw = TestGateway::start().await;
    let mut civil = gw.registry("civil").await;
    let mut bank = gw.registry("bank").await;
    let dead = gw.find(|c| c.life_status() == LifeStatus::Deceased);
    let living = gw.find(single_adult);
    let married = gw.find(|c| alive(c) && c.marital_status() == Marital::Married);
    let woman = gw.find(|c| alive(c) && c.sex() == lienthong_proto::Sex::Female);
    let death = |request_id: &str, pid: u64| v1::RecordDeathRequest {
        request_id: request_id.into(),
        pid: format!("{pid:012}"),
        date_of_death: date(2026, 1, 1),
    };
    let cases: Vec<(Result<_, tonic::Status>, Code, &str, &str)> = vec![
        (
            bank.record_death(death("x1", living.pid)).await.map(drop),
            Code::PermissionDenied,
            "ROLE_NOT_PERMITTED",
            "civil_registry",
        ),
        (
            civil.record_death(death("x2", dead.pid)).await.map(drop),
            Code::FailedPrecondition,
            "CITIZEN_DECEASED",
            "already recorded",
        ),
        (
            civil.record_death(death("", living.pid)).await.map(drop),
            Code::InvalidArgument,
            "ARGUMENT_INVALID",
            "request_id",
        ),
        (
            civil
                .record_death(v1::RecordDeathRequest {
                    pid: "12345".into(),
                    ..death("x3", 0)
                })
                .await
                .map(drop),
            Code::InvalidArgument,
            "PID_MALFORMED",
            "pid",
        ),
        (
            civil
                .register_birth(v1::RegisterBirthRequest {
                    request_id: "x4".into(),
                    full_name: "Hồ Ngọc Ánh".into(),
                    date_of_birth: date(2026, 1, 1),
                    sex: v1::Sex::Female as i32,
                    birth_province_code: "001".into(),
                    father_pid: gw.unknown_pid().to_string(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Code::FailedPrecondition,
            "PARENT_NOT_FOUND",
            "father_pid",
        ),
        (
            civil
                .record_marriage(v1::RecordMarriageRequest {
                    request_id: "x6".into(),
                    pid: format!("{:012}", living.pid),
                    spouse_pid: format!("{:012}", married.pid),
                    married_on: date(2026, 1, 1),
                })
                .await
                .map(drop),
            Code::FailedPrecondition,
            "ALREADY_MARRIED",
            "spouse_pid",
        ),
        (
            civil
                .register_birth(v1::RegisterBirthRequest {
                    request_id: "x7".into(),
                    full_name: "Hồ Ngọc Ánh".into(),
                    date_of_birth: date(2026, 1, 1),
                    sex: v1::Sex::Female as i32,
                    birth_province_code: "001".into(),
                    // A father registered as a woman.
                    father_pid: format!("{:012}", woman.pid),
                    ..Default::default()
                })
                .await
                .map(drop),
            Code::FailedPrecondition,
            "PARENT_INVALID",
            "father_pid",
        ),
        (
            civil
                .register_birth(v1::RegisterBirthRequest {
                    request_id: "x5".into(),
                    full_name: "  ".into(),
                    date_of_birth: date(2026, 1, 1),
                    sex: v1::Sex::Female as i32,
                    birth_province_code: "001".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Code::InvalidArgument,
            "ARGUMENT_INVALID",
            "full_name",
        ),
    ];
    for (i, (result, code, want, mentions)) in cases.into_iter().enumerate() {
        let err = result.expect_err("refused");
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (code, want),
            "case {i}: {err:?}"
        );
        assert!(
            err.message().contains(mentions),
            "case {i}: {}",
            err.message()
        );
        assert!(
            !err.message().contains(&living.full_name),
            "no names in errors"
        );
        // The register's state refused it: a PreconditionFailure names the
        // reason and the field at fault.
        if code == Code::FailedPrecondition {
            let violations = preconditions(&err);
            assert!(
                matches!(&violations[..], [(kind, subject)]
                    if kind == want && err.message().starts_with(&format!("{subject}: "))),
                "case {i}: {violations:?} for {err:?}"
            );
        } else {
            assert!(preconditions(&err).is_empty(), "case {i}: {err:?}");
        }
    }
}

#[tokio::test]
async fn a_locked_store_is_store_unavailable_with_a_retry_and_the_retry_succeeds() {
    let gw = TestGateway::start().await;
    let mut police = gw.registry("police").await;
    let mover = gw.find(alive);
    // Another writer holds the registry's write lock.
    let locker = rusqlite::Connection::open(gw.registry_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = police
        .change_residence(move_to("locked-1".into(), mover.pid, 1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Unavailable, "STORE_UNAVAILABLE"),
        "{err:?}"
    );
    use tonic_types::StatusExt;
    assert!(err.get_details_retry_info().is_some(), "{err:?}");
    assert!(!err.message().contains(&mover.full_name));
    // Once the lock is gone, the same request goes through.
    locker.execute_batch("ROLLBACK").unwrap();
    police
        .change_residence(move_to("locked-1".into(), mover.pid, 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_birth_with_no_pid_left_is_pid_space_exhausted() {
    let gw = TestGateway::start().await;
    // Every serial of province 001, girls born in 2026, is taken.
    let first = lienthong_proto::Pid::from_parts(1, lienthong_proto::Sex::Female, 2026, 0)
        .unwrap()
        .as_u64() as i64;
    let db = rusqlite::Connection::open(gw.registry_path()).unwrap();
    db.execute(
        "WITH RECURSIVE n(pid) AS (SELECT ?1 UNION ALL SELECT pid + 1 FROM n WHERE pid < ?1 + 999999)
         INSERT OR IGNORE INTO citizen (pid, record) SELECT pid, x'' FROM n",
        [first],
    )
    .unwrap();
    let mut civil = gw.registry("civil").await;
    let birth = |request_id: &str, sex: v1::Sex| v1::RegisterBirthRequest {
        request_id: request_id.into(),
        full_name: "Hồ Ngọc Ánh".into(),
        date_of_birth: date(2026, 1, 1),
        sex: sex as i32,
        birth_province_code: "001".into(),
        permanent_residence: residence("001", "1 Phố Hàng Bông"),
        ..Default::default()
    };
    let err = civil
        .register_birth(birth("full-1", v1::Sex::Female))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::ResourceExhausted, "PID_SPACE_EXHAUSTED"),
        "{err:?}"
    );
    // A boy of the same province and year still gets his number.
    civil
        .register_birth(birth("full-2", v1::Sex::Male))
        .await
        .unwrap();
}

/// Each kind of registry write that changes what verification reads is seen
/// by the very next verification: the projection is updated before the
/// write is answered.
#[tokio::test]
async fn each_registry_write_is_seen_by_the_next_verification() {
    let gw = TestGateway::start().await;
    let mut civil = gw.registry("civil").await;
    let mut police = gw.registry("police").await;
    let mut bank = gw.client("bank").await;
    let mover = gw
        .find(|c| alive(c) && c.permanent.as_ref().is_some_and(|a| a.province != 48) && !c.female);
    let pid = |p: u64| format!("{p:012}");
    let claim = |pid: &str| v1::IdentityClaim {
        reference: "r".into(),
        pid: pid.to_owned(),
        ..Default::default()
    };
    let mut verify = async |claim: v1::IdentityClaim| {
        crate::exchange::answer(bank.verify_identity(crate::exchange::kyc(claim)).await)
    };

    // A birth: the new Pid verifies at once, with no card yet.
    let born = civil
        .register_birth(v1::RegisterBirthRequest {
            request_id: "b-1".into(),
            full_name: "Trần Gia Bảo".into(),
            date_of_birth: date(2026, 5, 19),
            sex: v1::Sex::Male as i32,
            birth_province_code: "079".into(),
            permanent_residence: residence("079", "5 Lê Lợi, Quận 1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let baby = v1::IdentityClaim {
        full_name: Some("Trần Gia Bảo".into()),
        date_of_birth: date(2026, 5, 19),
        sex: v1::Sex::Male as i32,
        ..claim(&born.pid)
    };
    let v = verify(baby.clone()).await;
    assert_eq!(v.verdict(), v1::Verdict::Match, "{v:?}");
    assert_eq!(v.card_validity(), v1::CardValidity::None);

    // A card issued: valid at once.
    police
        .issue_card(v1::IssueCardRequest {
            request_id: "c-1".into(),
            pid: born.pid.clone(),
            issued_on: date(2026, 6, 1),
        })
        .await
        .unwrap();
    assert_eq!(verify(baby).await.card_validity(), v1::CardValidity::Valid);

    // A permanent residence changed: the new province matches, the old
    // one no longer.
    let old_province = format!("{:03}", mover.permanent.as_ref().unwrap().province);
    let lives_in = |province: &str| v1::IdentityClaim {
        permanent_residence: residence(province, ""),
        ..claim(&pid(mover.pid))
    };
    assert_eq!(
        verify(lives_in("048")).await.verdict(),
        v1::Verdict::Mismatch
    );
    police
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "r-1".into(),
            pid: pid(mover.pid),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: residence("048", "12 Bạch Đằng, Hải Châu"),
        })
        .await
        .unwrap();
    assert_eq!(verify(lives_in("048")).await.verdict(), v1::Verdict::Match);
    assert_eq!(
        verify(lives_in(&old_province)).await.verdict(),
        v1::Verdict::Mismatch
    );

    // A name changed: the new name matches, the old one no longer.
    let named = |name: &str| v1::IdentityClaim {
        full_name: Some(name.to_owned()),
        ..claim(&pid(mover.pid))
    };
    assert_eq!(
        verify(named(&mover.full_name)).await.verdict(),
        v1::Verdict::Match
    );
    civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-1".into(),
            pid: pid(mover.pid),
            full_name: "Lê Văn Thu".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        verify(named("Lê Văn Thu")).await.verdict(),
        v1::Verdict::Match
    );
    assert_eq!(
        verify(named(&mover.full_name)).await.verdict(),
        v1::Verdict::Mismatch
    );

    // A death: the holder is deceased at once.
    civil
        .record_death(v1::RecordDeathRequest {
            request_id: "d-1".into(),
            pid: pid(mover.pid),
            date_of_death: date(2026, 6, 30),
        })
        .await
        .unwrap();
    let v = verify(claim(&pid(mover.pid))).await;
    assert_eq!(v.holder_status(), v1::HolderStatus::Deceased, "{v:?}");
}
