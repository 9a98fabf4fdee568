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

use lienthong_proto::citizen::RecordView;
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
    /// Looks up many Pids at once, in one snapshot, decoding `view` of each
    /// record and handing it to `visit` with its index in `pids` (in no
    /// particular order; `None` when not found). Visiting instead of
    /// collecting keeps each record in cache only as long as it is used.
    fn visit_many(
        &self,
        pids: &[Pid],
        view: RecordView,
        visit: &mut dyn FnMut(usize, Option<Citizen>),
    ) -> Result<()>;

    /// Looks up many whole records at once; the result is in the order of `pids`.
    fn get_many(&self, pids: &[Pid]) -> Result<Vec<Option<Citizen>>> {
        let mut out = vec![None; pids.len()];
        self.visit_many(pids, RecordView::Full, &mut |i, c| out[i] = c)?;
        Ok(out)
    }

    /// Looks up one Pid.
    fn get(&self, pid: Pid) -> Result<Option<Citizen>> {
        Ok(self.get_many(&[pid])?.pop().flatten())
    }

    /// Number of citizens on the register (a full count: not for hot paths).
    fn count(&self) -> Result<u64>;

    /// Whether the register holds no citizen at all (cheap).
    fn is_empty(&self) -> Result<bool>;

    /// Writes a citizen record (new or changed) and appends its event to the
    /// outbox, in one transaction. Returns the event's outbox sequence number.
    fn commit_change(&self, citizen: &Citizen, event: &OutboxEvent) -> Result<u64>;
}
