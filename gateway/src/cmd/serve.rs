//! `lienthong serve`: the gateway, on its embedded default.
//!
//! On first start in an empty data directory it writes the default policy,
//! creates the development PKI and seeds the synthetic population, so that
//! `lienthong serve` alone gives a working gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use super::{DataDir, SeedOptions};
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::registry::{PopulationStore, SqliteRegistry};
use crate::tls::{ensure_pki, server_config};

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Population to seed on first start.
    pub first_start: SeedOptions,
}

/// Prepares the data directory (first start included), binds and serves
/// until `shutdown` completes.
pub async fn serve(
    dir: &DataDir,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let policy = dir.prepare()?;
    let created = ensure_pki(&dir.pki(), policy.agencies.keys().map(String::as_str))?;
    if !created.created.is_empty() {
        tracing::info!(files = created.created.len(), pki = %dir.pki().root.display(), "created development certificates");
    }
    let store = SqliteRegistry::open(dir.registry())?;
    if store.is_empty()? {
        let started = Instant::now();
        tracing::info!(
            citizens = opts.first_start.citizens,
            seed = opts.first_start.seed,
            "first start: seeding the synthetic population"
        );
        drop(store);
        let dir = dir.clone();
        let seed_opts = opts.first_start.clone();
        tokio::task::spawn_blocking(move || super::seed(&dir, &seed_opts))
            .await
            .map_err(|_| Error::Task)??;
        tracing::info!(seconds = started.elapsed().as_secs_f32(), "seeded");
    }
    let store: Arc<dyn PopulationStore> = Arc::new(SqliteRegistry::open(dir.registry())?);
    let tls = server_config(&dir.pki())?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(Error::io(opts.listen.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(Error::io(opts.listen.to_string()))?;
    tracing::info!(
        listen = %local,
        agencies = policy.agencies.len(),
        "lienthong gateway serving (mTLS; health and reflection on the same port)"
    );
    let exchange = Exchange::new(Arc::new(policy), store);
    crate::api::serve(listener, tls, exchange, shutdown).await
}
