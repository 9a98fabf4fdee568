//! QuerySector through the gateway: each query returns the seeded truth,
//! refusals have their reasons, and an adapter that stops is reported
//! SECTOR_UNAVAILABLE within the deadline and is used again once back.

use std::time::{Duration, Instant};

use lienthong_proto::adapter::v1::{DescribeRequest, LookupRequest};
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::v1::{ListAccessesRequest, VerifyIdentityRequest};
use tonic::Code;

use crate::support::{
    SECTOR_DEADLINE, SECTOR_IN_FLIGHT, System, eventually, pid_of, query, reason,
};

/// (agency, purpose, sector, query): every query of the five sectors, each
/// asked by an agency the default policy grants it to.
const ASKED: [(&str, &str, &str, &str); 6] = [
    (
        "vss",
        "SOCIAL_INSURANCE_ENROLMENT",
        "social_insurance",
        "record",
    ),
    (
        "clinic-bach-mai",
        "HEALTH_INSURANCE_CHECK",
        "health",
        "insurance_card",
    ),
    (
        "clinic-bach-mai",
        "MEDICAL_TREATMENT",
        "health",
        "vaccinations",
    ),
    ("moet", "SCHOOL_ENROLMENT", "education", "record"),
    (
        "viettel",
        "SUBSCRIBER_VERIFICATION",
        "telecom",
        "subscriptions",
    ),
    ("vietcombank", "KYC_ONBOARDING", "banking", "kyc_status"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sector_query_returns_the_seeded_truth() {
    let system = System::start().await;
    let mut answered = 0;
    let mut not_found = 0;
    for (agency, purpose, sector, q) in ASKED {
        let mut client = system.exchange_as(agency).await;
        // A spread of people: every 97th citizen, the living and the dead.
        for citizen in system.population.iter().step_by(97) {
            let pid = pid_of(&citizen);
            let got = query(&mut client, purpose, &pid, sector, q).await;
            match system.truth(sector, q, &citizen) {
                Some(truth) => {
                    assert_eq!(got.unwrap(), truth, "{sector}.{q} of {pid}");
                    answered += 1;
                }
                None => {
                    let status = got.unwrap_err();
                    assert_eq!(status.code(), Code::NotFound, "{sector}.{q} of {pid}");
                    assert_eq!(reason(&status), "SECTOR_RECORD_NOT_FOUND");
                    not_found += 1;
                }
            }
        }
    }
    assert!(
        answered > 150 && not_found > 5,
        "{answered} answered, {not_found} not found"
    );
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_reasons_and_only_the_gateway_reaches_an_adapter() {
    let system = System::start().await;
    let someone = pid_of(&system.find("adult", |c| c.pid % 2 == 0));
    let mut bank = system.exchange_as("vietcombank").await;
    // A query the grant does not name.
    let status = query(
        &mut bank,
        "KYC_ONBOARDING",
        &someone,
        "health",
        "insurance_card",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "SECTOR_QUERY_NOT_PERMITTED")
    );
    // A purpose without query_sector.
    let status = query(
        &mut bank,
        "CREDIT_APPLICATION",
        &someone,
        "banking",
        "kyc_status",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&status), "PURPOSE_NOT_PERMITTED");
    // A malformed Pid, and one nobody has: the adapter is not asked.
    let status = query(
        &mut bank,
        "KYC_ONBOARDING",
        "12345",
        "banking",
        "kyc_status",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&status), "PID_MALFORMED");
    let status = query(
        &mut bank,
        "KYC_ONBOARDING",
        "001899000001",
        "banking",
        "kyc_status",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&status), "CITIZEN_NOT_FOUND");
    let status = query(
        &mut bank,
        "KYC_ONBOARDING",
        &someone,
        "Banking",
        "kyc_status",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&status), "ARGUMENT_INVALID");

    // Each question is in the audit, refusals too: the citizen sees them.
    let mut idp = system.citizen_as("vneid").await;
    let accesses = idp
        .list_accesses(ListAccessesRequest {
            citizen_pid: someone.clone(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .accesses;
    let seen: Vec<(&str, &str, Vec<String>)> = accesses
        .iter()
        .map(|a| (a.operation.as_str(), a.outcome.as_str(), a.fields.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("query_sector", "ARGUMENT_INVALID", vec![]),
            (
                "query_sector",
                "PURPOSE_NOT_PERMITTED",
                vec!["banking.kyc_status".to_owned()]
            ),
            (
                "query_sector",
                "SECTOR_QUERY_NOT_PERMITTED",
                vec!["health.insurance_card".to_owned()]
            ),
        ]
    );

    // An agency's certificate is refused by the adapter itself.
    let mut direct = system
        .adapter_as(
            "banking",
            system.pki.agency_cert("vietcombank"),
            system.pki.agency_key("vietcombank"),
        )
        .await;
    let status = direct
        .lookup(LookupRequest {
            pid: someone.clone(),
            query: "kyc_status".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // The gateway's certificate is taken.
    let mut adapter = system.adapter("banking").await;
    let described = adapter
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.sector, "banking");
    assert_eq!(described.queries, ["kyc_status"]);
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_adapter_is_unavailable_fast_and_used_again_once_back() {
    let mut system = System::start().await;
    let citizen = system.find("living adult", |c| c.life_status() == LifeStatus::Alive);
    let pid = pid_of(&citizen);
    let mut bank = system.exchange_as("vietcombank").await;
    let mut telco = system.exchange_as("viettel").await;
    let before = query(&mut bank, "KYC_ONBOARDING", &pid, "banking", "kyc_status")
        .await
        .unwrap();

    system.stop_adapter("banking").await;
    for _ in 0..5 {
        let started = Instant::now();
        let status = query(&mut bank, "KYC_ONBOARDING", &pid, "banking", "kyc_status")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "SECTOR_UNAVAILABLE");
        // A stopped adapter refuses the connection at once: answered before
        // the sector's deadline (loose: 5 s), not at it.
        assert!(
            started.elapsed() < SECTOR_DEADLINE,
            "answered after {:?}, as late as the deadline",
            started.elapsed()
        );
        // The other sectors go on meanwhile.
        query(
            &mut telco,
            "SUBSCRIBER_VERIFICATION",
            &pid,
            "telecom",
            "subscriptions",
        )
        .await
        .unwrap();
    }

    system.restart_adapter("banking").await;
    let after = eventually(Duration::from_secs(15), "banking answers again", || {
        let mut bank = bank.clone();
        let pid = pid.clone();
        async move {
            query(&mut bank, "KYC_ONBOARDING", &pid, "banking", "kyc_status")
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(after, before);
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_adapter_is_cut_at_the_deadline_and_holds_nothing_else() {
    let system = System::start_with_stalled("banking").await;
    let citizen = system.find("living adult", |c| c.life_status() == LifeStatus::Alive);
    let pid = pid_of(&citizen);
    let bank = system.exchange_as("vietcombank").await;
    let mut clinic = system.exchange_as("clinic-bach-mai").await;

    // Twice as many calls to the stalled adapter as it may have in flight,
    // all at once: the bound lets half of them through to the adapter and
    // refuses the others at once, with no queue.
    let stalled: Vec<_> = (0..2 * SECTOR_IN_FLIGHT)
        .map(|_| {
            let (mut bank, pid) = (bank.clone(), pid.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let status = query(&mut bank, "KYC_ONBOARDING", &pid, "banking", "kyc_status")
                    .await
                    .unwrap_err();
                (status, started.elapsed())
            })
        })
        .collect();
    eventually(
        Duration::from_secs(20),
        "the calls in flight at the stalled adapter",
        || async { (system.stalled_lookups() == SECTOR_IN_FLIGHT).then_some(()) },
    )
    .await;
    // Meanwhile the gateway's other work goes on: a verification and
    // another sector are answered while the look-ups are still held.
    clinic
        .verify_identity(VerifyIdentityRequest {
            purpose: "HEALTH_INSURANCE_CHECK".into(),
            r#match: None,
            claim: Some(lienthong_proto::v1::IdentityClaim {
                pid: pid.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    query(
        &mut clinic,
        "MEDICAL_TREATMENT",
        &pid,
        "health",
        "vaccinations",
    )
    .await
    .unwrap();
    let unfinished = stalled.iter().filter(|t| !t.is_finished()).count();
    assert!(
        unfinished >= SECTOR_IN_FLIGHT,
        "the other work waited for the held look-ups: {unfinished} still held"
    );
    let (mut refused, mut cut) = (0, 0);
    for call in stalled {
        let (status, took) = call.await.unwrap();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "SECTOR_UNAVAILABLE");
        if status.message().contains("in flight") {
            refused += 1;
        } else {
            // A timer does not fire early; the upper bound is loose (the
            // machine is shared).
            assert!(
                took >= SECTOR_DEADLINE - Duration::from_millis(50)
                    && took < SECTOR_DEADLINE + Duration::from_secs(10),
                "cut after {took:?}, the deadline is {SECTOR_DEADLINE:?}"
            );
            cut += 1;
        }
    }
    assert_eq!((refused, cut), (SECTOR_IN_FLIGHT, SECTOR_IN_FLIGHT));
    // The refused calls never reached the adapter.
    assert_eq!(system.stalled_lookups(), SECTOR_IN_FLIGHT);
    // Those failures opened the circuit: the next call is refused without
    // asking the adapter, with a RetryInfo.
    let mut bank = bank.clone();
    let status = query(&mut bank, "KYC_ONBOARDING", &pid, "banking", "kyc_status")
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "SECTOR_UNAVAILABLE");
    assert_eq!(
        system.stalled_lookups(),
        SECTOR_IN_FLIGHT,
        "the open circuit did not ask the adapter"
    );
    {
        use tonic_types::StatusExt;
        assert!(status.get_details_retry_info().is_some());
    }
    system.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_of_another_population_is_refused_not_believed() {
    let system = System::start_with_other_population("education").await;
    let pupil = system.find("pupil", |c| {
        c.life_status() == LifeStatus::Alive && system.truth("education", "record", c).is_some()
    });
    let mut moet = system.exchange_as("moet").await;
    let status = query(
        &mut moet,
        "SCHOOL_ENROLMENT",
        &pid_of(&pupil),
        "education",
        "record",
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "SECTOR_UNAVAILABLE");
    assert!(
        status.message().contains("another population"),
        "{}",
        status.message()
    );
    let described = system
        .adapter("education")
        .await
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    let population = described.population.unwrap();
    assert_eq!(
        (population.seed, population.citizens),
        (crate::support::SEED + 1, crate::support::CITIZENS)
    );
    // The other sectors, of the registry's population, answer.
    let mut bank = system.exchange_as("vietcombank").await;
    query(
        &mut bank,
        "KYC_ONBOARDING",
        &pid_of(&pupil),
        "banking",
        "kyc_status",
    )
    .await
    .unwrap();
    system.clean_up().await;
}
