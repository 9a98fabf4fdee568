//! The adapter's event consumer: its own durable queue on the events
//! exchange, bound to the routing keys its sector follows.
//!
//! ```text
//! lienthong.events ──<routing keys>──▶ lienthong.events.<sector>      (durable)
//!                                         │ x-dead-letter-exchange ""
//!                                         │ x-dead-letter-routing-key ─┐
//!      delivery ─▶ parse ─▶ apply in one SQLite transaction ─▶ ack     │
//!        │ duplicate event id ─────────────────────────────────▶ ack   │
//!        │ poison: copy + x-lienthong-reason ─▶ dead queue,            │
//!        │         confirmed ─▶ ack   (copy refused ─▶ reject) ────────┤
//!        │ store failed ─▶ wait, nack + requeue                         ▼
//!                                       lienthong.events.<sector>.dead (durable)
//! ```
//!
//! Nothing is acknowledged before the store committed it, so a crash
//! redelivers and the event id makes the redelivery a no-op. A broker that
//! goes away is reconnected with backoff; look-ups go on meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::watch;

use super::adapter::Adapter;
use super::event::{Event, Poison};
use super::store::Applied;

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
/// Wait before handing back a message the store failed on.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Consumes until `stop` turns true, reconnecting whenever the broker is
/// unreachable or drops the connection.
pub async fn consume(
    adapter: Arc<Adapter>,
    config: ConsumerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let sector = adapter.sector().name();
    let mut backoff = BACKOFF.0;
    loop {
        let session = tokio::select! {
            ended = session(&adapter, &config) => ended,
            _ = stop.wait_for(|s| *s) => return,
        };
        match session {
            Ok(()) => backoff = BACKOFF.0,
            Err(e) => {
                tracing::warn!(sector, error = %e, retry_in_ms = backoff.as_millis() as u64, "event consumer: broker session ended")
            }
        }
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
    channel
        .queue_declare(dead.as_str().into(), durable, FieldTable::default())
        .await?;
    let mut args = FieldTable::default();
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
    for key in adapter.sector().routing_keys() {
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

/// One broker session: consumes until the connection fails.
async fn session(adapter: &Arc<Adapter>, config: &ConsumerConfig) -> Result<(), String> {
    let sector = adapter.sector().name();
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&config.url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| "connecting took longer than 10 s".to_owned())?
    .map_err(|e| e.to_string())?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let queue = declare(&channel, config, adapter)
        .await
        .map_err(|e| e.to_string())?;
    let dead = config.dead_letter_queue(sector);
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            format!("lienthong-adapter-{sector}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(sector, queue, "event consumer: connected");
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery.map_err(|e| e.to_string())?;
        handle(adapter, &channel, &dead, &delivery)
            .await
            .map_err(|e| e.to_string())?;
    }
    Err("the broker closed the consumer".to_owned())
}

/// Applies one delivery and settles it.
async fn handle(
    adapter: &Arc<Adapter>,
    channel: &Channel,
    dead: &str,
    delivery: &Delivery,
) -> lapin::Result<bool> {
    let sector = adapter.sector().name();
    let event = match Event::parse(&delivery.data) {
        Ok(event) => event,
        Err(poison) => return dead_letter(adapter, channel, dead, delivery, &poison).await,
    };
    let applying = adapter.clone();
    let applied = {
        let event = event.clone();
        tokio::task::spawn_blocking(move || applying.apply(&event)).await
    };
    match applied {
        Ok(Ok(Ok(Applied::Changed(changed)))) => {
            tracing::info!(sector, seq = event.seq, kind = %event.kind, changed, "event applied");
            delivery.ack(BasicAckOptions::default()).await
        }
        Ok(Ok(Ok(Applied::Duplicate))) => {
            tracing::info!(sector, seq = event.seq, kind = %event.kind, "duplicate event ignored");
            delivery.ack(BasicAckOptions::default()).await
        }
        Ok(Ok(Err(poison))) => dead_letter(adapter, channel, dead, delivery, &poison).await,
        Ok(Err(e)) => {
            tracing::error!(sector, seq = event.seq, error = %e, "event not applied; it will be delivered again");
            tokio::time::sleep(STORE_RETRY).await;
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
        Err(_) => {
            tokio::time::sleep(STORE_RETRY).await;
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    }
}

/// Sends a copy of a message that can never be processed to the
/// dead-letter queue with the reason, then acknowledges it; if the broker
/// refuses the copy, rejects the message, which the queue dead-letters
/// itself (without the reason) — either way it is kept, not lost.
async fn dead_letter(
    adapter: &Arc<Adapter>,
    channel: &Channel,
    dead: &str,
    delivery: &Delivery,
    poison: &Poison,
) -> lapin::Result<bool> {
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
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    let adapter = adapter.clone();
    let _ = tokio::task::spawn_blocking(move || adapter.count_dead_lettered()).await;
    match confirmed {
        Confirmation::Ack(_) | Confirmation::NotRequested => {
            delivery.ack(BasicAckOptions::default()).await
        }
        Confirmation::Nack(_) => delivery.reject(BasicRejectOptions { requeue: false }).await,
    }
}
