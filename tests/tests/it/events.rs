//! Population events reaching the sectors through RabbitMQ: a death reaches
//! all five and each reacts, a birth gives the child a health card, a
//! residence change moves a pupil's school district, a
//! poison message is dead-lettered with its reason and the queue goes on,
//! an event delivered twice changes a sector once.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;
use lapin::types::FieldTable;
use lienthong_proto::adapter::v1::{DescribeRequest, LookupRequest};
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::event::SIGNATURE_HEADER;
use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{
    self, CardStatus, KycLevel, PensionStatus, RecordDeathRequest, RegisterBirthRequest,
};
use lienthong_proto::{Citizen, Date, Pid, Sex};

use crate::queues::drain;
use crate::support::{System, amqp, eventually, pid_of, query};

/// Waits until `agency`'s answer to `sector.query` about `pid` satisfies
/// `reacted`, and returns it.
async fn until_reacted(
    system: &System,
    (agency, purpose): (&str, &str),
    (sector, q): (&str, &str),
    pid: &str,
    reacted: impl Fn(&Answer) -> bool,
) -> Answer {
    let client = system.exchange_as(agency).await;
    eventually(
        Duration::from_secs(20),
        &format!("{sector}.{q} reacts"),
        || {
            let mut client = client.clone();
            let reacted = &reacted;
            async move {
                let answer = query(&mut client, purpose, pid, sector, q).await.ok()?;
                let answer = answer.answer?;
                reacted(&answer).then_some(answer)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_death_reaches_all_five_sectors_and_each_reacts() {
    let system = System::start().await;
    // Someone every sector knows: a pensioner with a card, a school record,
    // SIMs and bank accounts.
    let person: Citizen = system.find("pensioner known to every sector", |c| {
        c.life_status() == LifeStatus::Alive
            && matches!(answer_of(&system, "social_insurance", "record", c),
                Some(Answer::SocialInsuranceRecord(r)) if r.pension_status == PensionStatus::Receiving as i32)
            && matches!(answer_of(&system, "health", "insurance_card", c),
                Some(Answer::HealthInsuranceCard(card)) if card.status == CardStatus::Valid as i32)
            && answer_of(&system, "education", "record", c).is_some()
            && matches!(answer_of(&system, "telecom", "subscriptions", c),
                Some(Answer::TelecomSubscriptions(s)) if s.count > 0)
            && matches!(answer_of(&system, "banking", "kyc_status", c),
                Some(Answer::KycStatus(k)) if k.level != KycLevel::None as i32)
    });
    let pid = pid_of(&person);
    let mut registry = system.registry_as("civil-registry-hanoi").await;
    registry
        .record_death(RecordDeathRequest {
            request_id: "death-1".into(),
            pid: pid.clone(),
            date_of_death: Some(v1::Date {
                year: 2026,
                month: 11,
                day: 20,
            }),
        })
        .await
        .unwrap();

    let si = until_reacted(
        &system,
        ("vss", "SOCIAL_INSURANCE_ENROLMENT"),
        ("social_insurance", "record"),
        &pid,
        |a| matches!(a, Answer::SocialInsuranceRecord(r) if r.closed),
    )
    .await;
    let Answer::SocialInsuranceRecord(si) = si else {
        unreachable!()
    };
    assert_eq!(si.pension_status, PensionStatus::Stopped as i32);
    assert!(!si.currently_contributing);
    assert_eq!(
        si.closed_on,
        Some(v1::Date {
            year: 2026,
            month: 11,
            day: 20
        })
    );
    until_reacted(
        &system,
        ("clinic-bach-mai", "HEALTH_INSURANCE_CHECK"),
        ("health", "insurance_card"),
        &pid,
        |a| matches!(a, Answer::HealthInsuranceCard(c) if c.status == CardStatus::Invalidated as i32),
    )
    .await;
    until_reacted(
        &system,
        ("moet", "SCHOOL_ENROLMENT"),
        ("education", "record"),
        &pid,
        |a| matches!(a, Answer::EducationRecord(r) if r.closed && !r.currently_enrolled),
    )
    .await;
    until_reacted(
        &system,
        ("viettel", "SUBSCRIBER_VERIFICATION"),
        ("telecom", "subscriptions"),
        &pid,
        |a| {
            matches!(a, Answer::TelecomSubscriptions(s)
            if s.subscriptions.iter().all(|s| s.flagged_for_locking))
        },
    )
    .await;
    until_reacted(
        &system,
        ("vietcombank", "KYC_ONBOARDING"),
        ("banking", "kyc_status"),
        &pid,
        |a| matches!(a, Answer::KycStatus(k) if k.flagged_deceased),
    )
    .await;
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_residence_change_moves_a_pupil_to_the_new_provinces_school_district() {
    let system = System::start().await;
    // A pupil whose school district is not Cần Thơ's (092) yet.
    let pupil = system.find("pupil outside Cần Thơ", |c| {
        c.life_status() == LifeStatus::Alive
            && matches!(answer_of(&system, "education", "record", c),
                Some(Answer::EducationRecord(r)) if r.school_district != "092")
    });
    let pid = pid_of(&pupil);
    let mut police = system.registry_as("residence-police").await;
    police
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "move-1".into(),
            pid: pid.clone(),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: Some(v1::Residence {
                province_code: "092".into(),
                address_line: "12 Đường 30 Tháng 4, Ninh Kiều".into(),
            }),
        })
        .await
        .unwrap();
    let moved = until_reacted(
        &system,
        ("moet", "SCHOOL_ENROLMENT"),
        ("education", "record"),
        &pid,
        |a| matches!(a, Answer::EducationRecord(r) if r.school_district == "092"),
    )
    .await;
    // Only the district moved: the rest of the record is as seeded.
    let Some(Answer::EducationRecord(before)) = answer_of(&system, "education", "record", &pupil)
    else {
        unreachable!()
    };
    assert_eq!(
        moved,
        Answer::EducationRecord(v1::EducationRecord {
            school_district: "092".into(),
            ..before
        })
    );
    system.clean_up().await;
}

/// The seeded answer of a sector about a citizen.
fn answer_of(system: &System, sector: &str, q: &str, c: &Citizen) -> Option<Answer> {
    system.truth(sector, q, c).and_then(|a| a.answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_birth_gives_the_child_a_free_health_card() {
    let system = System::start().await;
    let mother = system.find("mother", |c| {
        c.female
            && c.life_status() == LifeStatus::Alive
            && (1990..2000).contains(&(c.date_of_birth / 10_000))
    });
    let mut registry = system.registry_as("civil-registry-hanoi").await;
    let born = Date::new(2026, 11, 2).unwrap();
    let receipt = registry
        .register_birth(RegisterBirthRequest {
            request_id: "birth-1".into(),
            full_name: "Nguyễn Thị Bé".into(),
            date_of_birth: Some(born.into()),
            sex: v1::Sex::Female as i32,
            birth_province_code: "001".into(),
            mother_pid: pid_of(&mother),
            ..RegisterBirthRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let child = receipt.pid;
    let card = until_reacted(
        &system,
        ("clinic-bach-mai", "HEALTH_INSURANCE_CHECK"),
        ("health", "insurance_card"),
        &child,
        |_| true,
    )
    .await;
    let Answer::HealthInsuranceCard(card) = card else {
        panic!("not a card: {card:?}")
    };
    let child_pid: Pid = child.parse().unwrap();
    assert_eq!(
        card.card_number,
        format!("TE101{:010}", child_pid.as_u64() % 10_000_000_000)
    );
    assert!(card.free_of_charge);
    assert_eq!(card.benefit_level, 1);
    assert_eq!(card.status, CardStatus::Valid as i32);
    assert_eq!(card.valid_from, Some(born.into()));
    assert_eq!(card.valid_to, Some(Date::new(2032, 11, 1).unwrap().into()));
    assert_eq!(child_pid.sex(), Sex::Female);
    system.clean_up().await;
}

/// Publishes `body` to the system's exchange with `routing_key`, confirmed,
/// signed with the gateway's key as the relay signs.
async fn publish(system: &System, routing_key: &str, id: &str, body: &[u8]) {
    let signature = system.signature(body);
    publish_signed(system, routing_key, id, body, Some(&signature)).await;
}

/// [`publish`] with `signature` in its header (none: no header).
async fn publish_signed(
    system: &System,
    routing_key: &str,
    id: &str,
    body: &[u8],
    signature: Option<&str>,
) {
    let mut headers = FieldTable::default();
    if let Some(signature) = signature {
        headers.insert(
            SIGNATURE_HEADER.into(),
            AMQPValue::LongString(signature.into()),
        );
    }
    let conn = amqp().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            system.exchange.as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_message_id(id.into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let _ = conn.close(200, "ok".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_the_queue_goes_on() {
    let system = System::start().await;
    let telecom = system.adapter("telecom").await;
    publish(&system, "citizen.died", "poison-1", b"{ this is not json").await;
    let bad_pid = br#"{"id":"poison-2","seq":1,"type":"citizen.died","pid":"12","occurred_at":"2026-11-24T00:00:00Z","data":{"date_of_death":"2026-11-20"}}"#;
    publish(&system, "citizen.died", "poison-2", bad_pid).await;
    let someone = system.find("subscriber", |c| {
        matches!(answer_of(&system, "telecom", "subscriptions", c),
            Some(Answer::TelecomSubscriptions(s)) if s.count > 0)
            && c.life_status() == LifeStatus::Alive
    });
    let no_date = format!(
        r#"{{"id":"poison-3","seq":2,"type":"citizen.died","pid":"{}","occurred_at":"2026-11-24T00:00:00Z","data":{{}}}}"#,
        pid_of(&someone)
    );
    publish(&system, "citizen.died", "poison-3", no_date.as_bytes()).await;
    // A good event after the poison is still applied.
    let good = format!(
        r#"{{"id":"good-1","seq":3,"type":"citizen.name_changed","pid":"{}","occurred_at":"2026-11-24T00:00:00Z","data":{{"full_name":"x"}}}}"#,
        pid_of(&someone)
    );
    publish(&system, "citizen.name_changed", "good-1", good.as_bytes()).await;
    until_reacted(
        &system,
        ("viettel", "SUBSCRIBER_VERIFICATION"),
        ("telecom", "subscriptions"),
        &pid_of(&someone),
        |a| matches!(a, Answer::TelecomSubscriptions(s)
            if s.subscriptions.iter().all(|s| s.flagged_for_reverification && !s.flagged_for_locking)),
    )
    .await;
    let stats = eventually(
        Duration::from_secs(10),
        "three dead letters counted",
        || {
            let mut telecom = telecom.clone();
            async move {
                let d = telecom
                    .describe(DescribeRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (d.dead_lettered == 3).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(stats.events_applied, 1);
    let dead = drain(&system.dead_letter_queue("telecom")).await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert_eq!(
        dead[0].0, b"{ this is not json",
        "the body is kept as it came"
    );
    assert!(dead[0].1.contains("not JSON"), "{}", dead[0].1);
    assert!(dead[1].1.starts_with("pid:"), "{}", dead[1].1);
    assert!(dead[2].1.contains("data.date_of_death"), "{}", dead[2].1);
    // Nothing is left waiting on the sector's own queue.
    assert!(drain(&system.queue("telecom")).await.is_empty());

    // A stored record that cannot be read: no retry would help, so the
    // event that needs it is dead-lettered too, with its reason.
    let store = rusqlite::Connection::open(system.adapter_store("telecom")).unwrap();
    store
        .execute(
            "INSERT INTO records (pid, query, answer, event_id) VALUES (?1, 'subscriptions', x'ffff', 'test') ON CONFLICT (pid, query) DO UPDATE SET answer = x'ffff'",
            [someone.pid as i64],
        )
        .unwrap();
    let needs_it = format!(
        r#"{{"id":"corrupt-1","seq":4,"type":"citizen.died","pid":"{}","occurred_at":"2026-11-24T00:00:00Z","data":{{"date_of_death":"2026-11-20"}}}}"#,
        pid_of(&someone)
    );
    publish(&system, "citizen.died", "corrupt-1", needs_it.as_bytes()).await;
    let dead = eventually(
        Duration::from_secs(10),
        "the fourth dead letter",
        || async {
            let dead = drain(&system.dead_letter_queue("telecom")).await;
            (!dead.is_empty()).then_some(dead)
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("corrupt"), "{}", dead[0].1);

    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_gateway_did_not_sign_is_dead_lettered_and_changes_nothing() {
    let system = System::start().await;
    let someone = system.find("subscriber", |c| {
        matches!(answer_of(&system, "telecom", "subscriptions", c),
            Some(Answer::TelecomSubscriptions(s)) if s.count > 0)
            && c.life_status() == LifeStatus::Alive
    });
    let pid = pid_of(&someone);
    let died = |id: &str| {
        format!(
            r#"{{"id":"{id}","seq":1,"type":"citizen.died","pid":"{pid}","occurred_at":"2026-11-24T00:00:00Z","data":{{"date_of_death":"2026-11-20"}}}}"#
        )
    };
    // A death nobody signed, and one signed by another key: forged.
    let unsigned = died("forged-1");
    publish_signed(
        &system,
        "citizen.died",
        "forged-1",
        unsigned.as_bytes(),
        None,
    )
    .await;
    let other = lienthong_gateway::signing::SigningKey::ephemeral();
    let forged = died("forged-2");
    let wrong: String = other
        .sign(
            lienthong_gateway::signing::Context::Event,
            forged.as_bytes(),
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    publish_signed(
        &system,
        "citizen.died",
        "forged-2",
        forged.as_bytes(),
        Some(&wrong),
    )
    .await;
    // The gateway's own signature over an altered body does not hold either.
    let genuine = died("altered-1");
    let signature = system.signature(genuine.as_bytes());
    let altered = genuine.replace("2026-11-20", "2026-11-19");
    publish_signed(
        &system,
        "citizen.died",
        "altered-1",
        altered.as_bytes(),
        Some(&signature),
    )
    .await;
    // Signed, but of no type the contract has.
    let unknown = died("unknown-1").replace("citizen.died", "citizen.teleported");
    publish(&system, "citizen.died", "unknown-1", unknown.as_bytes()).await;
    let dead = eventually(Duration::from_secs(20), "four dead letters", || async {
        let dead = drain(&system.dead_letter_queue("telecom")).await;
        (dead.len() >= 4).then_some(dead)
    })
    .await;
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons[0].contains("lienthong_signature: missing"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("does not verify"), "{reasons:?}");
    assert!(reasons[2].contains("does not verify"), "{reasons:?}");
    assert!(reasons[3].starts_with("type:"), "{reasons:?}");
    // The subscriber's SIMs were never flagged for locking.
    let mut viettel = system.exchange_as("viettel").await;
    let answer = query(
        &mut viettel,
        "SUBSCRIBER_VERIFICATION",
        &pid,
        "telecom",
        "subscriptions",
    )
    .await
    .unwrap();
    assert!(
        matches!(answer.answer, Some(Answer::TelecomSubscriptions(s))
            if s.subscriptions.iter().all(|s| !s.flagged_for_locking)),
        "a forged death changed nothing"
    );
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_twice_changes_a_sector_once() {
    let system = System::start().await;
    let banking = system.adapter("banking").await;
    let holder = system.find("bank customer", |c| {
        c.life_status() == LifeStatus::Alive
            && matches!(answer_of(&system, "banking", "kyc_status", c),
                Some(Answer::KycStatus(k)) if k.verified_accounts > 0)
    });
    let body = format!(
        r#"{{"id":"twice-1","seq":9,"type":"citizen.died","pid":"{}","occurred_at":"2026-11-24T00:00:00Z","data":{{"date_of_death":"2026-11-21"}}}}"#,
        pid_of(&holder)
    );
    publish(&system, "citizen.died", "twice-1", body.as_bytes()).await;
    publish(&system, "citizen.died", "twice-1", body.as_bytes()).await;
    let stats = eventually(Duration::from_secs(10), "both deliveries handled", || {
        let mut banking = banking.clone();
        async move {
            let d = banking
                .describe(DescribeRequest {})
                .await
                .ok()?
                .into_inner();
            (d.events_applied + d.duplicates_ignored == 2).then_some(d)
        }
    })
    .await;
    assert_eq!((stats.events_applied, stats.duplicates_ignored), (1, 1));
    // The store holds one application of the event and the one record it
    // changed.
    let store = rusqlite::Connection::open(system.adapter_store("banking")).unwrap();
    let count = |sql: &str| -> i64 { store.query_row(sql, ["twice-1"], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM applied WHERE event_id = ?1"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM records WHERE event_id = ?1"), 1);
    until_reacted(
        &system,
        ("vietcombank", "KYC_ONBOARDING"),
        ("banking", "kyc_status"),
        &pid_of(&holder),
        |a| matches!(a, Answer::KycStatus(k) if k.flagged_deceased),
    )
    .await;
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_loses_nothing_and_keeps_the_order() {
    let system = System::start().await;
    let health = system.adapter("health").await;
    // A child the population does not hold: born, then dead. Applied in the
    // other order, the death would find no card and the card would stay valid.
    let child = Pid::from_parts(1, Sex::Female, 2026, 999_999).unwrap();
    assert!(system.population.index_of_pid(child).is_none());
    let born = format!(
        r#"{{"id":"order-born","seq":1,"type":"citizen.born","pid":"{child}","occurred_at":"2026-11-24T00:00:00Z","data":{{"date_of_birth":"2026-11-01","birth_province_code":"001","sex":"female"}}}}"#
    );
    let died = format!(
        r#"{{"id":"order-died","seq":2,"type":"citizen.died","pid":"{child}","occurred_at":"2026-11-24T00:00:01Z","data":{{"date_of_death":"2026-11-20"}}}}"#
    );
    // Another writer holds the health store, so the adapter cannot commit.
    let store = system.adapter_store("health");
    let (locked, release) = (
        std::sync::mpsc::channel::<()>(),
        std::sync::mpsc::channel::<()>(),
    );
    let (locked_tx, locked_rx) = locked;
    let (release_tx, release_rx) = release;
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(store).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    publish(&system, "citizen.born", "order-born", born.as_bytes()).await;
    publish(&system, "citizen.died", "order-died", died.as_bytes()).await;
    // The commit fails (busy past its timeout): the adapter ends its session
    // and the broker keeps both events.
    let queue = system.queue("health");
    system.wait_for_consumers(&queue, |n| n == 0).await;
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // A new session applies both, in order, once each. (The child is not
    // on the gateway's register, so the adapter is asked directly.)
    let card = eventually(Duration::from_secs(20), "the card is invalidated", || {
        let mut health = health.clone();
        async move {
            let answer = health
                .lookup(LookupRequest {
                    pid: child.to_string(),
                    query: "insurance_card".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .answer?
                .answer?;
            matches!(&answer, Answer::HealthInsuranceCard(c) if c.status == CardStatus::Invalidated as i32)
                .then_some(answer)
        }
    })
    .await;
    let Answer::HealthInsuranceCard(card) = card else {
        unreachable!()
    };
    assert_eq!(card.valid_to, Some(Date::new(2026, 11, 20).unwrap().into()));
    let stats = health
        .clone()
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.events_applied, stats.dead_lettered), (2, 0));
    system.clean_up().await;
}
