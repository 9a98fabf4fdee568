//! Running a parsed command: each calls the library's command and prints
//! its report (the human-readable output of `lienthong`).

use std::time::Duration;

use super::{AuditCommand, Command, Setting};
use crate::cmd::{self, DataDir, SeedOptions};
use crate::config;
use crate::error::{Error, Result};

/// Runs `command`, printing its report on standard output; `settings` are
/// what `parse` found for `config` to list.
pub fn run(command: Command, settings: &[Setting]) -> Result<()> {
    match command {
        Command::Serve(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = args.options();
            let runtime = runtime()?;
            let served =
                runtime.block_on(async { cmd::serve(&dir, &opts, shutdown_signal()).await });
            // Connections still open after the grace period end here.
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Up(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let opts = args.options();
            let runtime = runtime()?;
            let served = runtime.block_on(async { cmd::up(&dir, &opts, shutdown_signal()).await });
            runtime.shutdown_timeout(Duration::from_secs(5));
            served?;
        }
        Command::Config(args) => super::print_config(
            &args.dir.data_dir,
            &config::file_path(&args.dir.data_dir, args.config.as_deref()),
            settings,
        ),
        Command::Health(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let runtime = runtime()?;
            // Any failure is "not healthy" (exit 1), bad certificates too.
            let health = runtime.block_on(cmd::health(&dir, args.addr, &args.service))?;
            println!("{}", health.status.as_str_name());
            if let Some(seq) = health.projection_seq {
                println!("projection_seq {seq}");
            }
            if health.status != tonic_health::pb::health_check_response::ServingStatus::Serving {
                return Err(Error::Server(format!("{} is not serving", args.addr)));
            }
        }
        Command::Seed(args) => {
            let dir = DataDir::new(&args.dir.data_dir);
            let started = std::time::Instant::now();
            let report = cmd::seed(
                &dir,
                &args.store.store,
                &SeedOptions {
                    citizens: args.citizens,
                    seed: args.seed,
                    sample_out: args.sample_out.clone(),
                    sample_size: args.sample_size,
                },
            )?;
            let into = match &args.store.store {
                cmd::StoreChoice::Embedded => dir.registry().display().to_string(),
                cmd::StoreChoice::Postgres(_) => "the shared store (--store)".to_owned(),
            };
            println!(
                "seeded {} citizens into {into} in {:.1} s",
                report.citizens,
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
            let dir = DataDir::new(&args.dir.data_dir);
            let report = cmd::outbox(&dir, &args.store.store)?;
            println!("last event seq      {}", report.last_seq);
            println!("waiting for broker  {}", report.waiting);
            if let Some(age) = report.oldest_waiting_for {
                println!("oldest waiting for  {:.1} s", age.as_secs_f64());
            }
            match report.publisher {
                None => {}
                Some(None) => println!("publisher           none yet"),
                Some(Some(p)) if p.holding => {
                    println!("publisher           {} (since {})", p.node, p.since)
                }
                Some(Some(p)) => println!(
                    "publisher           none now (last {}, from {})",
                    p.node, p.since
                ),
            }
        }
        Command::Check(args) => {
            let path = config::file_path(&args.dir.data_dir, args.config.as_deref());
            // A file that does not read stopped `parse` already.
            let keys = config::ConfigFile::load(&path, false, &super::setting_keys())
                .map(|f| f.values().len())
                .unwrap_or(0);
            let mut findings = vec![cmd::Finding::Ok(if path.exists() {
                format!("{}: {keys} settings", path.display())
            } else {
                format!("{}: none; defaults and environment", path.display())
            })];
            findings.extend(cmd::check(&DataDir::new(&args.dir.data_dir), &args.store));
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
                return Err(Error::CheckFailed { problems });
            }
        }
        Command::Audit(AuditCommand::Verify(args)) => super::audit::verify(&args)?,
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

/// A multi-threaded runtime for a command that serves or calls.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::Server(format!("cannot start the async runtime: {e}")))
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
