//! Nothing lost: events survive a broker restart in the middle of 50,000
//! writes, and a gateway killed with SIGKILL mid-stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::population::Population;
use lienthong_proto::v1::{self, registry_service_client::RegistryServiceClient};

use crate::amqp::{EventTap, OwnBroker, bind_refusing_queue, delete_queue, unique};
use crate::registry::move_to;
use crate::support::{BIN, Failures, TestGateway, connect_as, serve_args, spawn_serve, wait_for};

/// Starts the tests' own broker node again when dropped (a test that
/// stopped it and then failed).
struct StartAgainOnDrop(Option<Arc<OwnBroker>>);

impl Drop for StartAgainOnDrop {
    fn drop(&mut self) {
        if let Some(broker) = self.0.take() {
            broker.rabbitmqctl(&["start_app"]);
        }
    }
}

/// The outbox as committed: seq → event id.
fn outbox(path: &std::path::Path) -> BTreeMap<u64, String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, id FROM outbox ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_writes_survive_a_broker_restart() {
    const WRITES: u64 = 50_000;
    const WRITERS: u64 = 32;
    // The tests' own node: stopping it cuts off no other test.
    let broker = Arc::new(OwnBroker::get());
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start_on(&broker.url, &exchange).await;
    let gw = TestGateway::with_events_on(&broker.url, &exchange).await;
    let mut relay = gw.relay.clone().unwrap();
    let people: Arc<Vec<u64>> = Arc::new(
        gw.population
            .iter()
            .filter(|c| c.life_status() != LifeStatus::Deceased)
            .map(|c| c.pid)
            .collect(),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = RegistryServiceClient::new(gw.channel("police").await);
        let (people, acked) = (people.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut client = client;
            for i in (w..WRITES).step_by(WRITERS as usize) {
                let pid = people[(i as usize) % people.len()];
                client
                    .change_residence(move_to(format!("w-{i}"), pid, i))
                    .await
                    .expect("the gateway takes writes whether or not the broker is up");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Stop the broker a fifth of the way in, restart it at three fifths.
    wait_for(Duration::from_secs(120), "10,000 writes", || {
        acked.load(Ordering::Relaxed) >= WRITES / 5
    })
    .await;
    let stopped_at = acked.load(Ordering::Relaxed);
    let ctl = broker.clone();
    tokio::task::spawn_blocking(move || ctl.rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    // Should the test fail while it is stopped, the node is started again.
    let mut stopped = StartAgainOnDrop(Some(broker.clone()));
    tokio::time::timeout(Duration::from_secs(30), relay.wait_for(|s| !s.connected))
        .await
        .expect("the relay notices the broker is gone")
        .unwrap();
    // Queries are answered while the broker is down.
    let someone = gw.population.citizen(0);
    let answer = gw
        .client("clinic")
        .await
        .get_citizen(v1::GetCitizenRequest {
            purpose: "HEALTH_INSURANCE_CHECK".into(),
            pid: format!("{:012}", someone.pid),
            fields: vec![v1::CitizenField::Sex as i32],
            ..Default::default()
        })
        .await
        .expect("queries need no broker");
    assert_eq!(answer.into_inner().values.len(), 1);
    wait_for(Duration::from_secs(120), "30,000 writes", || {
        acked.load(Ordering::Relaxed) >= WRITES * 3 / 5
    })
    .await;
    let restarted_at = acked.load(Ordering::Relaxed);
    let ctl = broker.clone();
    // Started here instead.
    stopped.0 = None;
    tokio::task::spawn_blocking(move || {
        ctl.rabbitmqctl(&["start_app"]);
        ctl.rabbitmqctl(&["await_startup"]);
    })
    .await
    .unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert!(stopped_at < restarted_at && restarted_at < WRITES);

    let got = tap
        .wait_until(Duration::from_secs(180), "every event", |r| {
            r.iter().map(|m| m.seq()).collect::<BTreeSet<_>>().len() as u64 >= WRITES
        })
        .await;
    let committed = outbox(&gw.registry_path());
    assert_eq!(committed.len() as u64, WRITES);
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        (1..=WRITES).collect::<Vec<_>>(),
        "seq has no gap"
    );
    let mut seen = BTreeSet::new();
    for m in &got {
        let seq = m.seq();
        // Nothing was published that was not committed, and as committed.
        assert_eq!(committed.get(&seq), m.message_id.as_ref(), "seq {seq}");
        seen.insert(seq);
    }
    assert_eq!(seen.len() as u64, WRITES, "every event arrived");
    let duplicates = got.len() as u64 - WRITES;
    // Publishing order is seq order: first deliveries come in increasing seq.
    let mut first = BTreeSet::new();
    let order: Vec<u64> = got
        .iter()
        .map(|m| m.seq())
        .filter(|s| first.insert(*s))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "events in seq order");
    eprintln!(
        "broker stopped after {stopped_at} writes, restarted after {restarted_at}; \
         {WRITES} events delivered, {duplicates} redelivered duplicates"
    );
    tap.delete().await;
}

#[tokio::test]
async fn events_of_acknowledged_writes_survive_a_sigkill() {
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let args = serve_args(data_s, &["--seed", "5", "--events-exchange", &exchange]);
    let (mut child, addr) = spawn_serve(&args).await;
    let population = Population::new(5, 2_000).unwrap();
    let people: Arc<Vec<u64>> = Arc::new(
        population
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
                    .change_residence(move_to(format!("k-{i}"), pid, i))
                    .await
                {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push(r.into_inner().receipt.unwrap().event_id),
                    // Over the agency's rate: retry the same request (same
                    // request_id) when the gateway says, as a client should.
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        use tonic_types::StatusExt;
                        let wait = s.get_details_retry_info().and_then(|r| r.retry_delay);
                        tokio::time::sleep(wait.unwrap_or(Duration::from_millis(10))).await;
                        continue;
                    }
                    // The gateway was killed (when is checked below).
                    Err(s) => {
                        failures.record(s);
                        return;
                    }
                }
                i += 8;
            }
        }));
    }
    wait_for(Duration::from_secs(60), "1,000 acknowledged writes", || {
        acked.lock().unwrap().len() >= 1_000
    })
    .await;
    let killed = std::time::Instant::now();
    crate::support::signal(&child, "-KILL");
    child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    // No write failed before the kill, and each failure after it is the
    // connection's loss, not an answer of the gateway.
    failures.assert_only_after(killed, "SIGKILL", |s| {
        matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
        ) && crate::support::reason(s).is_empty()
    });
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();

    // Restarted on the same data directory, the relay resumes.
    let (_child, _) = spawn_serve(&args).await;
    tap.wait_until(
        Duration::from_secs(60),
        "every acknowledged write's event",
        |r| {
            let got: BTreeSet<&str> = r.iter().filter_map(|m| m.message_id.as_deref()).collect();
            acked.iter().all(|id| got.contains(id.as_str()))
        },
    )
    .await;
    let committed = outbox(&data.path().join("registry.db"));
    let n = committed.len() as u64;
    assert!(n >= acked.len() as u64);
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "seq has no gap"
    );
    // `lienthong outbox` reports the lag: nothing waits once all is confirmed.
    let report = |want: &str| {
        let out = crate::support::output_within(
            std::process::Command::new(BIN).args(["outbox", "--data-dir", data_s]),
            Duration::from_secs(60),
        );
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).contains(want)
    };
    wait_for(Duration::from_secs(30), "the outbox drained", || {
        report("waiting for broker  0\n")
    })
    .await;
    assert!(report(&format!("last event seq      {n}\n")));
    tap.delete().await;
}

#[tokio::test]
async fn refused_events_stay_unpublished_until_the_broker_takes_them() {
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let refusing = bind_refusing_queue(&exchange).await;
    let gw = TestGateway::with_events(&exchange).await;
    let mut relay = gw.relay.clone().unwrap();
    let mut police = gw.registry("police").await;
    let person = gw.find(|c| c.life_status() != LifeStatus::Deceased);
    for i in 0..3 {
        police
            .change_residence(move_to(format!("n-{i}"), person.pid, i))
            .await
            .unwrap();
    }
    // The broker nacks every attempt (the tap's queue gets copies); the relay
    // publishes the same events again on a new session, and marks nothing.
    tap.wait_until(Duration::from_secs(30), "a second attempt", |r| {
        r.iter().filter(|m| m.seq() == 1).count() >= 2
    })
    .await;
    let unpublished = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(unpublished(&gw.registry_path()), 3);
    assert_eq!(relay.borrow().confirmed_through, 0);

    delete_queue(&refusing).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        relay.wait_for(|s| s.confirmed_through == 3),
    )
    .await
    .expect("once the broker takes them, all three are confirmed")
    .unwrap();
    assert_eq!(unpublished(&gw.registry_path()), 0);
    tap.delete().await;
}
