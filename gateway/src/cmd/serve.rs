//! `lienthong serve`: the gateway, on its embedded default.
//!
//! On first start in an empty data directory it writes the default policy,
//! creates the development PKI and seeds the synthetic population, so that
//! `lienthong serve` alone gives a working gateway. SIGHUP reloads the
//! policy file without dropping a connection; a file that does not validate
//! leaves the policy in force and the log says why.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::{DataDir, SeedOptions};
use crate::api::{ServerLimits, Services};
use crate::audit::{AccessList, AuditWriter, SharedAudit, SharedAuditWriter};
use crate::blocking::off_runtime;
use crate::clock;
use crate::error::{Error, Result};
use crate::events::{OutboxRelay, RelayConfig};
use crate::policy::LivePolicy;
use crate::registry::{Outbox, PopulationStore, PostgresRegistry, Registry, SqliteRegistry};
use crate::sector::{SectorOptions, Sectors};
use crate::signing::SigningKey;
use crate::telemetry;
use crate::tls::{ensure_pki, server_config};

/// How often the outbox gauges are read.
const OUTBOX_GAUGES_EVERY: Duration = Duration::from_secs(1);

/// How long to wait for the audit log's last checkpoint on shutdown.
const AUDIT_CLOSE: Duration = Duration::from_secs(5);

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Population to seed on first start.
    pub first_start: SeedOptions,
    /// Where and how population change events are published.
    pub relay: RelayConfig,
    /// Where Prometheus scrapes the metrics (`GET /metrics`); `None`: no
    /// metrics.
    pub metrics: Option<SocketAddr>,
    /// Message sizes, calls in flight, the deadline.
    pub limits: ServerLimits,
    /// After the shutdown signal, how long calls in flight (open streams
    /// included) may take before they are cut.
    pub shutdown_grace: Duration,
    /// The sector adapters `QuerySector` asks.
    pub sectors: SectorOptions,
    /// Where the registry lives.
    pub store: StoreChoice,
    /// This replica's name (logs, the metrics' `node` label).
    pub node_name: String,
}

/// Where the registry (citizens, outbox, receipts, consents) lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreChoice {
    /// `DIR/registry.db`: SQLite, embedded.
    #[default]
    Embedded,
    /// A PostgreSQL database that replicas share (its URL).
    Postgres(String),
}

impl StoreChoice {
    /// What `--store` says: nothing for the embedded store, else the
    /// shared store's URL (checked when it opens).
    pub fn from_flag(given: &str) -> Self {
        match given {
            "" => Self::Embedded,
            url => Self::Postgres(url.to_owned()),
        }
    }
}

/// Readies the data directory: the policy (the default on first use), the
/// development PKI and, in an empty registry, the synthetic population.
/// Returns the policy and the registry `store` names, opened for replica
/// `node` (a shared one off the runtime: it connects over the network).
pub(crate) async fn first_start(
    dir: &DataDir,
    seed: &SeedOptions,
    store: &StoreChoice,
    node: &str,
) -> Result<(crate::policy::Policy, Arc<dyn Registry>)> {
    let (policy, registry): (_, Arc<dyn Registry>) = match store {
        StoreChoice::Embedded => {
            let policy = match dir.has_served() {
                true => what_served_holds(dir)?,
                false => first_fill(dir, seed).await?,
            };
            (policy, Arc::new(SqliteRegistry::open(dir.registry())?))
        }
        StoreChoice::Postgres(url) => {
            let (policy, registry) = shared_fill(dir, seed, url, node).await?;
            (policy, Arc::new(registry))
        }
    };
    // The consumers of its events check them with its public key.
    let key = crate::signing::SigningKey::load_or_create(&dir.signing_key())?;
    crate::tls::publish_signing_key(&dir.pki(), &key.verifying_key())?;
    Ok((policy, registry))
}

/// What a data directory that has never served is given: the policy, a
/// development PKI where there is none, the seeded registry.
async fn first_fill(dir: &DataDir, seed: &SeedOptions) -> Result<crate::policy::Policy> {
    let policy = dir.prepare()?;
    // A development PKI where there is none; an existing one is used as it
    // is (`lienthong certs` adds to it): serve never reads the CA's key.
    if !dir.pki().ca_cert().exists() {
        let created = ensure_pki(&dir.pki(), policy.agencies.keys().map(String::as_str))?;
        tracing::info!(files = created.created.len(), pki = %dir.pki().root.display(), "created development certificates");
    }
    let store = SqliteRegistry::open(dir.registry())?;
    if store.is_empty()? {
        let started = Instant::now();
        tracing::info!(
            citizens = seed.citizens,
            seed = seed.seed,
            "first start: seeding the synthetic population"
        );
        drop(store);
        let dir = dir.clone();
        let seed_opts = seed.clone();
        tokio::task::spawn_blocking(move || super::seed(&dir, &StoreChoice::Embedded, &seed_opts))
            .await
            .map_err(|_| Error::Task)??;
        tracing::info!(seconds = started.elapsed().as_secs_f32(), "seeded");
    }
    Ok(policy)
}

/// A replica's data directory over a shared registry: the policy and PKI
/// as on the embedded store (a cluster's replicas are given the same ones);
/// the register seeded once, by whichever replica finds it empty first.
async fn shared_fill(
    dir: &DataDir,
    seed: &SeedOptions,
    url: &str,
    node: &str,
) -> Result<(crate::policy::Policy, PostgresRegistry)> {
    let policy = if dir.has_served() {
        crate::policy::Policy::load(&dir.policy())?
    } else {
        let policy = dir.prepare()?;
        if !dir.pki().ca_cert().exists() {
            ensure_pki(&dir.pki(), policy.agencies.keys().map(String::as_str))?;
        }
        policy
    };
    let (url, seed, node) = (url.to_owned(), seed.clone(), node.to_owned());
    let registry = off_runtime(move || {
        let store = PostgresRegistry::open(&url)?.on_node(&node);
        if store.is_empty()? {
            let population =
                lienthong_proto::population::Population::new(seed.seed, seed.citizens)?;
            let started = Instant::now();
            // Another replica may have seeded it meanwhile: then it is done.
            if let Some(written) = store.seed_if_empty(&population, |_| {})? {
                tracing::info!(
                    citizens = written,
                    seconds = started.elapsed().as_secs_f32(),
                    "seeded the shared registry"
                );
            }
        }
        Ok(store)
    })
    .await?;
    Ok((policy, registry))
}

/// The policy of a data directory that has served, once it is known to
/// hold everything it held then: a missing policy, registry or signing key,
/// or an empty registry, is an error naming the file — never a default
/// policy, a new key or a freshly seeded population.
fn what_served_holds(dir: &DataDir) -> Result<crate::policy::Policy> {
    for (path, what) in [
        (dir.policy(), "the policy"),
        (dir.registry(), "the registry"),
        (dir.signing_key(), "the signing key"),
    ] {
        if !path.exists() {
            return Err(Error::StateMissing { path, what });
        }
    }
    if SqliteRegistry::open(dir.registry())?.is_empty()? {
        return Err(Error::StateMissing {
            path: dir.registry(),
            what: "the registry's population",
        });
    }
    crate::policy::Policy::load(&dir.policy())
}

/// Prepares the data directory (first start included), binds and serves
/// until `shutdown` completes and the calls in flight end (or the grace
/// period does); the event relay runs beside the server and stops after it,
/// so that the last requests' events are sent too; the audit log closes
/// last, with a signed checkpoint.
pub async fn serve(
    dir: &DataDir,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (policy, registry) =
        first_start(dir, &opts.first_start, &opts.store, &opts.node_name).await?;
    let seeded_with = {
        let registry = registry.clone();
        off_runtime(move || registry.seeded_with()).await?
    };
    let outbox: Arc<dyn Outbox> = registry.clone();
    let agencies = policy.agencies.len();
    let policy = LivePolicy::new(policy);
    let reloads = tokio::spawn(reload_on_sighup(policy.clone(), dir.policy()));
    let tls = server_config(&dir.pki())?;
    // The signing key and the audit log open before the port is bound: a
    // gateway that cannot audit never accepts a request.
    let (audit, key) = (dir.audit(), dir.signing_key());
    // The recorder first: what the projection's build records (its seq)
    // is then exported.
    let recorder = match opts.metrics {
        Some(_) => Some(telemetry::install(&opts.node_name)?),
        None => None,
    };
    // Off the runtime: the projection's build reads the whole register.
    let (store, node) = (opts.store.clone(), opts.node_name.clone());
    let (mut services, audit_writer) =
        off_runtime(move || open_services(policy, registry, &store, &node, &audit, &key)).await?;
    services.limits = opts.limits;
    services.registrar = services.registrar.on_node(&opts.node_name);
    // The drain is part of the grace period: at most half of it, so that
    // calls in flight have the other half.
    if services.limits.drain > opts.shutdown_grace / 2 {
        tracing::warn!(
            drain_ms = services.limits.drain.as_millis() as u64,
            grace_ms = opts.shutdown_grace.as_millis() as u64,
            "the shutdown drain is longer than half the grace period; it is shortened to half"
        );
        services.limits.drain = opts.shutdown_grace / 2;
    }
    let sectors = SectorOptions {
        population: seeded_with,
        ..opts.sectors.clone()
    };
    services.sectors = Sectors::connect(&dir.pki(), &sectors)?;
    let metrics = match opts.metrics.zip(recorder) {
        Some((addr, recorder)) => Some(start_metrics(addr, recorder, outbox.clone()).await?),
        None => None,
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(Error::io(opts.listen.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(Error::io(opts.listen.to_string()))?;
    tracing::info!(
        listen = %local,
        agencies,
        node = %opts.node_name,
        "lienthong gateway serving (mTLS; health and reflection on the same port)"
    );
    let key = Arc::new(crate::signing::SigningKey::load(&dir.signing_key())?);
    let relay = OutboxRelay::new(
        outbox,
        services.registrar.committed(),
        opts.relay.clone(),
        key,
    );
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(relay.run(async {
        let _ = relay_stopped.await;
    }));
    let (began, shutdown_began) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = began.send(());
    };
    let grace = async {
        if shutdown_began.await.is_ok() {
            tokio::time::sleep(opts.shutdown_grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = crate::api::serve(listener, tls, services, shutdown) => served,
        () = grace => {
            tracing::warn!(
                grace_ms = opts.shutdown_grace.as_millis() as u64,
                "the shutdown grace period is over: closing with calls still in flight \
                 (their answers are refused once the audit log closes; their events wait in the outbox)"
            );
            Ok(())
        }
    };
    reloads.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    let _ = stop_relay.send(());
    if let Err(e) = relay.await {
        tracing::error!(error = %e, "event relay task failed");
    }
    if !audit_writer.close(AUDIT_CLOSE).await {
        tracing::warn!("the audit log did not close in time: its last checkpoint may be missing");
    }
    served
}

/// The audit log's writer, closed last.
enum AuditClose {
    /// The embedded log's threads.
    Segments(AuditWriter),
    /// The shared log's writer.
    Shared(SharedAuditWriter),
}

impl AuditClose {
    /// Commits what is queued and signs a last checkpoint, within `limit`;
    /// whether it closed.
    async fn close(self, limit: Duration) -> bool {
        match self {
            Self::Segments(writer) => writer.close(limit).await,
            Self::Shared(writer) => writer.close(limit).await,
        }
    }
}

/// The services over `registry`, auditing where `store` says: the embedded
/// log in `audit_dir`, or replica `node`'s chain in the shared store (which
/// refuses a node name another process writes). Blocks.
fn open_services(
    policy: LivePolicy,
    registry: Arc<dyn Registry>,
    store: &StoreChoice,
    node: &str,
    audit_dir: &Path,
    key_path: &Path,
) -> Result<(Services, AuditClose)> {
    match store {
        StoreChoice::Embedded => {
            let (services, writer) = Services::open(policy, registry, audit_dir, key_path)?;
            Ok((services, AuditClose::Segments(writer)))
        }
        StoreChoice::Postgres(url) => {
            let key = Arc::new(SigningKey::load_or_create(key_path)?);
            // Before the projection's build: a node name in use is refused
            // at once.
            let (audit, writer, accesses) = SharedAudit::open(url, node, key.clone())?;
            let mut services = Services::new(policy.clone(), registry, audit, audit_dir, key)?;
            services.accesses = AccessList::shared(policy, accesses);
            Ok((services, AuditClose::Shared(writer)))
        }
    }
}

/// Binds `addr` and answers scrapes there from the installed recorder's
/// `handle`; keeps the outbox gauges current. The task runs until aborted.
async fn start_metrics(
    addr: SocketAddr,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    outbox: Arc<dyn Outbox>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("metrics on {addr}")))?;
    let local = listener
        .local_addr()
        .map_err(Error::io(format!("metrics on {addr}")))?;
    tracing::info!(metrics = %local, "metrics for Prometheus at GET /metrics");
    Ok(tokio::spawn(async move {
        let gauges = async {
            let mut every = tokio::time::interval(OUTBOX_GAUGES_EVERY);
            loop {
                every.tick().await;
                let outbox = outbox.clone();
                if let Ok(Ok(lag)) = tokio::task::spawn_blocking(move || outbox.lag()).await {
                    metrics::gauge!(telemetry::OUTBOX_WAITING).set(lag.waiting as f64);
                    metrics::gauge!(telemetry::OUTBOX_LAST_SEQ).set(lag.last_seq as f64);
                    let oldest = lag.oldest_waiting.as_deref().and_then(clock::age);
                    metrics::gauge!(telemetry::OUTBOX_OLDEST)
                        .set(oldest.map_or(0.0, |d| d.as_secs_f64()));
                }
            }
        };
        tokio::join!(
            gauges,
            telemetry::serve_metrics(listener, handle, std::future::pending())
        );
    }))
}

/// Reloads the policy from `path` on every SIGHUP. The handler is installed
/// before this returns, so a SIGHUP sent once the gateway logs that it is
/// serving never hits the default action (exit).
fn reload_on_sighup(
    policy: LivePolicy,
    path: std::path::PathBuf,
) -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        {
            let Ok(mut hangups) = hangups else {
                tracing::warn!("SIGHUP cannot be caught: the policy will not reload");
                return;
            };
            while hangups.recv().await.is_some() {
                match policy.reload(&path) {
                    Ok(agencies) => tracing::info!(agencies, "policy reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "policy reload refused; the previous policy stays in force"
                    ),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (policy, path);
    }
}
