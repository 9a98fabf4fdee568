//! The population registry: the store of citizen records and their outbox.
//!
//! [`PopulationStore`] is what the rest of the gateway sees; [`SqliteRegistry`]
//! is the embedded backend (SQLite, bundled). Look-ups come in batches
//! ([`PopulationStore::get_many`]); verification reads the in-memory
//! [`crate::projection`], built from [`PopulationStore::visit_all`].
//! A registry write, its outbox event and its idempotency receipt commit in
//! one transaction ([`PopulationStore::write`]); the relay reads the outbox
//! through [`Outbox`].

mod consent;
pub(crate) mod postgres;
mod schema;
mod seed;
mod sqlite;

mod outbox;
mod quota;

pub use outbox::{Outbox, OutboxLag, OutboxRow, Publisher};
pub use postgres::PostgresRegistry;
pub use quota::QuotaLedger;
pub use seed::{Sample, SampleRecord, SeedReport, seed, write_sample};
pub use sqlite::SqliteRegistry;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};

use crate::error::Result;

/// A population change event, as written to the outbox with its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Event id (a UUID, unique).
    pub id: String,
    /// Event type, e.g. `citizen.died`: also the routing key.
    pub kind: String,
    /// The citizen concerned.
    pub pid: Pid,
    /// When the registry recorded the change (RFC 3339 UTC).
    pub occurred_at: String,
    /// Event data (a JSON object).
    pub data: String,
}

/// A registry write's idempotency key: the client's `request_id`, scoped to
/// its agency, and a fingerprint of what the request asked for.
#[derive(Debug, Clone)]
pub struct RequestKey<'a> {
    /// The agency that wrote.
    pub agency: &'a str,
    /// The client's idempotency key.
    pub request_id: &'a str,
    /// The operation, e.g. `record_death`.
    pub operation: &'static str,
    /// SHA-256 of the operation's canonical arguments.
    pub fingerprint: [u8; 32],
    /// The replica taking the write (its `--node-name`): recorded in a new
    /// receipt, not part of the key.
    pub node: &'a str,
}

/// What a registry write sees of the register, inside its transaction:
/// reads here and the write that follows are one atomic step.
pub trait WriteScope {
    /// The current record of `pid`.
    fn get(&mut self, pid: Pid) -> Result<Option<Citizen>>;

    /// A Pid within `lowest..=highest` that no citizen has: the one after
    /// the highest taken while there is one, else the lowest free one; `None`
    /// when all are taken.
    fn free_within(&mut self, lowest: Pid, highest: Pid) -> Result<Option<Pid>>;
}

/// What a registry write changes: the records to store and its one event.
#[derive(Debug, Clone)]
pub struct Planned {
    /// New or changed records.
    pub records: Vec<Citizen>,
    /// The change's event.
    pub event: OutboxEvent,
}

/// What the registry recorded for one write; a retry gets the same receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The client's idempotency key.
    pub request_id: String,
    /// The citizen concerned.
    pub pid: Pid,
    /// The event's id.
    pub event_id: String,
    /// The event's outbox sequence number.
    pub seq: u64,
    /// When the change was recorded (RFC 3339 UTC).
    pub recorded_at: String,
    /// The replica that committed it.
    pub node: String,
}

/// How a write ended: newly committed, or the receipt of an earlier commit
/// of the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed now, event included.
    Committed(Receipt),
    /// Seen before: nothing changed, no event.
    Replayed(Receipt),
}

impl Written {
    /// The receipt, however the write ended.
    pub fn receipt(&self) -> &Receipt {
        match self {
            Self::Committed(r) | Self::Replayed(r) => r,
        }
    }
}

/// One committed write as the outbox tells it: its `seq` and the Pids of
/// the records it stored (what the [`crate::projection`] reads again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The write's outbox sequence number.
    pub seq: u64,
    /// Every record it stored (the event's citizen, and a spouse's).
    pub pids: Vec<Pid>,
}

/// What the outbox holds after a `seq`: the writes, and the last `seq`
/// committed (with no writes, a `last_seq` beyond the one asked after means
/// a purged stretch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The writes, in `seq` order.
    pub writes: Vec<Change>,
    /// The outbox's last `seq`, as of the same read.
    pub last_seq: u64,
}

/// Plans a registry write from the register's current state.
pub type Plan<'a> = dyn FnMut(&mut dyn WriteScope) -> Result<Planned> + 'a;

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

    /// Visits every record, `view` of each, in Pid order, in one snapshot;
    /// returns the outbox's last `seq` in that snapshot: the register as it
    /// was after that write (what the [`crate::projection`] is built from).
    fn visit_all(&self, view: RecordView, visit: &mut dyn FnMut(Citizen)) -> Result<u64>;

    /// The writes committed after outbox `seq` `after`, at most `limit` of
    /// them, in `seq` order: published or not, by this process or by any
    /// other writing to the same store. A purged stretch of the outbox
    /// shows as a gap in the `seq`s. A store must hand out `seq`s gap-free
    /// and in commit order (no write may commit with a lower `seq` than one
    /// already visible), or a reader would take a write still in flight for
    /// a purged one, or pass it by: SQLite has one writer at a time; a
    /// shared store takes the next `seq` under a lock inside the write's
    /// transaction.
    fn changes_after(&self, after: u64, limit: usize) -> Result<Changes>;

    /// Number of citizens on the register (a full count: not for hot paths).
    fn count(&self) -> Result<u64>;

    /// Whether the register holds no citizen at all (cheap).
    fn is_empty(&self) -> Result<bool>;

    /// Performs one registry write, in one transaction: if `key` was seen
    /// before, returns its receipt and changes nothing (or refuses a
    /// different request under the same key); otherwise runs `plan` against
    /// the current register and commits its records, its event and the
    /// receipt together.
    fn write(&self, key: &RequestKey<'_>, plan: &mut Plan<'_>) -> Result<Written>;
}

/// A registry backend as `serve` runs it: citizens and their outbox,
/// consents, daily quota counts — embedded ([`SqliteRegistry`]) or shared
/// by replicas ([`PostgresRegistry`]).
pub trait Registry: PopulationStore + ConsentBook + Outbox + QuotaLedger {
    /// The synthetic population it was seeded with, as (seed, citizens);
    /// `None` before seeding.
    fn seeded_with(&self) -> Result<Option<(u64, u64)>>;
}

impl Registry for SqliteRegistry {
    fn seeded_with(&self) -> Result<Option<(u64, u64)>> {
        SqliteRegistry::seeded_with(self)
    }
}

impl Registry for PostgresRegistry {
    fn seeded_with(&self) -> Result<Option<(u64, u64)>> {
        PostgresRegistry::seeded_with(self)
    }
}

/// A consent as the book keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsent {
    /// Its id (a UUID v7).
    pub id: String,
    /// The citizen.
    pub pid: Pid,
    /// The agency.
    pub agency: String,
    /// The purpose.
    pub purpose: String,
    /// Field names, comma-separated.
    pub fields: String,
    /// Registry timestamps.
    pub issued_at: String,
    /// Registry timestamp.
    pub expires_at: String,
}

/// Where consents are kept, so that a revocation outlives a restart.
pub trait ConsentBook: Send + Sync + 'static {
    /// Records a granted consent.
    fn insert(&self, consent: &StoredConsent) -> Result<()>;
    /// Revokes consent `id` of citizen `pid` at `at`; returns when it was
    /// revoked (the first time, if it already was), or `None` if this
    /// citizen has no such consent.
    fn revoke(&self, pid: Pid, id: &str, at: &str) -> Result<Option<String>>;
    /// Whether consent `id` is revoked; `None` if the book does not hold it.
    fn is_revoked(&self, id: &str) -> Result<Option<bool>>;
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) use tests::TestSchema;
