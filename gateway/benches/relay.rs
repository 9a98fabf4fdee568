//! Events per second through the outbox relay with publisher confirms,
//! beside a bare lapin publisher sending messages of the same size and
//! properties, with the same confirm mode and in-flight window, to the same
//! exchange and durable queue, in the same run.
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench relay -- [--events N] [--runs R]
//! ```
//!
//! Two routes: to a durable queue (the broker writes every persistent
//! message to disk before confirming: the disk sets the pace), and to no
//! queue at all (the broker confirms on routing: the publishers' own cost
//! shows).
//!
//! Needs the local RabbitMQ (127.0.0.1:5672, guest/guest). The outbox is
//! filled once through the registry's own write path; each relay run marks
//! it unpublished again and publishes it all. Runs alternate relay and
//! baseline; the median of each is reported.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Confirmation, Connection, ConnectionProperties, ExchangeKind};
use lienthong_gateway::events::{EventMessage, OutboxRelay, RelayConfig, amqp_properties, message};
use lienthong_gateway::registry::{
    Outbox, OutboxEvent, Planned, PopulationStore, RequestKey, SqliteRegistry,
};
use lienthong_proto::population::Population;
use tokio::sync::Notify;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn options() -> (u64, usize) {
    let (mut events, mut runs) = (100_000_u64, 3_usize);
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--events" => events = pair[1].parse().expect("--events N"),
            "--runs" => runs = pair[1].parse().expect("--runs R"),
            _ => {}
        }
    }
    (events, runs)
}

/// Fills a new registry's outbox with `n` residence-change events.
fn fill(store: &SqliteRegistry, n: u64) {
    let pop = Population::new(1, 10_000).unwrap();
    for i in 0..n {
        let pid = pop.pid(i % pop.len());
        let request_id = format!("bench-{i}");
        let key = RequestKey {
            agency: "bench",
            request_id: &request_id,
            operation: "change_residence",
            fingerprint: [0; 32],
            node: "test",
        };
        store
            .write(&key, &mut |_| {
                Ok(Planned {
                    records: vec![],
                    event: OutboxEvent {
                        id: uuid::Uuid::now_v7().to_string(),
                        kind: "citizen.residence_changed".into(),
                        pid,
                        occurred_at: "2026-11-23T09:41:07.123456Z".into(),
                        data: format!(
                            r#"{{"kind":"temporary","province_code":"048","address_line":"{} Bạch Đằng, Phường Hải Châu 1, Quận Hải Châu"}}"#,
                            i % 500
                        ),
                    },
                })
            })
            .unwrap();
    }
}

async fn connect() -> Connection {
    Connection::connect(URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test.sh starts it)")
}

/// Publishes `n` copies of `message` with at most `window` unconfirmed.
async fn bare_publisher(exchange: &str, message: &EventMessage, n: u64, window: usize) -> Duration {
    let conn = connect().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let properties = amqp_properties(message);
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for _ in 0..n {
        if in_flight.len() == window {
            let confirm: lapin::PublisherConfirm = in_flight.pop_front().unwrap();
            assert!(matches!(confirm.await.unwrap(), Confirmation::Ack(_)));
        }
        in_flight.push_back(
            channel
                .basic_publish(
                    exchange.into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    properties.clone(),
                )
                .await
                .unwrap(),
        );
    }
    for confirm in in_flight {
        assert!(matches!(confirm.await.unwrap(), Confirmation::Ack(_)));
    }
    let took = started.elapsed();
    let _ = conn.close(200, "done".into()).await;
    took
}

/// Runs a relay over the whole outbox until the broker confirmed all `n`.
async fn relay(store: Arc<SqliteRegistry>, exchange: &str, n: u64) -> Duration {
    let config = RelayConfig {
        exchange: exchange.to_owned(),
        read_batch: std::env::var("RB")
            .map(|v| v.parse().unwrap())
            .unwrap_or(512),
        ..RelayConfig::default()
    };
    let key = Arc::new(lienthong_gateway::signing::SigningKey::ephemeral());
    let relay = OutboxRelay::new(store, Arc::new(Notify::new()), config, key);
    let mut status = relay.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    status.wait_for(|s| s.confirmed_through >= n).await.unwrap();
    let took = started.elapsed();
    let _ = stop.send(());
    task.await.unwrap();
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (n, runs) = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("registry.db");
        let store = Arc::new(SqliteRegistry::open(&db).unwrap());
        let filled = Instant::now();
        fill(&store, n);
        println!("outbox filled with {n} events in {:.1} s", filled.elapsed().as_secs_f64());
        let sample = message(&store.unpublished(0, 1).unwrap()[0]);
        println!("message: {} bytes of body, {} headers", sample.body.len(), sample.headers.len());

        let exchange = format!("lienthong.events.bench.{}", std::process::id());
        let queue = format!("lienthong-bench-{}", std::process::id());
        let conn = connect().await;
        let admin = conn.create_channel().await.unwrap();
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        admin.exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default()).await.unwrap();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        admin.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await.unwrap();
        admin
            .queue_bind(queue.as_str().into(), exchange.as_str().into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();

        let window = RelayConfig::default().window;
        for route in ["durable queue", "no queue"] {
        if route == "no queue" {
            admin
                .queue_unbind(queue.as_str().into(), exchange.as_str().into(), "#".into(), FieldTable::default())
                .await
                .unwrap();
        }
        let (mut relayed, mut bare) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            rusqlite::Connection::open(&db).unwrap().execute("UPDATE outbox SET published_at = NULL", []).unwrap();
            let r = relay(store.clone(), &exchange, n).await;
            admin.queue_purge(queue.as_str().into(), QueuePurgeOptions::default()).await.unwrap();
            // A task on the runtime, as the relay is.
            let b = {
                let (exchange, sample) = (exchange.clone(), sample.clone());
                tokio::spawn(async move { bare_publisher(&exchange, &sample, n, window).await })
                    .await
                    .unwrap()
            };
            admin.queue_purge(queue.as_str().into(), QueuePurgeOptions::default()).await.unwrap();
            let (r, b) = (n as f64 / r.as_secs_f64(), n as f64 / b.as_secs_f64());
            println!("{route}, run {run}: relay {r:>9.0} events/s   bare lapin {b:>9.0} events/s   ratio {:.2}", r / b);
            relayed.push(r);
            bare.push(b);
        }
        let (r, b) = (median(relayed), median(bare));
        println!("{route}, median: relay {r:.0} events/s, bare lapin publisher {b:.0} events/s, ratio {:.2} (window {window}, persistent messages)", r / b);
        }
        let _ = admin.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = admin.exchange_delete(exchange.as_str().into(), Default::default()).await;
        let _ = conn.close(200, "done".into()).await;
    });
}
