//! `lienthong up`, the real binary: the gateway and the five adapters in one
//! process, a sector query answered from the seeded truth, a registered
//! death applied by the health adapter from its own queue, a clean exit.

use std::time::Duration;

use lienthong_adapters::framework::Base;
use lienthong_gateway::tls::PkiLayout;
use lienthong_proto::Pid;
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::population::Population;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use lienthong_proto::v1::sector_answer::Answer;
use lienthong_proto::v1::{self, CardStatus, QuerySectorRequest};

use crate::amqp::{delete_exchange, delete_queue, unique};
use crate::support::{LOG_END, connect_as, spawn_serve_logged, terminate, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_gateway_and_the_five_adapters_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exchange = unique("lienthong-up");
    let sectors = lienthong_adapters::sectors::names();
    // Port 0: `up` binds each adapter on a free port and says which.
    let endpoints: Vec<String> = sectors
        .iter()
        .map(|s| format!("{s}=https://127.0.0.1:0"))
        .collect();
    let (mut child, addr, log) = spawn_serve_logged(&[
        "up",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "2000",
        "--seed",
        "3",
        "--events-exchange",
        &exchange,
        "--sector-endpoints",
        &endpoints.join(","),
    ])
    .await;
    wait_for(
        Duration::from_secs(30),
        "five consumers on their queues",
        || {
            let log = log.lock().unwrap();
            assert!(!log.iter().any(|l| l == LOG_END), "up exited: {log:?}");
            log.iter()
                .filter(|l| l.contains("event consumer: connected"))
                .count()
                == 5
        },
    )
    .await;

    // Each adapter says where it bound; the gateway dials it there (the
    // query below goes through the health adapter).
    let bound: std::collections::BTreeSet<u16> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("sector adapter serving"))
        .filter_map(|l| {
            l.split("address=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .map(|a: std::net::SocketAddr| a.port())
        .collect();
    assert_eq!(bound.len(), 5, "five adapters on five ports: {bound:?}");
    assert!(!bound.contains(&0), "{bound:?}");

    // Someone alive with a valid health card, from the same seed.
    let population = Population::new(3, 2000).unwrap();
    let base = Base {
        seed: 3,
        today: population.reference_date(),
    };
    let health = lienthong_adapters::sectors::by_name("health").unwrap();
    let (person, card) = population
        .iter()
        .filter(|c| c.life_status() == LifeStatus::Alive)
        .find_map(
            |c| match health.derive("insurance_card", &c, &base)?.answer? {
                Answer::HealthInsuranceCard(card) if card.status == CardStatus::Valid as i32 => {
                    Some((c, card))
                }
                _ => None,
            },
        )
        .unwrap();
    let pid = Pid::from_u64(person.pid).unwrap().to_string();
    let pki = PkiLayout::under(&data);
    let mut clinic = ExchangeServiceClient::new(connect_as(addr, &pki, "clinic-bach-mai").await);
    let ask = QuerySectorRequest {
        purpose: "HEALTH_INSURANCE_CHECK".into(),
        pid: pid.clone(),
        sector: "health".into(),
        query: "insurance_card".into(),
    };
    let answered = clinic.query_sector(ask.clone()).await.unwrap().into_inner();
    assert_eq!(
        answered.answer.and_then(|a| a.answer),
        Some(Answer::HealthInsuranceCard(card))
    );

    let mut registry =
        RegistryServiceClient::new(connect_as(addr, &pki, "civil-registry-hanoi").await);
    registry
        .record_death(v1::RecordDeathRequest {
            request_id: "up-death-1".into(),
            pid: pid.clone(),
            date_of_death: Some(v1::Date {
                year: 2026,
                month: 11,
                day: 1,
            }),
        })
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = clinic.query_sector(ask.clone()).await.unwrap().into_inner();
        if let Some(Answer::HealthInsuranceCard(card)) = answer.answer.and_then(|a| a.answer)
            && card.status == CardStatus::Invalidated as i32
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the card was not invalidated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(data.join("adapters/health.db").is_file());

    // Each adapter exports the highest event seq it applied, here through
    // the gateway's metrics (one process): the death is seq 1 everywhere.
    let metrics = crate::metrics::metrics_addr(&log.lock().unwrap());
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = crate::metrics::get(metrics, "/metrics").await;
        let applied: Vec<Option<f64>> = sectors
            .iter()
            .map(|s| {
                let label = format!("sector=\"{s}\"");
                crate::metrics::sample(&body, "lienthong_adapter_applied_seq", &[&label])
            })
            .collect();
        if applied.iter().all(|a| *a == Some(1.0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "applied seqs {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = terminate(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    for sector in sectors {
        delete_queue(&format!("{exchange}.{sector}")).await;
        delete_queue(&format!("{exchange}.{sector}.dead")).await;
    }
    delete_exchange(&exchange).await;
}
