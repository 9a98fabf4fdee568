//! `lienthong`: the gateway's command line. Parses arguments, sets up
//! logging, and calls the library's commands.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use lienthong_gateway::api::ServerLimits;
use lienthong_gateway::audit::Anchor;
use lienthong_gateway::cmd::{self, DataDir, SeedOptions, ServeOptions};
use lienthong_gateway::config::{self, ConfigFile};
use lienthong_gateway::events::RelayConfig;
use lienthong_gateway::sector::{
    DEFAULT_ENDPOINTS, SectorEndpoint, SectorOptions, parse_endpoints,
};
use lienthong_gateway::signing::{VerifyingKey, parse_hex32};

/// mimalloc rather than the C library's allocator: a request's memory is
/// often freed by another thread than the one that allocated it (its task
/// moved, the audit writer answered it), which glibc's allocator pays for
/// with a lock; measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// lienthong: verified population data for social insurance, health,
/// education, telecom and banking, over gRPC with mutual TLS.
#[derive(Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command, `lienthong` serves.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default). On first start in an empty data
    /// directory: writes the default policy, creates development
    /// certificates and seeds a synthetic population.
    Serve(ServeArgs),
    /// Run the whole system in one process: the gateway and the five sector
    /// adapters (social insurance, health, education, telecom, banking),
    /// each on its address in --sector-endpoints with its own store under
    /// DIR/adapters and its own queue on the broker. First start as `serve`.
    Up(ServeArgs),
    /// Fill an empty registry with the deterministic synthetic population.
    Seed(SeedArgs),
    /// Create the development CA, the gateway's certificate and one client
    /// certificate per agency in the policy (keeps existing ones).
    Certs(DirArgs),
    /// Show how far event publishing is behind the registry: events waiting
    /// for the broker's confirm, and for how long.
    Outbox(DirArgs),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Validate a data directory without serving it: the configuration
    /// file, the policy, the certificates it needs (issuer, agency name,
    /// validity) and the signing key. Says what is wrong; exits 64 if
    /// anything is.
    Check(ServeArgs),
    /// Ask a running gateway whether it serves (grpc.health.v1), presenting
    /// the probe certificate from the data directory (pki/probe.pem): the
    /// container's health check. Exits 0 when SERVING, 1 otherwise.
    Health(HealthArgs),
    /// Print the configuration `serve` would run with (the same options,
    /// environment and configuration file), each value with where it comes
    /// from; passwords redacted.
    Config(ServeArgs),
}

#[derive(Args, Clone)]
struct HealthArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// One service's status (e.g. lienthong.v1.ExchangeService) instead of
    /// the gateway's as a whole.
    #[arg(long, default_value = "")]
    service: String,
}

/// `check` found problems: bad configuration, exit 64.
#[derive(Debug)]
struct CheckFailed(usize);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the data directory has {} problem(s)", self.0)
    }
}

impl std::error::Error for CheckFailed {}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and the signed checkpoints: reports the first
    /// record edited, removed or moved, or a cut tail; exits 1 if any.
    Verify(AuditVerifyArgs),
}

#[derive(Args, Clone)]
struct AuditVerifyArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The gateway's public key (64 hex digits, as this command prints it),
    /// kept off the machine; by default the public half of
    /// DIR/keys/signing.pk8.
    #[arg(long, value_name = "HEX")]
    public_key: Option<VerifyingKey>,
    /// A record's number and hash from an earlier run of this command
    /// (`SEQ:HASH`), kept off the machine: the log must still hold it. This
    /// finds a tail cut together with its checkpoints.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_anchor)]
    checkpoint: Option<Anchor>,
}

/// Where the metrics are served, or nowhere.
#[derive(Clone, Copy)]
struct MetricsListen(Option<SocketAddr>);

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    text.parse()
        .map(|addr| MetricsListen(Some(addr)))
        .map_err(|_| format!("{text:?} is neither HOST:PORT nor off"))
}

/// The sector adapters' endpoints, as given.
#[derive(Clone)]
struct SectorEndpoints(Vec<SectorEndpoint>);

impl std::fmt::Display for SectorEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}={}", e.sector, e.url))
            .collect();
        f.write_str(&pairs.join(","))
    }
}

fn parse_sector_endpoints(text: &str) -> Result<SectorEndpoints, String> {
    parse_endpoints(text).map(SectorEndpoints)
}

/// `SEQ:HASH`, as `audit verify` prints the last checkpoint.
fn parse_anchor(text: &str) -> Result<Anchor, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or("expected SEQ:HASH, e.g. 48213:9f1c…")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a record number"))?;
    let hash = parse_hex32(hash).ok_or("the hash is 64 hex digits")?;
    Ok((seq, hash))
}

#[derive(Args, Clone)]
struct DirArgs {
    /// Data directory: policy.toml, registry.db, audit/, keys/, pki/.
    #[arg(long, env = "LIENTHONG_DATA_DIR", default_value = "lienthong-data")]
    data_dir: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Configuration file (TOML, one key per option below, e.g.
    /// `max_in_flight = 4096`); by default DIR/lienthong.toml if it exists.
    /// Environment variables and flags override it.
    #[arg(long, env = "LIENTHONG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LIENTHONG_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Where Prometheus scrapes the metrics (plain HTTP, GET /metrics; no
    /// personal data); `off` for none.
    #[arg(
        long,
        env = "LIENTHONG_METRICS_LISTEN",
        default_value = "127.0.0.1:9464",
        value_name = "HOST:PORT|off",
        value_parser = parse_metrics_listen
    )]
    metrics_listen: MetricsListen,
    /// Largest gRPC message received or sent, in bytes.
    #[arg(long, env = "LIENTHONG_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    max_message_bytes: u64,
    /// Calls in flight across all connections; more are shed at once with
    /// UNAVAILABLE (OVERLOADED) rather than queued.
    #[arg(long, env = "LIENTHONG_MAX_IN_FLIGHT", default_value_t = 2_048,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,
    /// Concurrent calls (HTTP/2 streams) one connection may open.
    #[arg(long, env = "LIENTHONG_MAX_STREAMS_PER_CONNECTION", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_streams_per_connection: u32,
    /// Time a call has to be answered, in milliseconds (DEADLINE_EXCEEDED
    /// beyond).
    #[arg(long, env = "LIENTHONG_DEADLINE_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    deadline_ms: u64,
    /// Most claims in one VerifyBatch batch (BATCH_TOO_LARGE beyond).
    #[arg(long, env = "LIENTHONG_MAX_BATCH_CLAIMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_batch_claims: u64,
    /// After SIGTERM or Ctrl-C, how long calls in flight (open streams
    /// included) may take, in milliseconds, before they are cut.
    #[arg(long, env = "LIENTHONG_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    shutdown_grace_ms: u64,
    /// After SIGTERM or Ctrl-C, how long connections already open may still
    /// start calls, in milliseconds, while health answers NOT_SERVING and
    /// new connections are refused (part of the grace period).
    #[arg(long, env = "LIENTHONG_SHUTDOWN_DRAIN_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    shutdown_drain_ms: u64,
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
    sector_endpoints: SectorEndpoints,
    /// Time a sector adapter has to answer a look-up, in milliseconds
    /// (SECTOR_UNAVAILABLE beyond).
    #[arg(long, env = "LIENTHONG_SECTOR_DEADLINE_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    sector_deadline_ms: u64,
    /// Citizens to seed on first start.
    #[arg(long, env = "LIENTHONG_CITIZENS", default_value_t = 1_000_000)]
    citizens: u64,
    /// Population seed on first start.
    #[arg(long, env = "LIENTHONG_SEED", default_value_t = 1)]
    seed: u64,
    /// RabbitMQ to publish population change events to. The gateway serves
    /// without it; events wait in the outbox until it is reachable.
    #[arg(
        long,
        env = "LIENTHONG_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// Topic exchange events are published to.
    #[arg(long, env = "LIENTHONG_EVENTS_EXCHANGE", default_value = lienthong_gateway::events::EXCHANGE)]
    events_exchange: String,
    /// Days published events stay in the outbox for replays.
    #[arg(
        long,
        env = "LIENTHONG_OUTBOX_RETENTION_DAYS",
        default_value_t = 7,
        value_parser = clap::value_parser!(u64).range(1..=3650)
    )]
    outbox_retention_days: u64,
}

#[derive(Args)]
struct SeedArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Number of citizens.
    #[arg(long, default_value_t = 1_000_000)]
    citizens: u64,
    /// Population seed: the same seed always gives the same people.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a sample of records as JSONL (pid, full_name, date_of_birth,
    /// sex, status, permanent_province) to try queries with.
    #[arg(long, value_name = "FILE.jsonl")]
    sample_out: Option<PathBuf>,
    /// Records in the sample.
    #[arg(long, default_value_t = 1_000)]
    sample_size: u64,
}

fn main() -> ExitCode {
    // Logs go to stderr: human-readable, or one JSON object a line with
    // LIENTHONG_LOG_FORMAT=json; LIENTHONG_LOG filters (default info).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIENTHONG_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match std::env::var("LIENTHONG_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        _ => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let (command, sources) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("lienthong: {e:#}");
            return ExitCode::from(64);
        }
    };
    match run(command, &sources) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lienthong: {e:#}");
            // Bad configuration (policy, certificates) exits with 64 (EX_USAGE),
            // before any port is bound.
            match e.downcast_ref::<lienthong_gateway::Error>() {
                Some(
                    lienthong_gateway::Error::Policy { .. }
                    | lienthong_gateway::Error::Config { .. }
                    | lienthong_gateway::Error::Tls(_),
                ) => ExitCode::from(64),
                _ if e.downcast_ref::<CheckFailed>().is_some() => ExitCode::from(64),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// What `serve` runs with, from its parsed options.
fn serve_options(args: &ServeArgs) -> ServeOptions {
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
            max_streams_per_connection: args.max_streams_per_connection,
            deadline: Duration::from_millis(args.deadline_ms),
            max_batch_claims: args.max_batch_claims as usize,
            drain: Duration::from_millis(args.shutdown_drain_ms),
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
    }
}

/// `lienthong config`: the effective configuration as a configuration file
/// would spell it, each value with its source.
fn print_config(args: &ServeArgs, sources: &Sources) {
    let from = |id: &str| {
        sources
            .iter()
            .find(|(k, _)| k == id)
            .map_or("default", |(_, s)| *s)
    };
    let path = config::file_path(&args.dir.data_dir, args.config.as_deref());
    println!("# the configuration `lienthong serve` runs with");
    println!("# data directory: {}", args.dir.data_dir.display());
    println!(
        "# configuration file: {}{}",
        path.display(),
        if path.exists() { "" } else { " (none)" }
    );
    let metrics = args
        .metrics_listen
        .0
        .map_or_else(|| "off".to_owned(), |a| a.to_string());
    let rows: [(&str, String); 16] = [
        ("listen", format!("{:?}", args.listen.to_string())),
        ("metrics_listen", format!("{metrics:?}")),
        (
            "amqp_url",
            format!("{:?}", config::redact_url(&args.amqp_url)),
        ),
        ("events_exchange", format!("{:?}", args.events_exchange)),
        (
            "outbox_retention_days",
            args.outbox_retention_days.to_string(),
        ),
        ("max_message_bytes", args.max_message_bytes.to_string()),
        ("max_in_flight", args.max_in_flight.to_string()),
        (
            "max_streams_per_connection",
            args.max_streams_per_connection.to_string(),
        ),
        ("deadline_ms", args.deadline_ms.to_string()),
        ("max_batch_claims", args.max_batch_claims.to_string()),
        ("shutdown_grace_ms", args.shutdown_grace_ms.to_string()),
        ("shutdown_drain_ms", args.shutdown_drain_ms.to_string()),
        (
            "sector_endpoints",
            format!("{:?}", args.sector_endpoints.to_string()),
        ),
        ("sector_deadline_ms", args.sector_deadline_ms.to_string()),
        ("citizens", args.citizens.to_string()),
        ("seed", args.seed.to_string()),
    ];
    for (key, value) in rows {
        let line = format!("{key} = {value}");
        println!("{line:<58} # {}", from(key));
    }
}

/// Where each `serve` option's value came from, by option id.
type Sources = Vec<(String, &'static str)>;

/// Parses the command line with the configuration file's values as the
/// options' defaults: default < file < environment < flag.
fn parse() -> anyhow::Result<(Command, Sources)> {
    let first = Cli::from_arg_matches(&Cli::command().get_matches())?;
    let serve = match &first.command {
        None => &first.serve,
        Some(Command::Serve(a) | Command::Up(a) | Command::Check(a) | Command::Config(a)) => a,
        Some(_) => {
            let command = first.command.unwrap_or(Command::Serve(first.serve));
            return Ok((command, Vec::new()));
        }
    };
    let path = config::file_path(&serve.dir.data_dir, serve.config.as_deref());
    let file = ConfigFile::load(&path, serve.config.is_some())?;
    let values = file.values();
    let mut cli = Cli::command();
    for (key, value) in &values {
        // Read once per process: a default must live as long as the parser.
        let value: &'static str = Box::leak(value.clone().into_boxed_str());
        cli = cli.mut_arg(*key, |a| a.default_value(value));
        for sub in ["serve", "up", "check", "config"] {
            cli = cli.mut_subcommand(sub, |c| c.mut_arg(*key, |a| a.default_value(value)));
        }
    }
    // The command line parsed once without the file's values: an error
    // now is one of the file's values failing the option's validation.
    let matches = cli.try_get_matches().map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => e.exit(),
        _ => lienthong_gateway::Error::Config {
            path: path.clone(),
            message: e
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
                .to_owned(),
        },
    })?;
    let parsed = Cli::from_arg_matches(&matches)?;
    let scope = match matches.subcommand() {
        Some((_, sub)) => sub,
        None => &matches,
    };
    let sources = scope
        .ids()
        .map(|id| {
            let id = id.as_str().to_owned();
            let from = match scope.value_source(&id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) if values.iter().any(|(k, _)| *k == id) => "file",
                _ => "default",
            };
            (id, from)
        })
        .collect();
    Ok((
        parsed.command.unwrap_or(Command::Serve(parsed.serve)),
        sources,
    ))
}

fn run(command: Command, sources: &Sources) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = serve_options(&args);
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(cmd::serve(&dir, &opts, shutdown_signal()));
            // Connections still open after the grace period end here.
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Up(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = serve_options(&args);
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(cmd::up(&dir, &opts, shutdown_signal()));
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Config(args) => print_config(&args, sources),
        Command::Health(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let runtime = tokio::runtime::Runtime::new()?;
            // Any failure is "not healthy" (exit 1), bad certificates too.
            let status = runtime
                .block_on(cmd::health(&dir, args.addr, &args.service))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", status.as_str_name());
            if status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                anyhow::bail!("{} is not serving", args.addr);
            }
        }
        Command::Seed(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let started = std::time::Instant::now();
            let report = cmd::seed(
                &dir,
                &SeedOptions {
                    citizens: args.citizens,
                    seed: args.seed,
                    sample_out: args.sample_out.clone(),
                    sample_size: args.sample_size,
                },
            )?;
            println!(
                "seeded {} citizens into {} in {:.1} s",
                report.citizens,
                dir.registry().display(),
                started.elapsed().as_secs_f64()
            );
            if let Some(path) = args.sample_out {
                println!(
                    "wrote {} sample records to {}",
                    report.sampled,
                    path.display()
                );
            }
        }
        Command::Outbox(args) => {
            let dir = DataDir::new(&args.data_dir);
            let report = cmd::outbox(&dir)?;
            println!("last event seq      {}", report.last_seq);
            println!("waiting for broker  {}", report.waiting);
            if let Some(age) = report.oldest_waiting_for {
                println!("oldest waiting for  {:.1} s", age.as_secs_f64());
            }
        }
        Command::Check(args) => {
            let path = config::file_path(&args.dir.data_dir, args.config.as_deref());
            // A file that does not read stopped `parse` already.
            let keys = ConfigFile::load(&path, false)
                .map(|f| f.values().len())
                .unwrap_or(0);
            let mut findings = vec![cmd::Finding::Ok(if path.exists() {
                format!("{}: {keys} settings", path.display())
            } else {
                format!("{}: none; defaults and environment", path.display())
            })];
            findings.extend(cmd::check(&DataDir::new(&args.dir.data_dir)));
            let mut problems = 0;
            for finding in &findings {
                let (word, text) = match finding {
                    cmd::Finding::Ok(t) => ("ok", t),
                    cmd::Finding::Warning(t) => ("warning", t),
                    cmd::Finding::Problem(t) => {
                        problems += 1;
                        ("problem", t)
                    }
                };
                println!("{word:<8} {text}");
            }
            if problems > 0 {
                return Err(CheckFailed(problems).into());
            }
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let (report, key) = cmd::audit_verify(&dir, args.public_key, args.checkpoint)?;
            for file in &report.set_aside {
                eprintln!(
                    "warning: {} holds bytes the gateway found after the last whole record when it \
                     started (a write a crash cut short, or an edit) and moved out of the log",
                    file.display()
                );
            }
            if let Some(problem) = report.problem {
                anyhow::bail!(
                    "audit log {} failed verification: {problem}",
                    dir.audit().display()
                );
            }
            println!(
                "audit log verified: {} records, {} signed checkpoints",
                report.records, report.checkpoints
            );
            println!(
                "the last checkpoint covers record {}{}",
                report.checkpointed,
                match report.records - report.checkpointed {
                    0 => String::new(),
                    n => format!(" ({n} later records are chained but not yet signed)"),
                }
            );
            if let Some(hash) = report.checkpointed_hash {
                let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                println!("its hash                      {hex}");
                println!(
                    "keep off the machine: --checkpoint {}:{hex} --public-key {key}",
                    report.checkpointed
                );
            }
            println!("signing key (Ed25519, public) {key}");
        }
        Command::Certs(args) => {
            let dir = DataDir::new(&args.data_dir);
            let report = cmd::certs(&dir)?;
            if report.created.is_empty() {
                println!("certificates in {} are complete", dir.pki().root.display());
            }
            for path in report.created {
                println!("created {}", path.display());
            }
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    lienthong_proto::signal::shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
}
