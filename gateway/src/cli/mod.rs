//! The `lienthong` command line: every command and its arguments, parsed
//! once into typed structs before anything binds.
//!
//! A `serve` setting is described once, as a field of [`ServeArgs`]: its
//! flag, environment variable, default, validation and help. The
//! configuration file's keys are those fields' names, read through the
//! same validation ([`crate::config`]); `lienthong config` lists them in the
//! same order with where each value came from ([`listing`]); and
//! [`ServeArgs::options`] turns them into what `serve` runs with. A new
//! setting is a field and its use there.
//!
//! ```text
//! precedence: built-in default < lienthong.toml < LIENTHONG_* variable < flag
//! ```

mod audit;
mod listing;
mod run;
mod serve_args;

pub use listing::{Setting, print_config};
pub use run::run;
pub use serve_args::ServeArgs;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::audit::Anchor;
use crate::cmd::StoreChoice;
use crate::config::{self, ConfigFile};
use crate::error::{Error, Result};
use crate::sector::{SectorEndpoint, parse_endpoints};
use crate::signing::{VerifyingKey, parse_hex32};

/// lienthong: verified population data for social insurance, health,
/// education, telecom and banking, over gRPC with mutual TLS.
#[derive(Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no command, `lienthong` serves.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// for the broker's confirm, and for how long; with a shared store,
    /// which replica publishes.
    Outbox(OutboxArgs),
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
    /// container's health check; prints the status, then the outbox seq
    /// its verification projection has applied. Exits 0 when SERVING, 1
    /// otherwise.
    Health(HealthArgs),
    /// Print the configuration `serve` would run with (the same options,
    /// environment and configuration file), each value with where it comes
    /// from; passwords redacted.
    Config(ServeArgs),
}

#[derive(Args, Clone)]
pub struct HealthArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// One service's status (e.g. lienthong.v1.ExchangeService) instead of
    /// the gateway's as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
}

impl Command {
    /// The data directory and logging arguments, which every command has.
    pub fn dir(&self) -> &DirArgs {
        match self {
            Self::Serve(a) | Self::Up(a) | Self::Check(a) | Self::Config(a) => &a.dir,
            Self::Seed(a) => &a.dir,
            Self::Outbox(a) => &a.dir,
            Self::Certs(d) => d,
            Self::Audit(AuditCommand::Verify(a)) => &a.dir,
            Self::Health(a) => &a.dir,
        }
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and the signed checkpoints: reports the first
    /// record edited, removed or moved, or a cut tail; exits 1 if any.
    Verify(AuditVerifyArgs),
}

#[derive(Args, Clone)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// The gateway's public key (64 hex digits, as this command prints it),
    /// kept off the machine; by default the public half of
    /// DIR/keys/signing.pk8.
    #[arg(long, value_name = "HEX")]
    pub public_key: Option<VerifyingKey>,
    /// A record's number and hash from an earlier run of this command
    /// (`SEQ:HASH`; with --store, `NODE:SEQ:HASH`, once for each chain),
    /// kept off the machine: the log must still hold it. This finds a tail
    /// cut together with its checkpoints.
    #[arg(long, value_name = "[NODE:]SEQ:HASH", value_parser = parse_anchor)]
    pub checkpoint: Vec<ChainAnchorArg>,
    /// Verify the cluster's audit log in this shared store
    /// (postgres://…): every replica's chain, instead of DIR/audit/.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `--checkpoint`: a record's number and hash, in the chain `node` names
/// (none for the embedded log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAnchorArg {
    /// The replica whose chain holds it.
    pub node: Option<String>,
    /// The record.
    pub anchor: Anchor,
}

/// Where the metrics are served, or nowhere.
#[derive(Clone, Copy)]
pub struct MetricsListen(pub Option<SocketAddr>);

pub(crate) fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    text.parse()
        .map(|addr| MetricsListen(Some(addr)))
        .map_err(|_| format!("{text:?} is neither HOST:PORT nor off"))
}

/// The sector adapters' endpoints, as given.
#[derive(Clone)]
pub struct SectorEndpoints(pub Vec<SectorEndpoint>);

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

pub(crate) fn parse_sector_endpoints(text: &str) -> Result<SectorEndpoints, String> {
    parse_endpoints(text).map(SectorEndpoints)
}

/// `[NODE:]SEQ:HASH`, as `audit verify` prints the last checkpoint.
fn parse_anchor(text: &str) -> Result<ChainAnchorArg, String> {
    let (node, rest) = match text.matches(':').count() {
        2 => text
            .split_once(':')
            .map(|(node, rest)| (Some(node.to_owned()), rest))
            .ok_or("expected [NODE:]SEQ:HASH")?,
        _ => (None, text),
    };
    let (seq, hash) = rest
        .split_once(':')
        .ok_or("expected [NODE:]SEQ:HASH, e.g. 48213:9f1c… or gw-a:48213:9f1c…")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a record number"))?;
    let hash = parse_hex32(hash).ok_or("the hash is 64 hex digits")?;
    Ok(ChainAnchorArg {
        node,
        anchor: (seq, hash),
    })
}

/// Where the data directory is, and how to log: every command takes these.
#[derive(Args, Clone)]
pub struct DirArgs {
    /// Data directory: policy.toml, registry.db, audit/, keys/, pki/.
    #[arg(long, env = "LIENTHONG_DATA_DIR", default_value = "lienthong-data")]
    pub data_dir: PathBuf,
    /// What the logs (on stderr) show: a filter such as `info`, `debug` or
    /// `lienthong_gateway=debug,info`.
    #[arg(
        long,
        env = "LIENTHONG_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
    /// How the logs are written: `json` for one JSON object a line; any
    /// other value (`text`) for people.
    #[arg(
        long,
        env = "LIENTHONG_LOG_FORMAT",
        default_value = "text",
        value_name = "text|json"
    )]
    pub log_format: String,
}

/// `--store`, for the commands that read or fill the registry outside
/// `serve` (which reads it from its configuration file too).
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Where the registry lives: nothing for DIR/registry.db (SQLite,
    /// embedded), or postgres://user:password@host:port/database for the
    /// store replicas share.
    #[arg(long, env = "LIENTHONG_STORE", default_value = "", hide_env_values = true,
          value_parser = serve_args::parse_store)]
    pub store: StoreChoice,
}

#[derive(Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Number of citizens.
    #[arg(long, default_value_t = 1_000_000)]
    pub citizens: u64,
    /// Population seed: the same seed always gives the same people.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write a sample of records as JSONL (pid, full_name, date_of_birth,
    /// sex, status, permanent_province) to try queries with.
    #[arg(long, value_name = "FILE.jsonl")]
    pub sample_out: Option<PathBuf>,
    /// Records in the sample.
    #[arg(long, default_value_t = 1_000)]
    pub sample_size: u64,
}

/// Parses the command line with the configuration file's values as the
/// options' defaults: default < file < environment < flag. For the
/// commands that read the configuration (`serve`, `up`, `check`, `config`),
/// also every setting's value and where it came from. Help, version and
/// usage errors exit here, as clap does.
pub fn parse() -> Result<(Command, Vec<Setting>)> {
    let first = Cli::from_arg_matches(&Cli::command().get_matches()).unwrap_or_else(|e| e.exit());
    let serve = match &first.command {
        None => &first.serve,
        Some(Command::Serve(a) | Command::Up(a) | Command::Check(a) | Command::Config(a)) => a,
        Some(_) => {
            let command = first.command.unwrap_or(Command::Serve(first.serve));
            return Ok((command, Vec::new()));
        }
    };
    let path = config::file_path(&serve.dir.data_dir, serve.config.as_deref());
    let keys = setting_keys();
    let file = ConfigFile::load(&path, serve.config.is_some(), &keys)?;
    let mut cli = Cli::command();
    for (key, value) in file.values() {
        // Read once per process: a default must live as long as the parser.
        let value: &'static str = Box::leak(value.clone().into_boxed_str());
        let key = key.clone();
        cli = cli.mut_arg(&key, |a| a.default_value(value));
        for sub in ["serve", "up", "check", "config"] {
            cli = cli.mut_subcommand(sub, |c| c.mut_arg(&key, |a| a.default_value(value)));
        }
    }
    // The command line parsed once without the file's values: an error
    // now is one of the file's values failing its setting's validation.
    let matches = cli.try_get_matches().map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => e.exit(),
        _ => {
            let said = e.to_string();
            // The setting at fault, as clap names it: `--log-format <…>`.
            let line = e
                .get(clap::error::ContextKind::InvalidArg)
                .map(|arg| arg.to_string())
                .and_then(|arg| {
                    let flag = arg.split_whitespace().next()?.trim_start_matches('-');
                    file.line_of(&flag.replace('-', "_"))
                });
            Error::Config {
                path: path.clone(),
                message: format!(
                    "{}{}",
                    line.map_or_else(String::new, |n| format!("line {n}: ")),
                    said.trim_start_matches("error: ").trim_end()
                ),
            }
        }
    })?;
    let parsed = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let scope = match matches.subcommand() {
        Some((_, sub)) => sub,
        None => &matches,
    };
    let settings = Cli::command()
        .find_subcommand("serve")
        .map(|serve| {
            serve
                .get_arguments()
                .filter(|a| keys.contains(&a.get_id().as_str().to_owned()))
                .map(|arg| {
                    let id = arg.get_id().as_str();
                    let value = scope
                        .get_raw(id)
                        .map(|v| {
                            v.map(|s| s.to_string_lossy().into_owned())
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    let from = match scope.value_source(id) {
                        Some(ValueSource::CommandLine) => "flag",
                        Some(ValueSource::EnvVariable) => "environment",
                        Some(ValueSource::DefaultValue) if file.line_of(id).is_some() => "file",
                        _ => "default",
                    };
                    Setting {
                        key: id.to_owned(),
                        value,
                        from,
                        secret: arg.is_hide_env_values_set(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((
        parsed.command.unwrap_or(Command::Serve(parsed.serve)),
        settings,
    ))
}

/// The configuration file's keys: every `serve` setting but where the file
/// itself is (the data directory, `--config`).
pub fn setting_keys() -> Vec<String> {
    Cli::command()
        .find_subcommand("serve")
        .map(|serve| {
            serve
                .get_arguments()
                .map(|a| a.get_id().as_str().to_owned())
                .filter(|id| !["data_dir", "config", "help", "version"].contains(&id.as_str()))
                .collect()
        })
        .unwrap_or_default()
}
