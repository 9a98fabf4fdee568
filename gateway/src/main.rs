//! `lienthong`: the gateway's command line. Parses the arguments (and the
//! configuration file) into typed settings, sets up logging, and runs the
//! command.

use std::io::IsTerminal;
use std::process::ExitCode;

use lienthong_gateway::Error;
use lienthong_gateway::cli::{self, DirArgs};

/// mimalloc rather than the C library's allocator: a request's memory is
/// often freed by another thread than the one that allocated it (its task
/// moved, the audit writer answered it), which glibc's allocator pays for
/// with a lock; measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    match cli::run(command, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lienthong: {e:#}");
            match e {
                Error::Policy { .. }
                | Error::Config { .. }
                | Error::Tls(_)
                | Error::CheckFailed { .. } => ExitCode::from(64),
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
