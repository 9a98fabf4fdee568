//! The population registry: the store of citizen records and their outbox.
//!
//! [`PopulationStore`] is what the rest of the gateway sees; [`SqliteRegistry`]
//! is the embedded backend (SQLite, bundled). Look-ups come in batches
//! ([`PopulationStore::get_many`]) because that is how verification jobs ask.
//! A registry change and its outbox event commit in one transaction
//! ([`PopulationStore::commit_change`]).

mod schema;
mod seed;
mod sqlite;

pub use seed::{Sample, SampleRecord, SeedReport, seed};
pub use sqlite::SqliteRegistry;

use lienthong_proto::{Citizen, Pid};

use crate::error::Result;

/// A population change event, as written to the outbox with its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Event id (UUID-like, unique).
    pub id: String,
    /// Event type, e.g. `citizen.died`.
    pub kind: String,
    /// The citizen concerned.
    pub pid: Pid,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// Event data (JSON object).
    pub data: String,
}

/// The population store: citizen records by Pid, and the outbox.
pub trait PopulationStore: Send + Sync + 'static {
    /// Looks up many Pids at once; the result is in the order of `pids`.
    fn get_many(&self, pids: &[Pid]) -> Result<Vec<Option<Citizen>>>;

    /// Looks up one Pid.
    fn get(&self, pid: Pid) -> Result<Option<Citizen>> {
        Ok(self.get_many(&[pid])?.pop().flatten())
    }

    /// Number of citizens on the register.
    fn count(&self) -> Result<u64>;

    /// Writes a citizen record (new or changed) and appends its event to the
    /// outbox, in one transaction. Returns the event's outbox sequence number.
    fn commit_change(&self, citizen: &Citizen, event: &OutboxEvent) -> Result<u64>;
}
