//! `lienthong`: the gateway's command line. Parses the arguments (and the
//! configuration file) into typed settings, sets up logging, and runs the
//! library's command.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use lienthong_gateway::cli::{self, AuditCommand, Command, DirArgs, Setting};
use lienthong_gateway::cmd::{self, DataDir, SeedOptions};
use lienthong_gateway::config;

/// mimalloc rather than the C library's allocator: a request's memory is
/// often freed by another thread than the one that allocated it (its task
/// moved, the audit writer answered it), which glibc's allocator pays for
/// with a lock; measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `check` found problems: bad configuration, exit 64.
#[derive(Debug)]
struct CheckFailed(usize);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the data directory has {} problem(s)", self.0)
    }
}

impl std::error::Error for CheckFailed {}

fn main() -> ExitCode {
    // Bad configuration exits with 64 (EX_USAGE), before any port is bound.
    let (command, settings) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("lienthong: {e:#}");
            return ExitCode::from(64);
        }
    };
    init_logs(command.dir());
    match run(command, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lienthong: {e:#}");
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

/// Logs to stderr, filtered by `--log`, as text or one JSON object a line.
fn init_logs(dir: &DirArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&dir.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if dir.log_format.eq_ignore_ascii_case("json") {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn run(command: Command, settings: &[Setting]) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = args.options();
            let runtime = tokio::runtime::Runtime::new()?;
            let served =
                runtime.block_on(async { cmd::serve(&dir, &opts, shutdown_signal()).await });
            // Connections still open after the grace period end here.
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Up(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = args.options();
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(async { cmd::up(&dir, &opts, shutdown_signal()).await });
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Config(args) => cli::print_config(
            &args.dir.data_dir,
            &config::file_path(&args.dir.data_dir, args.config.as_deref()),
            settings,
        ),
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
            let keys = config::ConfigFile::load(&path, false, &cli::setting_keys())
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

/// Completes on Ctrl-C or SIGTERM, caught from the moment this is called
/// (inside the runtime, before anything is served).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let signalled = lienthong_proto::signal::shutdown_signal();
    async move {
        signalled.await;
        tracing::info!("shutting down: draining in-flight requests");
    }
}
