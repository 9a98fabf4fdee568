//! The local RabbitMQ, as the tests use it: a consumer that records every
//! event a test's exchange routes to its own durable queue (surviving broker
//! restarts), and the tests' own broker node, which a test may stop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

/// The machine's broker, shared by every test that publishes (and by anyone
/// else on the machine): no test stops it.
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The broker node of the tests' own, which `scripts/test.sh` starts beside
/// the machine's (another node name and port): a test that stops a broker
/// stops this one, cutting off no one else.
pub struct OwnBroker {
    /// Its AMQP URL (`LIENTHONG_TEST_AMQP_URL`).
    pub url: String,
    /// Its node name for `rabbitmqctl -n` (`LIENTHONG_TEST_RABBITMQ_NODE`).
    node: String,
}

impl OwnBroker {
    /// The node `scripts/test.sh` started; panics, saying how to get one,
    /// if the tests run without it.
    pub fn get() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the tests with scripts/test.sh, which starts the \
                     tests' own RabbitMQ node (a test stops and restarts it)"
                )
            })
        };
        Self {
            url: var("LIENTHONG_TEST_AMQP_URL"),
            node: var("LIENTHONG_TEST_RABBITMQ_NODE"),
        }
    }

    /// Runs `rabbitmqctl -n NODE` with `args` (e.g. `stop_app`), panicking
    /// with its output on failure or after two minutes.
    pub fn rabbitmqctl(&self, args: &[&str]) {
        let out = crate::support::output_within(
            std::process::Command::new("rabbitmqctl")
                .args(["-n", &self.node])
                .args(args)
                .env(
                    "PATH",
                    format!(
                        "{}:/usr/sbin:/sbin",
                        std::env::var("PATH").unwrap_or_default()
                    ),
                ),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?}: {}{}",
            self.node,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::now_v7())
}

/// One event as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub headers: BTreeMap<String, String>,
    pub body: serde_json::Value,
}

impl Received {
    /// The body's `seq`.
    pub fn seq(&self) -> u64 {
        self.body["seq"].as_u64().expect("every body has a seq")
    }
}

/// Records every message routed to a durable queue bound to an exchange,
/// reconnecting whenever the broker drops the connection.
pub struct EventTap {
    pub exchange: String,
    /// The broker it consumes from.
    url: String,
    queue: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventTap {
    /// Declares `exchange` (as the relay does) on the machine's broker and a
    /// durable queue bound to it with `#`, then consumes from it in the
    /// background.
    pub async fn start(exchange: &str) -> Self {
        Self::start_on(URL, exchange).await
    }

    /// [`EventTap::start`] on the broker at `url`.
    pub async fn start_on(url: &str, exchange: &str) -> Self {
        let queue = unique("lienthong-test");
        let conn = connect_to(url).await;
        let channel = conn.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                expires_when_unused(),
            )
            .await
            .unwrap();
        bind_all(&channel, &queue, exchange).await;
        let _ = conn.close(200, "declared".into()).await;
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(consume(url.to_owned(), queue.clone(), received.clone()));
        Self {
            exchange: exchange.to_owned(),
            url: url.to_owned(),
            queue,
            received,
            task,
        }
    }

    /// Everything received so far (redeliveries included).
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received, or panics after
    /// `deadline` with what was received.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if tokio::time::Instant::now() > until {
                panic!(
                    "{what}: not within {deadline:?}; {} messages received",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops consuming and deletes the queue and the exchange.
    pub async fn delete(self) {
        self.task.abort();
        let conn = connect_to(&self.url).await;
        let channel = conn.create_channel().await.unwrap();
        let _ = channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(self.exchange.as_str().into(), Default::default())
            .await;
        let _ = conn.close(200, "done".into()).await;
    }
}

/// Binds to `exchange` a queue that refuses every message, so the broker
/// nacks whatever is routed to it; returns the queue's name.
pub async fn bind_refusing_queue(exchange: &str) -> String {
    let queue = unique("lienthong-test-refuse");
    let mut args = expires_when_unused();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let conn = connect().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    bind_all(&channel, &queue, exchange).await;
    let _ = conn.close(200, "declared".into()).await;
    queue
}

/// Binds `queue` to every routing key of `exchange`.
async fn bind_all(channel: &lapin::Channel, queue: &str, exchange: &str) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Deletes an exchange (one a test's gateway declared).
pub async fn delete_exchange(exchange: &str) {
    let conn = connect().await;
    let channel = conn.create_channel().await.unwrap();
    let _ = channel
        .exchange_delete(exchange.into(), Default::default())
        .await;
    let _ = conn.close(200, "deleted".into()).await;
}

/// Deletes a queue.
pub async fn delete_queue(queue: &str) {
    let conn = connect().await;
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = conn.close(200, "deleted".into()).await;
}

/// Queue arguments: a test's queue that outlives its test (a panic skips
/// [`EventTap::delete`]) goes away after ten minutes without a consumer.
fn expires_when_unused() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
    args
}

/// Connects to the machine's broker, retrying for up to a minute (it may be
/// starting).
pub async fn connect() -> Connection {
    connect_to(URL).await
}

/// Connects to the broker at `url`, retrying for up to a minute.
pub async fn connect_to(url: &str) -> Connection {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // A broker still starting may take the TCP connection and never
        // finish the handshake: each attempt gets five seconds.
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(url, ConnectionProperties::default()),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => return c,
            Ok(Err(e)) if tokio::time::Instant::now() > until => {
                panic!("RabbitMQ at {url}: {e} (scripts/test.sh starts it)")
            }
            Err(_) if tokio::time::Instant::now() > until => {
                panic!("RabbitMQ at {url}: no handshake within 5 s (scripts/test.sh starts it)")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn consume(url: String, queue: String, received: Arc<Mutex<Vec<Received>>>) {
    loop {
        // A test may keep the broker down for longer than `connect` waits:
        // the tap waits for it as long as it takes (the test's own
        // deadlines bound the wait).
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await;
        let Ok(Ok(conn)) = attempt else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // A broker still starting may leave these unanswered: each step
        // gets five seconds, then the tap starts over.
        let step = Duration::from_secs(5);
        let Ok(Ok(channel)) = tokio::time::timeout(step, conn.create_channel()).await else {
            continue;
        };
        let consuming = channel.basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let Ok(Ok(mut consumer)) = tokio::time::timeout(step, consuming).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // The stream may not end when the broker goes away: a quiet second
        // on a connection no longer connected starts over. So do ten quiet
        // seconds on one that says it is connected (a consumer made while
        // the broker was still starting was once seen to stay silent with
        // 40,000 messages in its queue); anything unacked comes again.
        let mut quiet = 0;
        loop {
            let delivery = match tokio::time::timeout(Duration::from_secs(1), consumer.next()).await
            {
                Ok(Some(Ok(delivery))) => delivery,
                Ok(_) => break,
                Err(_) if conn.status().connected() && quiet < 10 => {
                    quiet += 1;
                    continue;
                }
                Err(_) => break,
            };
            quiet = 0;
            let p = &delivery.properties;
            let headers = p
                .headers()
                .as_ref()
                .map(|t| {
                    t.inner()
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                AMQPValue::LongString(s) => s.to_string(),
                                other => format!("{other:?}"),
                            };
                            (k.to_string(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            received.lock().unwrap().push(Received {
                routing_key: delivery.routing_key.to_string(),
                message_id: p.message_id().as_ref().map(|s| s.to_string()),
                content_type: p.content_type().as_ref().map(|s| s.to_string()),
                delivery_mode: *p.delivery_mode(),
                headers,
                body: serde_json::from_slice(&delivery.data).unwrap_or(serde_json::Value::Null),
            });
            // Bounded: an ack sent as the broker goes away was once seen
            // never to finish, and the tap with it.
            let acked = tokio::time::timeout(step, delivery.ack(BasicAckOptions::default())).await;
            if !matches!(acked, Ok(Ok(_))) {
                break;
            }
        }
        // Closed, so that a broker still up requeues what it had sent this
        // consumer, for the next one.
        let _ = tokio::time::timeout(step, conn.close(200, "starting over".into())).await;
    }
}
