//! The adapter's event consumer: its own durable queue on the events
//! exchange, bound to the routing keys its sector follows.
//!
//! ```text
//! lienthong.events ──<routing keys>──▶ lienthong.events.<sector>      (durable,
//!                                         │ x-queue-type quorum: replicated on a
//!                                         │ RabbitMQ cluster; or classic)
//!                                         │ x-dead-letter-exchange ""
//!                                         │ x-dead-letter-routing-key ─┐
//!      delivery ─▶ parse ─▶ apply in one SQLite transaction ─▶ ack     │
//!        │ duplicate event id ─────────────────────────────────▶ ack   │
//!        │ poison (unreadable, or a stored record corrupt):            │
//!        │   copy + x-lienthong-reason ─▶ dead queue (mandatory,       │
//!        │   confirmed) ─▶ ack                                         ▼
//!        │                        lienthong.events.<sector>.dead (durable,
//!        │                                            the same queue type)
//!        │ store failed, or the copy refused: the session ends; the
//!        │   broker puts every unacknowledged message back, in order,
//!        │   and a new session starts after a backoff
//! ```
//!
//! Nothing is acknowledged before the store committed it, so a crash
//! redelivers and the event id makes the redelivery a no-op; a failure never
//! lets a later event overtake an earlier one. A broker that goes away is
//! reconnected with backoff; look-ups go on meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::watch;

use super::adapter::Adapter;
use super::store::Applied;
use lienthong_proto::event::{Event, Poison, SIGNATURE_HEADER, verify_signature};

/// The header carrying why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-lienthong-reason";

/// Where the consumer reads from.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The broker.
    pub url: String,
    /// The events exchange (topic).
    pub exchange: String,
    /// Messages delivered and not yet acknowledged, at most.
    pub prefetch: u16,
    /// The type the queues are declared with.
    pub queue_type: QueueType,
}

/// How the adapter's queue and its dead-letter queue are kept by RabbitMQ.
///
/// A queue's type is fixed when it is first declared: an adapter declaring
/// an existing queue with another type is refused by the broker
/// (`PRECONDITION_FAILED - inequivalent arg 'x-queue-type'`), and says so
/// in its log at every attempt. To move a queue to another type, stop the
/// adapter once its queue is empty, delete both queues, and start it with
/// the new type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// Raft-replicated over the cluster's nodes (a single node serves one
    /// too): a node lost loses no event.
    #[default]
    Quorum,
    /// Kept on one node.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

impl ConsumerConfig {
    /// The queue of `sector`: named after the exchange it follows, so
    /// adapters of two systems on one broker never share a queue.
    pub fn queue(&self, sector: &str) -> String {
        format!("{}.{sector}", self.exchange)
    }

    /// The dead-letter queue of `sector`.
    pub fn dead_letter_queue(&self, sector: &str) -> String {
        format!("{}.{sector}.dead", self.exchange)
    }
}

/// Backoff between broker sessions.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// A session that lasted this long was healthy: the backoff starts over.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// Consumes until `stop` turns true, reconnecting whenever the broker is
/// unreachable or drops the connection.
/// `bound` turns true once the queue is declared and bound.
pub async fn consume(
    adapter: Arc<Adapter>,
    config: ConsumerConfig,
    mut stop: watch::Receiver<bool>,
    bound: watch::Sender<bool>,
) {
    let sector = adapter.sector().name();
    adapter.note_applied(None);
    let mut backoff = BACKOFF.0;
    loop {
        let started = std::time::Instant::now();
        let ended = tokio::select! {
            ended = session(&adapter, &config, &bound) => ended,
            _ = stop.wait_for(|s| *s) => return,
        };
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = BACKOFF.0;
        }
        tracing::warn!(
            sector,
            error = %ended,
            retry_in_ms = backoff.as_millis() as u64,
            "event consumer: broker session ended"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Declares the exchange, the queue, its dead-letter queue and bindings.
async fn declare(
    channel: &Channel,
    config: &ConsumerConfig,
    adapter: &Adapter,
) -> lapin::Result<String> {
    let sector = adapter.sector().name();
    let queue = config.queue(sector);
    let dead = config.dead_letter_queue(sector);
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let typed = || {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(config.queue_type.as_str().into()),
        );
        args
    };
    channel
        .queue_declare(dead.as_str().into(), durable, typed())
        .await?;
    let mut args = typed();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dead.as_str().into()),
    );
    channel
        .queue_declare(queue.as_str().into(), durable, args)
        .await?;
    for key in adapter.sector().spec().routing_keys {
        channel
            .queue_bind(
                queue.as_str().into(),
                config.exchange.as_str().into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(queue)
}

/// Longest wait for an acknowledgement to be sent.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Acknowledges `delivery`, within [`ACK_TIMEOUT`]: an ack sent as the
/// broker goes away may never finish, and the session must not wait on it
/// forever (it ends; the broker redelivers what was not acknowledged, and
/// the event id makes that a no-op).
async fn ack(delivery: &Delivery) -> Result<(), SessionEnd> {
    match tokio::time::timeout(ACK_TIMEOUT, delivery.ack(BasicAckOptions::default())).await {
        Ok(acked) => acked.map(drop).map_err(SessionEnd::from),
        Err(_) => Err(SessionEnd::AckTimeout),
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("connecting took longer than 10 s")]
    ConnectTimeout,
    #[error("an acknowledgement was not sent within 10 s")]
    AckTimeout,
    #[error("the broker closed the consumer")]
    ConsumerClosed,
    /// The store failed on an event: it is handed back with everything
    /// after it by closing the session.
    #[error("event seq {seq} not applied: {error}")]
    Store { seq: u64, error: crate::Error },
    #[error("the dead-letter queue refused a copy; the message stays queued")]
    DeadLetterRefused,
}

/// One broker session: consumes until something fails; then closes the
/// connection, so the broker requeues what was not acknowledged.
async fn session(
    adapter: &Arc<Adapter>,
    config: &ConsumerConfig,
    bound: &watch::Sender<bool>,
) -> SessionEnd {
    let conn = match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&config.url, ConnectionProperties::default()),
    )
    .await
    {
        Err(_) => return SessionEnd::ConnectTimeout,
        Ok(Err(e)) => return e.into(),
        Ok(Ok(conn)) => conn,
    };
    let ended = consume_deliveries(&conn, adapter, config, bound)
        .await
        .err()
        .unwrap_or(SessionEnd::ConsumerClosed);
    let _ = conn
        .close(320, "lienthong adapter session ended".into())
        .await;
    ended
}

/// Declares and consumes on `conn` until something fails.
async fn consume_deliveries(
    conn: &Connection,
    adapter: &Arc<Adapter>,
    config: &ConsumerConfig,
    bound: &watch::Sender<bool>,
) -> Result<(), SessionEnd> {
    let sector = adapter.sector().name();
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let queue = declare(&channel, config, adapter).await?;
    bound.send_replace(true);
    let dead = config.dead_letter_queue(sector);
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            format!("lienthong-adapter-{sector}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(sector, queue, "event consumer: connected");
    while let Some(delivery) = deliveries.next().await {
        handle(adapter, &channel, &dead, &delivery?).await?;
    }
    Ok(())
}

/// Applies one delivery and settles it; a store failure ends the session
/// with the delivery unacknowledged.
async fn handle(
    adapter: &Arc<Adapter>,
    channel: &Channel,
    dead: &str,
    delivery: &Delivery,
) -> Result<(), SessionEnd> {
    let sector = adapter.sector().name();
    // Believed only if the gateway said it: anyone who may publish to the
    // exchange could otherwise declare a living citizen dead.
    let signature = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(SIGNATURE_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        });
    let verified = verify_signature(adapter.gateway_key(), &delivery.data, signature.as_deref());
    let event = match verified.and_then(|()| Event::parse(&delivery.data)) {
        Ok(event) => event,
        Err(poison) => return dead_letter(adapter, channel, dead, delivery, &poison).await,
    };
    let applying = adapter.clone();
    let applied = {
        let event = event.clone();
        tokio::task::spawn_blocking(move || applying.apply(&event)).await
    };
    let poison = match applied {
        Ok(Ok(Ok(Applied::Changed(changed)))) => {
            tracing::info!(sector, seq = event.seq, kind = %event.kind, changed, "event applied");
            adapter.note_applied(Some(event.seq));
            ack(delivery).await?;
            return Ok(());
        }
        Ok(Ok(Ok(Applied::Duplicate))) => {
            tracing::info!(sector, seq = event.seq, kind = %event.kind, "duplicate event ignored");
            adapter.note_applied(Some(event.seq));
            ack(delivery).await?;
            return Ok(());
        }
        Ok(Ok(Err(poison))) => poison,
        // A record the event needs cannot be read: no retry will help.
        Ok(Err(crate::Error::Corrupt)) => Poison(
            "a stored record this event changes is corrupt; repair the store, then redeliver"
                .into(),
        ),
        Ok(Err(error)) => {
            return Err(SessionEnd::Store {
                seq: event.seq,
                error,
            });
        }
        // The reaction panicked: the same event would again.
        Err(_) => Poison("applying the event failed inside the adapter".into()),
    };
    dead_letter(adapter, channel, dead, delivery, &poison).await
}

/// Sends a copy of a message that can never be processed to the
/// dead-letter queue with the reason, then acknowledges it. The copy is
/// mandatory and confirmed: if the broker cannot route or keep it, the
/// session ends and the message stays queued — it is kept, not lost.
async fn dead_letter(
    adapter: &Arc<Adapter>,
    channel: &Channel,
    dead: &str,
    delivery: &Delivery,
    poison: &Poison,
) -> Result<(), SessionEnd> {
    let sector = adapter.sector().name();
    tracing::warn!(sector, reason = %poison, "message can never be processed: dead-lettered");
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(poison.0.as_str().into()),
    );
    headers.insert(
        "x-lienthong-routing-key".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
    let confirmed = channel
        .basic_publish(
            "".into(),
            dead.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    match confirmed {
        Confirmation::Ack(None) => {
            let adapter = adapter.clone();
            let _ = tokio::task::spawn_blocking(move || adapter.count_dead_lettered()).await;
            ack(delivery).await?;
            Ok(())
        }
        // Returned (no such queue), refused, or not confirmed.
        Confirmation::Ack(Some(_)) | Confirmation::Nack(_) | Confirmation::NotRequested => {
            Err(SessionEnd::DeadLetterRefused)
        }
    }
}
