//! The outbox relay: committed events to RabbitMQ, in order, nothing lost.
//!
//! One session per broker connection:
//!
//! ```text
//! connect ─▶ confirm_select ─▶ declare lienthong.events (topic, durable)
//!    ▲                                │
//!    │ backoff              read unpublished rows after the cursor (seq order)
//!    │                                │
//!    │                      publish while < window unconfirmed ─┐
//!    │                                │                          │ ack
//!    └── error, nack, broker gone ◀── await oldest confirm ◀─────┘
//!                                     │ every 512 acks (in the background,
//!                                     ▼ publishing goes on) and when idle
//!                          mark confirmed rows published
//! ```
//!
//! Over an outbox that several gateways share, one relay at a time
//! publishes: each waits until it leads ([`Outbox::try_lead`], checked
//! again before every read), so that when the leader dies another takes
//! over within [`LEAD_POLL`] and resumes at the first unconfirmed row.
//!
//! A row is marked published only after the broker confirmed it, so a new
//! session resumes at the first unconfirmed row; events confirmed but not
//! yet marked when the relay stopped are published again (at least once:
//! consumers drop duplicates by event id). Rows are only ever read from
//! committed data, so nothing uncommitted is published.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::{Notify, watch};

use lienthong_proto::event::SIGNATURE_HEADER;

use super::{EventMessage, message};
use crate::clock;
use crate::registry::{Outbox, OutboxLag, OutboxRow};
use crate::signing::{Context, SigningKey};

/// How the relay reaches the broker and paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Exchange to publish to (`lienthong.events` outside tests).
    pub exchange: String,
    /// Most events published and not yet confirmed.
    pub window: usize,
    /// Rows read from the outbox at a time.
    pub read_batch: usize,
    /// How often to look for rows committed by another process.
    pub poll: Duration,
    /// How long published events stay in the outbox for replays.
    pub retention: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: super::EXCHANGE.to_owned(),
            window: 1024,
            read_batch: 512,
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// What the relay is doing, for health and lag reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStatus {
    /// Whether a session with the broker is up.
    pub connected: bool,
    /// Highest `seq` the broker has confirmed since the relay started.
    pub confirmed_through: u64,
    /// Whether this relay is the one that publishes (always, over an
    /// embedded outbox).
    pub leading: bool,
}

/// How often a relay that does not lead asks again.
pub const LEAD_POLL: Duration = Duration::from_secs(1);

/// Acks marked published together.
const MARK_EVERY: usize = 512;
/// Longest wait for a connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping relay goes on publishing what is committed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the broker to acknowledge closing the connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff between sessions: first and largest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How often published events past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("another gateway took over publishing")]
    NotLeading,
    #[error("broker refused event seq {0} (nack)")]
    Nacked(u64),
    #[error("the broker connection is closed")]
    Disconnected,
    #[error("connecting took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("outbox: {0}")]
    Outbox(#[from] crate::Error),
}

/// Publishes a registry's outbox to RabbitMQ.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    wake: Arc<Notify>,
    config: RelayConfig,
    /// Signs each event's body, so that its consumers can tell the
    /// gateway's events from anyone else's.
    key: Arc<SigningKey>,
    status: watch::Sender<RelayStatus>,
}

impl OutboxRelay {
    /// A relay for `outbox`, woken by `wake` after each commit.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        config: RelayConfig,
        key: Arc<SigningKey>,
    ) -> Self {
        Self {
            outbox,
            wake,
            config,
            key,
            status: watch::channel(RelayStatus::default()).0,
        }
    }

    /// Follows the relay's status.
    pub fn status(&self) -> watch::Receiver<RelayStatus> {
        self.status.subscribe()
    }

    /// How far the broker is behind the registry.
    pub async fn lag(&self) -> crate::Result<OutboxLag> {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || outbox.lag())
            .await
            .map_err(|_| crate::Error::Task)?
    }

    /// Relays until `shutdown` completes, reconnecting with backoff whenever
    /// the broker is unreachable or drops the connection.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut backoff = BACKOFF.0;
        let mut last_purge: Option<Instant> = None;
        while !*stop.borrow() {
            if !self.lead(stop.clone()).await {
                break;
            }
            let started = Instant::now();
            let result = self.session(stop.clone(), &mut last_purge).await;
            self.status.send_modify(|s| s.connected = false);
            let Err(e) = result else { break };
            if started.elapsed() > Duration::from_secs(10) {
                backoff = BACKOFF.0;
            }
            let waiting = self.lag().await.map(|l| l.waiting).unwrap_or(0);
            tracing::warn!(error = %e, waiting, retry_in_ms = backoff.as_millis() as u64, "event relay: broker session ended");
            let mut stop = stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        self.set_leading(false);
        stopper.abort();
    }

    /// Records whether this relay publishes: its status and the
    /// `lienthong_relay_leading` gauge.
    fn set_leading(&self, leading: bool) {
        self.status.send_modify(|s| s.leading = leading);
        metrics::gauge!(crate::telemetry::RELAY_LEADING).set(if leading { 1.0 } else { 0.0 });
    }

    /// Waits until this relay leads; `false` if `stop` came first.
    async fn lead(&self, mut stop: watch::Receiver<bool>) -> bool {
        let mut said = false;
        loop {
            let outbox = self.outbox.clone();
            let leads = tokio::task::spawn_blocking(move || outbox.try_lead()).await;
            match leads {
                Ok(Ok(true)) => {
                    if said || !self.status.borrow().leading {
                        tracing::info!("event relay: this gateway publishes the outbox");
                    }
                    self.set_leading(true);
                    return true;
                }
                Ok(Ok(false)) if !said => {
                    said = true;
                    self.set_leading(false);
                    tracing::info!(
                        "event relay: another gateway publishes the outbox; waiting to take over"
                    );
                }
                Ok(Ok(false)) => {}
                // Not publishing meanwhile: the gauge says so.
                Ok(Err(e)) => {
                    self.set_leading(false);
                    tracing::warn!(error = %e, "event relay: cannot tell who publishes");
                }
                Err(_) => {
                    self.set_leading(false);
                    tracing::error!("event relay: the leadership check failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LEAD_POLL) => {}
                _ = stop.wait_for(|s| *s) => return false,
            }
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), SessionError> {
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.config.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| SessionError::ConnectTimeout(CONNECT_TIMEOUT))??;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    /// One broker session: publishes until an error or `stop`.
    async fn session(
        &self,
        mut stop: watch::Receiver<bool>,
        last_purge: &mut Option<Instant>,
    ) -> Result<(), SessionError> {
        let (conn, channel) = tokio::select! {
            connected = self.connect() => connected?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        self.status.send_modify(|s| s.connected = true);
        tracing::info!(exchange = %self.config.exchange, "event relay: connected");
        let mut acked = Acked::default();
        let result = self
            .pump(&conn, &channel, stop, last_purge, &mut acked)
            .await;
        // However the session ended, what the broker confirmed is marked.
        let marked = self.mark_all(&mut acked).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "relay stopping".into())).await;
        result.and(marked)
    }

    /// Publishes unpublished rows in order, keeping up to `window`
    /// unconfirmed, until an error; once `stop` is set, goes on until
    /// everything committed is confirmed or [`DRAIN_TIMEOUT`] has passed.
    async fn pump(
        &self,
        conn: &Connection,
        channel: &Channel,
        mut stop: watch::Receiver<bool>,
        last_purge: &mut Option<Instant>,
        acked: &mut Acked,
    ) -> Result<(), SessionError> {
        let mut cursor = 0_u64;
        let mut unsent: VecDeque<OutboxRow> = VecDeque::new();
        let mut in_flight: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
        let mut stopping: Option<tokio::time::Instant> = None;
        loop {
            if stopping.is_none() && *stop.borrow() {
                stopping = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            if stopping.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                return Ok(());
            }
            if unsent.is_empty() && in_flight.len() < self.config.window {
                unsent = self.read(cursor).await?.into();
            }
            while in_flight.len() < self.config.window
                && let Some(row) = unsent.pop_front()
            {
                let confirm = self.publish(channel, &self.signed(message(&row))).await?;
                cursor = row.seq;
                in_flight.push_back((row.seq, confirm));
            }
            if let Some((seq, confirm)) = in_flight.front_mut() {
                let seq = *seq;
                let confirmation = match stopping {
                    Some(deadline) => match tokio::time::timeout_at(deadline, confirm).await {
                        Ok(confirmation) => confirmation?,
                        Err(_) => return Ok(()),
                    },
                    None => tokio::select! {
                        confirmation = confirm => confirmation?,
                        _ = stop.wait_for(|s| *s) => continue,
                    },
                };
                in_flight.pop_front();
                match confirmation {
                    Confirmation::Ack(_) | Confirmation::NotRequested => acked.push(seq),
                    Confirmation::Nack(_) => return Err(SessionError::Nacked(seq)),
                }
                if in_flight.is_empty() {
                    self.mark_all(acked).await?;
                } else if acked.count >= MARK_EVERY {
                    self.mark_behind(acked).await?;
                }
            } else if unsent.is_empty() {
                self.mark_all(acked).await?;
                if stopping.is_some() {
                    // Everything committed is confirmed and marked.
                    return Ok(());
                }
                if last_purge.is_none_or(|t| t.elapsed() > PURGE_EVERY) {
                    self.purge().await;
                    *last_purge = Some(Instant::now());
                }
                if !conn.status().connected() {
                    return Err(SessionError::Disconnected);
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
        }
    }

    /// The next rows to publish, while this relay still leads.
    async fn read(&self, after: u64) -> Result<Vec<OutboxRow>, SessionError> {
        let outbox = self.outbox.clone();
        let limit = self.config.read_batch;
        let rows = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::Error>(match outbox.try_lead()? {
                true => Some(outbox.unpublished(after, limit)?),
                false => None,
            })
        })
        .await
        .map_err(|_| crate::Error::Task)??;
        rows.ok_or_else(|| {
            self.set_leading(false);
            SessionError::NotLeading
        })
    }

    /// `message` with the gateway's signature of its body.
    fn signed(&self, mut message: EventMessage) -> EventMessage {
        let signature = self.key.sign(Context::Event, &message.body);
        let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
        message.headers.push((SIGNATURE_HEADER, hex));
        message
    }

    async fn publish(
        &self,
        channel: &Channel,
        message: &EventMessage,
    ) -> Result<PublisherConfirm, SessionError> {
        Ok(channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &message.body,
                amqp_properties(message),
            )
            .await?)
    }

    /// Starts marking the confirmed rows published in the background, unless
    /// a mark is still running (the rows wait for the next one then);
    /// reports a failed earlier mark.
    async fn mark_behind(&self, acked: &mut Acked) -> Result<(), SessionError> {
        if let Some(running) = acked.marking.take_if(|m| m.is_finished()) {
            // Finished: joining it does not wait.
            let through = running.await.map_err(|_| crate::Error::Task)??;
            self.confirmed(through);
        }
        if acked.marking.is_some() {
            return Ok(());
        }
        if let Some((from, through)) = acked.take() {
            let outbox = self.outbox.clone();
            acked.marking = Some(tokio::task::spawn_blocking(move || {
                outbox.mark_published(from, through, &clock::now())?;
                Ok(through)
            }));
        }
        Ok(())
    }

    /// Marks every confirmed row published, waiting for a background mark.
    async fn mark_all(&self, acked: &mut Acked) -> Result<(), SessionError> {
        if let Some(running) = acked.marking.take() {
            let through = running.await.map_err(|_| crate::Error::Task)??;
            self.confirmed(through);
        }
        let Some((from, through)) = acked.take() else {
            return Ok(());
        };
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || outbox.mark_published(from, through, &clock::now()))
            .await
            .map_err(|_| crate::Error::Task)??;
        self.confirmed(through);
        Ok(())
    }

    fn confirmed(&self, through: u64) {
        self.status
            .send_modify(|s| s.confirmed_through = s.confirmed_through.max(through));
    }

    /// Deletes published events past retention (failures only logged).
    async fn purge(&self) {
        let outbox = self.outbox.clone();
        let before = clock::before_now(self.config.retention);
        match tokio::task::spawn_blocking(move || outbox.purge_published(&before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(purged)) => tracing::info!(
                purged,
                "event relay: purged published events past retention"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "event relay: purge failed"),
            Err(_) => tracing::warn!("event relay: purge task failed"),
        }
    }
}

/// The AMQP properties of `message`: persistent, JSON, its id and time, and
/// the CloudEvents attributes as headers.
pub fn amqp_properties(message: &EventMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert((*name).into(), AMQPValue::LongString(value.as_str().into()));
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message.message_id.as_str().into())
        .with_timestamp(message.timestamp)
        .with_app_id("lienthong".into())
        .with_headers(headers)
}

/// Confirmed sequence numbers not yet marked: always one contiguous range,
/// since confirms are awaited in publishing order; and the mark running in
/// the background, if any (it returns the last `seq` it marked).
#[derive(Debug, Default)]
struct Acked {
    range: Option<(u64, u64)>,
    count: usize,
    marking: Option<tokio::task::JoinHandle<crate::Result<u64>>>,
}

impl Acked {
    fn push(&mut self, seq: u64) {
        self.range = Some(self.range.map_or((seq, seq), |(from, _)| (from, seq)));
        self.count += 1;
    }

    fn take(&mut self) -> Option<(u64, u64)> {
        self.count = 0;
        self.range.take()
    }
}
