//! `lienthong up`: the whole system in one process — the gateway and the
//! five sector adapters, on the embedded default.
//!
//! ```text
//! DIR/                       the gateway's data directory (as `serve`)
//! DIR/adapters/<sector>.db   each adapter's own store
//! 127.0.0.1:50051            the gateway (agencies)
//! 127.0.0.1:50061…50065      the adapters (the gateway only), as named by
//!                            --sector-endpoints; port 0 binds a free port,
//!                            which the log names and the gateway dials
//! RabbitMQ                   --amqp-url: the gateway publishes, each adapter
//!                            consumes from its own queue
//! ```
//!
//! Each adapter is the same service `lienthong-adapter --sector …` runs
//! alone: its own listener, store, broker connection and queue. They start
//! after the data directory is ready (policy, PKI, population); the gateway
//! serves once they have bound their queues (or after 10 s, with a warning,
//! if the broker is not up), so no event is published before a sector can
//! receive it; they stop after the gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use lienthong_adapters::framework::{self, AdapterOptions, ConsumerConfig};
use tokio::net::TcpListener;

use super::serve::first_start;
use super::{DataDir, ServeOptions};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::sector::{SectorEndpoint, SectorOptions};

/// How long `up` waits for the adapters to bind their queues before the
/// gateway serves.
const BIND_WAIT: Duration = Duration::from_secs(10);

/// Runs the gateway and every adapter in `opts.sectors` until `shutdown`.
pub async fn up(
    dir: &DataDir,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    // The adapters derive their data from the population the registry
    // holds, whatever the flags say now.
    let (_, registry) = first_start(dir, &opts.first_start, &opts.store, &opts.node_name).await?;
    let (seed, citizens) = off_runtime(move || registry.seeded_with())
        .await?
        .unwrap_or((opts.first_start.seed, opts.first_start.citizens));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut adapters = Vec::new();
    let mut bindings = Vec::new();
    // Where each adapter listens once bound: what the gateway dials.
    let mut bound_endpoints = Vec::new();
    for endpoint in &opts.sectors.endpoints {
        let listen = listen_address(&endpoint.url).ok_or_else(|| Error::Config {
            path: dir.root().join("lienthong.toml"),
            message: format!(
                "sector_endpoints: {}: `up` runs the adapter itself and needs an IP address and port to listen on, not {:?}",
                endpoint.sector, endpoint.url
            ),
        })?;
        let sector = lienthong_adapters::sectors::by_name(&endpoint.sector)
            .ok_or_else(|| Error::Server(format!("no sector {:?}", endpoint.sector)))?;
        let adapter_opts = AdapterOptions {
            sector,
            data_dir: dir.root().join("adapters"),
            pki_dir: dir.pki().root,
            seed,
            citizens,
            events: ConsumerConfig {
                url: opts.relay.url.clone(),
                exchange: opts.relay.exchange.clone(),
                prefetch: 32,
                queue_type: lienthong_adapters::framework::QueueType::Quorum,
            },
            connection_idle: opts.limits.connection_idle,
        };
        let (adapter, port) =
            framework::open(&adapter_opts).map_err(|e| Error::Server(e.to_string()))?;
        let at = |e| Error::io(format!("{} adapter on {listen}", endpoint.sector))(e);
        let listener = TcpListener::bind(listen).await.map_err(at)?;
        let local = listener.local_addr().map_err(at)?;
        tracing::info!(sector = %endpoint.sector, address = %local, "sector adapter serving");
        bound_endpoints.push(SectorEndpoint {
            sector: endpoint.sector.clone(),
            url: format!("https://{local}"),
        });
        let mut stopped = stopped.clone();
        let sector = endpoint.sector.clone();
        let (bound, is_bound) = tokio::sync::watch::channel(false);
        bindings.push(is_bound);
        adapters.push(tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let ran = framework::run_reporting(
                adapter,
                listener,
                port,
                adapter_opts.events,
                bound,
                until,
            )
            .await;
            if let Err(e) = ran {
                tracing::error!(sector, error = %e, "sector adapter stopped");
            }
        }));
    }
    // Events the gateway publishes before an adapter's queue is bound would
    // be dropped by the broker: give the adapters a moment to bind first.
    let all_bound = async {
        for mut b in bindings {
            let _ = b.wait_for(|bound| *bound).await;
        }
    };
    if tokio::time::timeout(BIND_WAIT, all_bound).await.is_err() {
        tracing::warn!(
            wait_s = BIND_WAIT.as_secs(),
            "not every adapter has bound its queue (is the broker up?): events published \
             before it does will not reach it"
        );
    }
    let opts = ServeOptions {
        sectors: SectorOptions {
            endpoints: bound_endpoints,
            ..opts.sectors.clone()
        },
        ..opts.clone()
    };
    let served = super::serve(dir, &opts, shutdown).await;
    let _ = stop.send(true);
    for adapter in adapters {
        let _ = adapter.await;
    }
    served
}

/// `https://127.0.0.1:50062` → 127.0.0.1:50062.
fn listen_address(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    authority.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::listen_address;

    #[test]
    fn listens_where_the_gateway_dials() {
        assert_eq!(
            listen_address("https://127.0.0.1:50062"),
            Some(([127, 0, 0, 1], 50062).into())
        );
        assert_eq!(
            listen_address("https://[::1]:9/"),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(listen_address("https://adapter-health:50062"), None);
    }
}
