//! The settings `serve` (and `up`, `check`, `config`) runs with, each
//! described once: its flag, environment variable, default, validation and
//! help are the field's attributes; its configuration-file key is the
//! field's name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{
    DirArgs, MetricsListen, SectorEndpoints, parse_metrics_listen, parse_sector_endpoints,
};
use crate::api::ServerLimits;
use crate::cmd::{SeedOptions, ServeOptions, StoreChoice};
use crate::events::RelayConfig;
use crate::sector::{DEFAULT_ENDPOINTS, SectorOptions};

/// Every `serve` setting.
#[derive(Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Configuration file (TOML, one key per option below, e.g.
    /// `max_in_flight = 4096`); by default DIR/lienthong.toml if it exists.
    /// Environment variables and flags override it.
    #[arg(long, env = "LIENTHONG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LIENTHONG_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// This replica's name, in its log and as the `node` label of every
    /// metric; by default the host name.
    #[arg(long, env = "LIENTHONG_NODE_NAME", default_value_t = host_name(),
          value_parser = parse_node_name)]
    pub node_name: String,
    /// Where Prometheus scrapes the metrics (plain HTTP, GET /metrics; no
    /// personal data); `off` for none.
    #[arg(
        long,
        env = "LIENTHONG_METRICS_LISTEN",
        default_value = "127.0.0.1:9464",
        value_name = "HOST:PORT|off",
        value_parser = parse_metrics_listen
    )]
    pub metrics_listen: MetricsListen,
    /// Largest gRPC message received or sent, in bytes.
    #[arg(long, env = "LIENTHONG_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_message_bytes: u64,
    /// Calls in flight across all connections; more are shed at once with
    /// UNAVAILABLE (OVERLOADED) rather than queued.
    #[arg(long, env = "LIENTHONG_MAX_IN_FLIGHT", default_value_t = 2_048,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,
    /// Of the calls in flight, the most one agency may hold (its share):
    /// one more of its calls is shed the same way, so no agency can take
    /// the others' room; 0 for a quarter of --max-in-flight.
    #[arg(long, env = "LIENTHONG_MAX_IN_FLIGHT_PER_AGENCY", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_in_flight_per_agency: u64,
    /// Concurrent calls (HTTP/2 streams) one connection may open.
    #[arg(long, env = "LIENTHONG_MAX_STREAMS_PER_CONNECTION", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,
    /// Time a call has to be answered, in milliseconds (DEADLINE_EXCEEDED
    /// beyond).
    #[arg(long, env = "LIENTHONG_DEADLINE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub deadline_ms: u64,
    /// How long a VerifyBatch stream may send nothing while the gateway
    /// waits for its next batch, in milliseconds; then it is ended
    /// (DEADLINE_EXCEEDED / STREAM_IDLE) and its place in flight comes back.
    #[arg(long, env = "LIENTHONG_STREAM_IDLE_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub stream_idle_ms: u64,
    /// Time a client has to complete its TLS handshake, in milliseconds;
    /// past it the connection is closed. At most 256 handshakes run at
    /// once, one more dropping the oldest.
    #[arg(long, env = "LIENTHONG_HANDSHAKE_TIMEOUT_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub handshake_timeout_ms: u64,
    /// How long a connection may carry no call, in milliseconds, before it
    /// is closed (HTTP/2 pings do not count); 0 never closes one.
    #[arg(long, env = "LIENTHONG_CONNECTION_IDLE_MS", default_value_t = 300_000,
          value_parser = lienthong_proto::idle::parse_limit_ms)]
    pub connection_idle_ms: u64,
    /// Connections one agency (one client certificate's name) may hold at
    /// once; one more is closed as its handshake ends.
    #[arg(long, env = "LIENTHONG_MAX_CONNECTIONS_PER_AGENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections_per_agency: u64,
    /// Most claims in one VerifyBatch batch (BATCH_TOO_LARGE beyond).
    #[arg(long, env = "LIENTHONG_MAX_BATCH_CLAIMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_batch_claims: u64,
    /// After SIGTERM or Ctrl-C, how long calls in flight (open streams
    /// included) may take, in milliseconds, before they are cut.
    #[arg(long, env = "LIENTHONG_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,
    /// After SIGTERM or Ctrl-C, how long connections already open may still
    /// start calls, in milliseconds, while health answers NOT_SERVING and
    /// new connections are refused (part of the grace period, at most half
    /// of it).
    #[arg(long, env = "LIENTHONG_SHUTDOWN_DRAIN_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub shutdown_drain_ms: u64,
    /// The sector adapters QuerySector asks, as SECTOR=URL pairs separated
    /// by commas (https: mutual TLS; `up` listens on these addresses, and on
    /// a free port it names in the log where the port is 0).
    #[arg(
        long,
        env = "LIENTHONG_SECTOR_ENDPOINTS",
        default_value = DEFAULT_ENDPOINTS.as_str(),
        value_name = "SECTOR=URL,…",
        value_parser = parse_sector_endpoints
    )]
    pub sector_endpoints: SectorEndpoints,
    /// Time a sector adapter has to answer a look-up, in milliseconds
    /// (SECTOR_UNAVAILABLE beyond).
    #[arg(long, env = "LIENTHONG_SECTOR_DEADLINE_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub sector_deadline_ms: u64,
    /// Citizens to seed on first start.
    #[arg(long, env = "LIENTHONG_CITIZENS", default_value_t = 1_000_000)]
    pub citizens: u64,
    /// Population seed on first start.
    #[arg(long, env = "LIENTHONG_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Where the registry lives: nothing for DIR/registry.db (SQLite,
    /// embedded), or postgres://user:password@host:port/database for a
    /// store that several gateways share as replicas (seeded by the first
    /// that finds it empty).
    #[arg(long, env = "LIENTHONG_STORE", default_value = "", hide_env_values = true,
          value_parser = parse_store)]
    pub store: StoreChoice,
    /// RabbitMQ to publish population change events to. The gateway serves
    /// without it; events wait in the outbox until it is reachable.
    #[arg(
        long,
        env = "LIENTHONG_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Topic exchange events are published to.
    #[arg(long, env = "LIENTHONG_EVENTS_EXCHANGE", default_value = crate::events::EXCHANGE)]
    pub events_exchange: String,
    /// Days published events stay in the outbox for replays.
    #[arg(
        long,
        env = "LIENTHONG_OUTBOX_RETENTION_DAYS",
        default_value_t = 7,
        value_parser = clap::value_parser!(u64).range(1..=3650)
    )]
    pub outbox_retention_days: u64,
}

impl ServeArgs {
    /// What `serve` runs with, from its parsed options.
    pub fn options(&self) -> ServeOptions {
        let args = self;
        ServeOptions {
            listen: args.listen,
            first_start: SeedOptions {
                citizens: args.citizens,
                seed: args.seed,
                sample_out: Some(args.dir.data_dir.join("sample.jsonl")),
                sample_size: 1_000,
            },
            relay: RelayConfig {
                url: args.amqp_url.clone(),
                exchange: args.events_exchange.clone(),
                retention: Duration::from_secs(args.outbox_retention_days * 86_400),
                ..RelayConfig::default()
            },
            metrics: args.metrics_listen.0,
            limits: ServerLimits {
                max_message_bytes: args.max_message_bytes as usize,
                max_in_flight: args.max_in_flight as usize,
                max_in_flight_per_agency: match args.max_in_flight_per_agency {
                    0 => (args.max_in_flight as usize / 4).max(1),
                    n => n as usize,
                },
                max_streams_per_connection: args.max_streams_per_connection,
                deadline: Duration::from_millis(args.deadline_ms),
                max_batch_claims: args.max_batch_claims as usize,
                drain: Duration::from_millis(args.shutdown_drain_ms),
                handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
                stream_idle: Duration::from_millis(args.stream_idle_ms),
                connection_idle: Duration::from_millis(args.connection_idle_ms),
                max_connections_per_agency: args.max_connections_per_agency as usize,
            },
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
            sectors: SectorOptions {
                endpoints: args.sector_endpoints.0.clone(),
                deadline: Duration::from_millis(args.sector_deadline_ms),
                // Five stalled adapters together hold at most 5/8 of the calls
                // the gateway admits: the rest of its work always has room.
                max_in_flight: (args.max_in_flight as usize / 8).max(1),
                // Read from the registry when serving.
                population: None,
            },
            store: args.store.clone(),
            node_name: args.node_name.clone(),
        }
    }
}

/// `--store`: never refused here, where clap would repeat the value (and
/// its password) in its message; a URL the store cannot use is refused
/// when it opens, without it.
pub(super) fn parse_store(given: &str) -> Result<StoreChoice, String> {
    Ok(StoreChoice::from_flag(given))
}

/// The host name (Linux), or `lienthong` where it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| parse_node_name(name).is_ok())
        .unwrap_or_else(|| "lienthong".to_owned())
}

/// `--node-name`: 1–64 of `A-Za-z0-9._-`, so that it is safe in a log, a
/// metric label and a file name.
fn parse_node_name(given: &str) -> Result<String, String> {
    let fits = (1..=64).contains(&given.len())
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match fits {
        true => Ok(given.to_owned()),
        false => Err("1 to 64 letters, digits, dots, dashes or underscores".to_owned()),
    }
}
