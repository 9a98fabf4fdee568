//! The lienthong gateway.
//!
//! One module a concern:
//! - [`verify`]: matching claims against the register, predicates.
//! - [`projection`]: what verification reads of every citizen, in memory.
//! - [`disclose`]: granted fields with their provenance.
//! - [`registry`]: the population store and its embedded backend, seeding.
//! - [`policy`]: who may do what, for which purpose.
//! - [`consent`]: citizens' consent tokens, granted, revoked and checked.
//! - [`audit`]: the hash-chained audit log, its checkpoints and verification.
//! - [`signing`]: the gateway's Ed25519 key (consent tokens, checkpoints).
//! - [`limits`]: per-agency request rates.
//! - [`telemetry`]: Prometheus metrics and their scrape endpoint.
//! - [`exchange`]: the domain behind `ExchangeService`.
//! - [`registration`]: registry writes, the domain behind `RegistryService`.
//! - [`events`]: population change events and the relay that publishes them.
//! - [`api`]: the gRPC edge (thin: decode, call the domain, encode).
//! - [`tls`]: mutual TLS, agency identity, the development PKI.
//! - [`cli`]: the command line, each setting described once.
//! - [`cmd`]: the `lienthong` commands.
//! - [`config`]: the configuration file.
//! - [`private`]: the modes of the files that hold personal data.
//! - `blocking`: store calls off the runtime's worker threads.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
mod blocking;
pub mod cli;
mod clock;
pub mod cmd;
pub mod config;
pub mod consent;
pub mod disclose;
pub mod error;
pub mod events;
pub mod exchange;
pub mod limits;
pub mod policy;
pub mod private;
pub mod projection;
pub mod registration;
pub mod registry;
pub mod sector;
pub mod signing;
pub mod telemetry;
pub mod tls;
pub mod verify;

pub use error::{Error, Result};
