//! `lienthong-adapter`: sector adapters' command line. `--sector NAME` runs
//! one sector's adapter alone (as deployments do; `lienthong up` runs all
//! five beside the gateway); the subcommands are the telecom
//! SIM-verification job and its synthetic subscriber base.

use std::io::{BufWriter, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lienthong_adapters::conformance::{self, ConformanceOptions, Outcome};
use lienthong_adapters::framework::{self, AdapterOptions, ConsumerConfig, QueueType};
use lienthong_adapters::sectors;
use lienthong_adapters::sim_job::generate::{BaseOptions, Rates, generate};
use lienthong_adapters::sim_job::sim_verify::{JobObserver, JobOptions, run};
use lienthong_adapters::sim_job::subscriber::{Format, LineError};
use lienthong_proto::population::Population;
use lienthong_proto::signal::shutdown_signal;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// lienthong sector adapters and jobs.
///
/// `lienthong-adapter --sector health` runs the health adapter: it answers
/// the gateway's look-ups over mutual TLS and follows population events
/// from its own RabbitMQ queue. Its certificate comes from the gateway's PKI
/// (`lienthong certs`); its seed and citizens must be the gateway's.
#[derive(Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    adapter: AdapterArgs,
}

#[derive(Args)]
struct AdapterArgs {
    /// The sector to serve: social_insurance, health, education, telecom or
    /// banking.
    #[arg(long, env = "LIENTHONG_SECTOR")]
    sector: Option<String>,
    /// Address to listen on; by default 127.0.0.1 and the sector's port
    /// (50061 social_insurance … 50065 banking).
    #[arg(long, env = "LIENTHONG_ADAPTER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the sector's store (<sector>.db) lives.
    #[arg(
        long,
        env = "LIENTHONG_ADAPTER_DATA_DIR",
        default_value = "lienthong-data/adapters"
    )]
    data_dir: PathBuf,
    /// The gateway's PKI directory: ca.pem and adapters/<sector>.pem/.key.
    #[arg(long, env = "LIENTHONG_PKI_DIR", default_value = "lienthong-data/pki")]
    pki_dir: PathBuf,
    /// Population seed: the gateway's.
    #[arg(long, env = "LIENTHONG_SEED", default_value_t = 1)]
    seed: u64,
    /// Citizens in the population: the gateway's.
    #[arg(long, env = "LIENTHONG_CITIZENS", default_value_t = 1_000_000)]
    citizens: u64,
    /// RabbitMQ to consume population events from.
    #[arg(
        long,
        env = "LIENTHONG_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// The topic exchange the gateway publishes events to.
    #[arg(
        long,
        env = "LIENTHONG_EVENTS_EXCHANGE",
        default_value = "lienthong.events"
    )]
    events_exchange: String,
    /// How long a connection may carry no call, in milliseconds, before it
    /// is closed (HTTP/2 pings do not count); 0 never closes one.
    #[arg(long, env = "LIENTHONG_CONNECTION_IDLE_MS", default_value_t = 300_000,
          value_parser = lienthong_proto::idle::parse_limit_ms)]
    connection_idle_ms: u64,
    /// How RabbitMQ keeps the adapter's queue and dead-letter queue:
    /// quorum (replicated over a cluster's nodes) or classic. Fixed when
    /// the queue is first declared.
    #[arg(long, env = "LIENTHONG_QUEUE_TYPE", value_enum, default_value_t = QueueType::Quorum)]
    queue_type: QueueType,
    /// Where Prometheus scrapes the adapter's metrics (GET /metrics, plain
    /// HTTP; lienthong_adapter_applied_seq): an address, or off.
    #[arg(long, env = "LIENTHONG_METRICS_LISTEN", default_value = "off",
          value_parser = parse_metrics_listen)]
    metrics_listen: MetricsListen,
}

/// `--metrics-listen`: an address, or nowhere.
#[derive(Clone, Copy)]
struct MetricsListen(Option<SocketAddr>);

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    match text {
        "off" | "" => Ok(MetricsListen(None)),
        addr => addr
            .parse()
            .map(|a| MetricsListen(Some(a)))
            .map_err(|_| format!("{addr:?}: give an address such as 127.0.0.1:9465, or off")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Re-verify a whole SIM-subscriber base against the population database
    /// through the gateway. Resumable: run it again after any stop. Exit code
    /// 0: every subscriber verified; 2: junk found; 1: the job failed.
    SimVerify(VerifyArgs),
    /// Write a synthetic subscriber base linked to the synthetic population,
    /// with injected errors and a truth file giving each subscriber's outcome.
    SimGenerate(GenerateArgs),
    /// Check a sector adapter, written in any language, as the gateway will
    /// use it: the gateway's client certificate required and others refused,
    /// grpc.health.v1, Describe, a Lookup of each query for known Pids,
    /// NOT_FOUND for a Pid it does not hold, INVALID_ARGUMENT for a
    /// malformed one, every answer within the gateway's deadline. Prints a
    /// pass/FAIL line a check; exit code 1 if any fails.
    Conformance(ConformanceArgs),
}

#[derive(Args)]
struct ConformanceArgs {
    /// The adapter, as the gateway reaches it (https://host:port).
    #[arg(long)]
    endpoint: String,
    /// The sector it serves (social_insurance, health, education, telecom,
    /// banking, or a new one).
    #[arg(long)]
    sector: String,
    /// The gateway's PKI directory: ca.pem and gateway-client.pem/.key (the
    /// kit calls as the gateway), probe.pem/.key for the check that another
    /// certificate of the CA is refused.
    #[arg(long, default_value = "lienthong-data/pki")]
    pki_dir: PathBuf,
    /// A Pid the adapter holds a record of (repeat, or separate with
    /// commas); by default the first 20 living citizens of the synthetic
    /// population.
    #[arg(long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<String>,
    /// A well-formed Pid the adapter holds no record of.
    #[arg(long, default_value = "096312999999")]
    unknown_pid: String,
    /// The synthetic population's seed: Describe must name it (with
    /// --citizens).
    #[arg(long)]
    seed: Option<u64>,
    /// The synthetic population's size: Describe must name it (with
    /// --seed).
    #[arg(long)]
    citizens: Option<u64>,
    /// The gateway's deadline for a sector call, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    deadline_ms: u64,
}

#[derive(Args)]
struct VerifyArgs {
    /// The subscriber base: CSV with header
    /// (msisdn,pid,full_name,date_of_birth,sex,registered_on) or .jsonl.
    #[arg(long)]
    input: PathBuf,
    /// Output directory: junk.csv, summary.json, state.json (the checkpoint).
    #[arg(long, default_value = "sim-verify-out")]
    out: PathBuf,
    /// The gateway.
    #[arg(
        long,
        env = "LIENTHONG_GATEWAY",
        default_value = "https://127.0.0.1:50051"
    )]
    gateway: String,
    /// Directory with ca.pem and agencies/<agency>.pem/.key.
    #[arg(long, default_value = "lienthong-data/pki")]
    pki_dir: PathBuf,
    /// The operator's agency id (its client certificate).
    #[arg(long, default_value = "viettel")]
    agency: String,
    /// Purpose code the operator's grant names.
    #[arg(long, default_value = "SUBSCRIBER_VERIFICATION")]
    purpose: String,
    /// SIMs one person may hold; the later-registered ones are over the limit.
    #[arg(long, default_value_t = 3)]
    limit: u32,
    /// Subscribers per batch (1–10000).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Batches sent and not yet answered, at most.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Milliseconds between checkpoints (0: after every batch).
    #[arg(long, default_value_t = 1_000)]
    checkpoint_ms: u64,
}

#[derive(Args)]
struct GenerateArgs {
    /// Citizens in the population (as seeded into the gateway).
    #[arg(long, default_value_t = 1_000_000)]
    citizens: u64,
    /// Population seed (as seeded into the gateway).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Subscribers to write.
    #[arg(long, default_value_t = 100_000)]
    subscribers: u64,
    /// SIMs one person may hold.
    #[arg(long, default_value_t = 3)]
    limit: u8,
    /// The base to write (.csv or .jsonl).
    #[arg(long)]
    out: PathBuf,
    /// The truth to write: msisdn,outcome for every subscriber.
    #[arg(long)]
    truth: PathBuf,
    /// Share of misspelled names.
    #[arg(long, default_value_t = Rates::default().name)]
    name_errors: f64,
    /// Share of wrong dates of birth.
    #[arg(long, default_value_t = Rates::default().date)]
    date_errors: f64,
    /// Share of wrong sexes.
    #[arg(long, default_value_t = Rates::default().sex)]
    sex_errors: f64,
    /// Share of deceased holders.
    #[arg(long, default_value_t = Rates::default().deceased)]
    deceased: f64,
    /// Share of unknown Pids.
    #[arg(long, default_value_t = Rates::default().unknown)]
    unknown: f64,
    /// Share of malformed Pids.
    #[arg(long, default_value_t = Rates::default().malformed)]
    malformed: f64,
    /// Share of subscribers starting a person with one SIM over the limit.
    #[arg(long, default_value_t = Rates::default().over_limit)]
    over_limit: f64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{human_pos}}/{{human_len}}  {{per_sec}}  ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Shows progress on a bar and unreadable lines above it.
struct Screen(ProgressBar);

impl JobObserver for Screen {
    fn invalid_line(&mut self, error: &LineError) {
        // A hidden bar (no terminal) prints nothing: say it on stderr then.
        if self.0.is_hidden() {
            eprintln!("skipped {error}");
        } else {
            self.0.println(format!("skipped {error}"));
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

async fn channel(args: &VerifyArgs) -> anyhow::Result<Channel> {
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(args.pki_dir.join("ca.pem"))?))
        .identity(Identity::from_pem(
            read(
                args.pki_dir
                    .join("agencies")
                    .join(format!("{}.pem", args.agency)),
            )?,
            read(
                args.pki_dir
                    .join("agencies")
                    .join(format!("{}.key", args.agency)),
            )?,
        ));
    Channel::from_shared(args.gateway.clone())?
        .tls_config(tls)?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("gateway {}: {e}", args.gateway))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        let channel = channel(&args).await?;
        let opts = JobOptions {
            input: args.input.clone(),
            out_dir: args.out.clone(),
            limit: args.limit,
            batch: args.batch,
            in_flight: args.in_flight,
            purpose: args.purpose.clone(),
            checkpoint_every: Duration::from_millis(args.checkpoint_ms),
        };
        let screen = Screen(bar(0, "verifying"));
        let progress = screen.0.clone();
        let summary = run(&opts, channel, screen).await;
        progress.finish_and_clear();
        anyhow::Ok(summary?)
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    println!(
        "{} subscribers in {:.1} s ({:.0}/s); junk in {}",
        summary.subscribers,
        summary.seconds,
        summary.records_per_second,
        args.out.join("junk.csv").display()
    );
    Ok(if summary.found_junk() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn generate_base(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let population = Population::new(args.seed, args.citizens)?;
    let rates = Rates {
        name: args.name_errors,
        date: args.date_errors,
        sex: args.sex_errors,
        deceased: args.deceased,
        unknown: args.unknown,
        malformed: args.malformed,
        over_limit: args.over_limit,
    };
    let create = |p: &PathBuf| {
        std::fs::File::create(p)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let (mut base, mut truth) = (create(&args.out)?, create(&args.truth)?);
    let progress = bar(args.subscribers, "generating");
    let opts = BaseOptions {
        population: &population,
        subscribers: args.subscribers,
        limit: args.limit,
        rates,
        seed: args.seed,
        format: Format::of(&args.out),
    };
    let counts = generate(&opts, &mut base, &mut truth, |n| progress.set_position(n))?;
    progress.finish_and_clear();
    use std::io::Write;
    base.flush()?;
    truth.flush()?;
    for (outcome, n) in counts {
        println!("{outcome:<14} {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one sector's adapter until Ctrl-C or SIGTERM.
fn serve(args: AdapterArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = args.sector else {
        anyhow::bail!(
            "say which sector to serve: --sector {} (or a subcommand; see --help)",
            sectors::names().join("|")
        );
    };
    let sector = sectors::by_name(&name)
        .ok_or_else(|| lienthong_adapters::Error::UnknownSector(name.clone()))?;
    let opts = AdapterOptions {
        sector,
        data_dir: args.data_dir,
        pki_dir: args.pki_dir,
        seed: args.seed,
        citizens: args.citizens,
        events: ConsumerConfig {
            url: args.amqp_url,
            exchange: args.events_exchange,
            prefetch: 32,
            queue_type: args.queue_type,
        },
        connection_idle: Duration::from_millis(args.connection_idle_ms),
    };
    let (adapter, port) = framework::open(&opts)?;
    let listen = args.listen.unwrap_or_else(|| {
        SocketAddr::from(([127, 0, 0, 1], adapter.sector().spec().default_port))
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Caught from now on: a SIGTERM while starting stops it cleanly.
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("{listen}: {e}"))?;
        if let Some(addr) = args.metrics_listen.0 {
            let handle = lienthong_adapters::telemetry::install().map_err(anyhow::Error::msg)?;
            // Exported before the first scrape can come.
            adapter.note_applied(None);
            let metrics = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("metrics on {addr}: {e}"))?;
            tracing::info!(metrics = %metrics.local_addr()?, "metrics for Prometheus at GET /metrics");
            tokio::spawn(lienthong_adapters::telemetry::serve_metrics(
                metrics,
                handle,
                std::future::pending(),
            ));
        }
        tracing::info!(sector = %name, listen = %listener.local_addr()?, "lienthong adapter serving (mTLS, the gateway only)");
        framework::run(adapter, listener, port, opts.events.clone(), stop).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn conformance(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let population = match (args.seed, args.citizens) {
        (None, None) => None,
        (seed, citizens) => Some((seed.unwrap_or(1), citizens.unwrap_or(1_000_000))),
    };
    let known = if args.pids.is_empty() {
        let (seed, citizens) = population.unwrap_or((1, 1_000_000));
        Population::new(seed, citizens)?
            .iter()
            .filter(|c| c.status == 0)
            .take(20)
            .map(|c| format!("{:012}", c.pid))
            .collect()
    } else {
        args.pids
    };
    let opts = ConformanceOptions {
        endpoint: args.endpoint,
        sector: args.sector,
        pki_dir: args.pki_dir,
        known,
        unknown: args.unknown_pid,
        population,
        deadline: Duration::from_millis(args.deadline_ms),
    };
    let checks = tokio::runtime::Runtime::new()?.block_on(conformance::run(&opts));
    for check in &checks {
        println!("{check}");
    }
    let count = |f: fn(&Outcome) -> bool| checks.iter().filter(|c| f(&c.outcome)).count();
    let failed = count(|o| matches!(o, Outcome::Fail(_)));
    println!(
        "{} passed, {failed} failed, {} skipped",
        count(|o| matches!(o, Outcome::Pass(_))),
        count(|o| matches!(o, Outcome::Skip(_)))
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIENTHONG_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::SimVerify(args)) => verify(args),
        Some(Command::SimGenerate(args)) => generate_base(args),
        Some(Command::Conformance(args)) => conformance(args),
        None => serve(cli.adapter),
    };
    result.unwrap_or_else(|e| {
        eprintln!("lienthong-adapter: {e:#}");
        ExitCode::FAILURE
    })
}
