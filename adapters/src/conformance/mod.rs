//! The adapter conformance kit: checks a sector adapter — written in any
//! language against `lienthong.adapter.v1` — as the gateway will use it,
//! and says per check whether it passes (`lienthong-adapter conformance`).
//!
//! ```text
//! check                          what the gateway relies on
//! tls-requires-client-cert       a call without a client certificate fails
//! tls-refuses-other-ca           one from a CA the adapter does not trust fails
//! tls-refuses-other-client       one of the gateway's CA but not the gateway's
//!                                (the health probe's, or one issued from ca.key)
//!                                gets no Lookup answer
//! health                         grpc.health.v1 says SERVING, for the server and
//!                                for lienthong.adapter.v1.SectorAdapterService
//! describe                       Describe names the sector, answers its queries
//!                                (the catalogue's) and, if given, the population
//! lookup <query>                 for the known Pids: the typed answer of that
//!                                query, or NOT_FOUND; at least one answer
//! lookup-not-found               a well-formed Pid it does not hold: NOT_FOUND
//! lookup-malformed               a malformed Pid: INVALID_ARGUMENT
//! deadline                       every call above answered within the deadline
//! ```
//!
//! The kit connects as the gateway does: to `--endpoint`, with the server
//! name `<sector>.adapter.lienthong`, presenting `gateway-client.pem` from
//! the PKI directory. It never writes to the adapter.

mod checks;

pub use checks::run;

use std::path::PathBuf;
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    /// The adapter, as the gateway's `--sector-endpoint` names it
    /// (`https://host:port`).
    pub endpoint: String,
    /// The sector it serves.
    pub sector: String,
    /// The gateway's PKI directory: ca.pem, gateway-client.pem/.key, and
    /// probe.pem/.key or ca.key for the other-client check.
    pub pki_dir: PathBuf,
    /// Pids the adapter holds records of.
    pub known: Vec<String>,
    /// A well-formed Pid it holds no record of.
    pub unknown: String,
    /// The synthetic population (seed, citizens) Describe must name, if
    /// the adapter serves one.
    pub population: Option<(u64, u64)>,
    /// The gateway's deadline for a sector call.
    pub deadline: Duration,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name (stable: scripts read it).
    pub name: String,
    /// `Ok(what was seen)`, or `Err(what is wrong)`; `None` when it could
    /// not be tried (said why).
    pub outcome: Outcome,
}

/// Whether a check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed; what was seen.
    Pass(String),
    /// It failed; why.
    Fail(String),
    /// It could not be tried; why (not a pass).
    Skip(String),
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (word, text) = match &self.outcome {
            Outcome::Pass(t) => ("pass", t),
            Outcome::Fail(t) => ("FAIL", t),
            Outcome::Skip(t) => ("skip", t),
        };
        write!(f, "{word}  {:<28} {text}", self.name)
    }
}
