//! The adapter framework: what every sector adapter is made of.
//!
//! ```text
//!          gateway ──mTLS (CN lienthong-gateway only)──▶ service: Lookup, Describe
//!                                                          │
//!   lienthong.events ──▶ own durable queue ──▶ consumer ──▶ Adapter ──▶ Store (SQLite)
//!                                │ poison                   │ base records derived
//!                                ▼                          ▼ from the population seed
//!                          own dead-letter queue          Sector (one file a sector)
//! ```
//!
//! - [`sector`]: the [`Sector`] trait a sector implements.
//! - [`adapter`]: a sector over its store and the population.
//! - [`store`]: the SQLite store (records changed by events, applied event ids).
//! - [`consumer`]: the queue, acknowledgement after commit, dead letters
//!   (events read as `lienthong_proto::event` decodes them).
//! - [`service`]: the gRPC service; [`tls`]: its mutual TLS.
//! - [`draw`]: deterministic draws for derived data.
//!
//! The framework runs the sector it is given; which sectors exist is
//! [`crate::sectors`]' business.

pub mod adapter;
pub mod consumer;
pub mod draw;
pub mod sector;
pub mod service;
pub mod store;
pub mod tls;

pub use adapter::Adapter;
pub use consumer::{ConsumerConfig, QueueType};
pub use sector::{Base, Records, Sector};
pub use service::AdapterPort;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::Result;

/// How to run one sector's adapter.
#[derive(Clone)]
pub struct AdapterOptions {
    /// The sector it serves.
    pub sector: Arc<dyn Sector>,
    /// Where the sector's store (`<sector>.db`) lives.
    pub data_dir: PathBuf,
    /// The gateway's PKI directory (ca.pem, adapters/<sector>.pem/.key).
    pub pki_dir: PathBuf,
    /// The population seed, as the gateway's.
    pub seed: u64,
    /// Citizens in the population, as the gateway's.
    pub citizens: u64,
    /// The broker and exchange events come from.
    pub events: ConsumerConfig,
    /// How long a connection to its port may carry no call before it is
    /// closed (never if zero).
    pub connection_idle: Duration,
}

/// Opens the sector's store and certificates: everything that can fail
/// before a port is bound.
pub fn open(opts: &AdapterOptions) -> Result<(Arc<Adapter>, AdapterPort)> {
    let sector = opts.sector.clone();
    let port = AdapterPort {
        tls: tls::server_tls(&opts.pki_dir, sector.name())?,
        connection_idle: opts.connection_idle,
    };
    let gateway_key = tls::gateway_signing_key(&opts.pki_dir)?;
    let adapter = Adapter::open(
        sector,
        gateway_key,
        &opts.data_dir,
        opts.seed,
        opts.citizens,
    )?;
    Ok((Arc::new(adapter), port))
}

/// Runs an adapter: serves look-ups on `listener` and consumes events, until
/// `shutdown` completes. A broker that is down does not stop the look-ups.
pub async fn run(
    adapter: Arc<Adapter>,
    listener: TcpListener,
    port: AdapterPort,
    events: ConsumerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (bound, _) = tokio::sync::watch::channel(false);
    run_reporting(adapter, listener, port, events, bound, shutdown).await
}

/// [`run`], turning `bound` true once the adapter's queue is declared and
/// bound on the broker: from then on no event for it is dropped.
pub async fn run_reporting(
    adapter: Arc<Adapter>,
    listener: TcpListener,
    port: AdapterPort,
    events: ConsumerConfig,
    bound: tokio::sync::watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(consumer::consume(adapter.clone(), events, stopped, bound));
    let served = service::serve(adapter, listener, port, shutdown).await;
    let _ = stop.send(true);
    let _ = consumer.await;
    served
}
