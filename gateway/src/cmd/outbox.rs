//! `lienthong outbox`: how far event publishing is behind the registry.

use std::time::Duration;

use super::DataDir;
use crate::clock;
use crate::error::Result;
use crate::registry::{Outbox, SqliteRegistry};

/// The outbox of a data directory, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxReport {
    /// Last committed event's sequence number.
    pub last_seq: u64,
    /// Events not yet confirmed by the broker.
    pub waiting: u64,
    /// How long the oldest waiting event has waited.
    pub oldest_waiting_for: Option<Duration>,
}

/// Reads the outbox of `dir`'s registry.
pub fn outbox(dir: &DataDir) -> Result<OutboxReport> {
    let lag = SqliteRegistry::open(dir.registry())?.lag()?;
    Ok(OutboxReport {
        last_seq: lag.last_seq,
        waiting: lag.waiting,
        oldest_waiting_for: lag.oldest_waiting.as_deref().and_then(clock::age),
    })
}
