//! `lienthong outbox`: how far event publishing is behind the registry,
//! and, for a shared store, which replica publishes.

use std::time::Duration;

use super::{DataDir, StoreChoice};
use crate::clock;
use crate::error::Result;
use crate::registry::{Outbox, PostgresRegistry, Publisher, SqliteRegistry};

/// The outbox of a data directory, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxReport {
    /// Last committed event's sequence number.
    pub last_seq: u64,
    /// Events not yet confirmed by the broker.
    pub waiting: u64,
    /// How long the oldest waiting event has waited.
    pub oldest_waiting_for: Option<Duration>,
    /// For a shared store, the replica that took the right to publish last
    /// (`None` before any did); not asked of an embedded one.
    pub publisher: Option<Option<Publisher>>,
}

/// Reads the outbox of the registry `store` names.
pub fn outbox(dir: &DataDir, store: &StoreChoice) -> Result<OutboxReport> {
    let (lag, publisher) = match store {
        StoreChoice::Embedded => (SqliteRegistry::open(dir.registry())?.lag()?, None),
        StoreChoice::Postgres(url) => {
            let store = PostgresRegistry::open(url)?;
            (store.lag()?, Some(store.publisher()?))
        }
    };
    Ok(OutboxReport {
        last_seq: lag.last_seq,
        waiting: lag.waiting,
        oldest_waiting_for: lag.oldest_waiting.as_deref().and_then(clock::age),
        publisher,
    })
}
