//! The cluster's audit log: with `--store postgres://…` every replica
//! appends its records to PostgreSQL, in a hash chain of its own (the one
//! `--node-name` names), committed before the answer leaves.
//!
//! ```text
//! request ─▶ SharedAudit::append ─▶ channel ─▶ writer thread: one session,
//!              awaits its ack                  holding the node's lock;
//!                                              every waiting job is one
//!                                              group, chained, and committed
//!                                              with ONE statement:
//!   INSERT INTO audit_record  (the group's rows, from arrays)
//!   INSERT INTO audit_pid     (a row for each citizen a record names)
//!   INSERT INTO audit_checkpoint (when one is due, signed)
//! ```
//!
//! The records, hashes and checkpoints are the embedded log's
//! ([`super::record`]): only where they are kept differs. Replicas never
//! wait on each other's chain; `ListAccesses` reads every chain through
//! the citizen index, ordered by `at`, a number the database hands out as
//! records are inserted ([`list`]). A replica's chain is its own: a second
//! process started with the same node name finds the node's advisory lock
//! taken and refuses to start. Tables are partitioned by month
//! ([`period`]) so that an old month can be detached and archived.
//!
//! - [`writer`]: the group commit and the checkpoints;
//! - [`list`]: a citizen's accesses, across every replica;
//! - [`verify`]: `lienthong audit verify --store`;
//! - [`period`]: the monthly partitions.

mod list;
mod period;
mod verify;
mod writer;

pub use list::SharedAccesses;
pub use verify::{ChainAnchor, ChainReport, verify_shared};

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::record::AuditEntry;
use super::{AuditTrail, Pending};
use crate::error::{Error, Result};
use crate::registry::postgres::pool::Pool;
use crate::signing::SigningKey;
use writer::{Msg, Writer};

/// Connections `ListAccesses` and `audit verify` read through, at most, on
/// each replica (besides the writer's own session).
const READERS: usize = 8;

/// The columns of a record, in the order [`record_of`] reads them.
pub(super) const RECORD_COLUMNS: &str = "seq, time, agency, operation, purpose, pids, fields, \
     decision, outcome, request_id, trace_id, request_hash, response_hash, hidden_until, \
     prev_hash, hash, at";

/// The handle requests append through; cheap to clone.
#[derive(Clone)]
pub struct SharedAudit {
    jobs: mpsc::Sender<Msg>,
}

/// The writer's thread, to close the log when serving stops.
pub struct SharedAuditWriter {
    thread: JoinHandle<()>,
    jobs: mpsc::Sender<Msg>,
}

impl SharedAudit {
    /// Opens the chain of replica `node` in the database at `url` (whose
    /// registry schema is migrated) and starts its writer, which signs
    /// checkpoints with `key`. Refuses while another process writes that
    /// chain, and when the chain's stored tail does not hold (a last record
    /// that does not match its hash, a checkpoint past the last record):
    /// the replica never appends after damage. Blocks on the network.
    pub fn open(
        url: &str,
        node: &str,
        key: Arc<SigningKey>,
    ) -> Result<(Self, SharedAuditWriter, SharedAccesses)> {
        let pool = Arc::new(Pool::from_url(url, READERS)?);
        let session = writer::Session::open(&pool, node)?;
        tracing::info!(
            node,
            seq = session.head.0,
            "the audit log is in PostgreSQL: this replica's chain continues"
        );
        let (jobs, inbox) = mpsc::channel();
        let mut writer = Writer::new(pool.clone(), node, key, session, inbox);
        let thread = std::thread::Builder::new()
            .name("lienthong-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::Audit(format!("cannot start the audit writer: {e}")))?;
        Ok((
            Self { jobs: jobs.clone() },
            SharedAuditWriter { thread, jobs },
            SharedAccesses::new(pool),
        ))
    }

    /// Appends `entries` (in order, adjacent) and returns once they are
    /// committed, with the last one's number in this replica's chain.
    pub async fn append(&self, entries: Vec<AuditEntry>) -> Result<u64> {
        let stopped = || Error::Audit("the audit writer has stopped".into());
        let (done, ack) = oneshot::channel();
        self.jobs
            .send(Msg::Job { entries, done })
            .map_err(|_| stopped())?;
        ack.await.map_err(|_| stopped())?.map_err(Error::Audit)
    }
}

impl AuditTrail for SharedAudit {
    fn append(&self, entries: Vec<AuditEntry>) -> Pending<'_> {
        Box::pin(SharedAudit::append(self, entries))
    }
}

impl SharedAuditWriter {
    /// Closes the log: what is queued is committed and a last checkpoint
    /// signed, even while some [`SharedAudit`] handles remain (requests
    /// still in flight then get `AUDIT_UNAVAILABLE`). Waits up to `limit`;
    /// whether it closed.
    pub async fn close(self, limit: Duration) -> bool {
        let _ = self.jobs.send(Msg::Close);
        let joined = tokio::task::spawn_blocking(move || self.thread.join().is_ok());
        matches!(tokio::time::timeout(limit, joined).await, Ok(Ok(true)))
    }
}

/// The record a row of [`RECORD_COLUMNS`] holds, with its `at`.
pub(super) fn record_of(row: &postgres::Row) -> Result<(super::AuditRecord, i64)> {
    let hash = |i: usize| -> Result<super::Hash> {
        row.get::<_, &[u8]>(i)
            .try_into()
            .map_err(|_| Error::Audit(format!("an audit row's column {i} is not a SHA-256 hash")))
    };
    let decision = super::Decision::parse(row.get(7));
    let entry = AuditEntry {
        agency: row.get(2),
        operation: row.get(3),
        purpose: row.get(4),
        pids: row.get(5),
        fields: row.get(6),
        decision: decision.unwrap_or(super::Decision::Refused),
        outcome: row.get(8),
        request_id: row.get(9),
        trace_id: row.get(10),
        request_hash: hash(11)?,
        response_hash: hash(12)?,
        hidden_until: row.get(13),
    };
    let mut record = super::AuditRecord {
        seq: row.get::<_, i64>(0) as u64,
        time: row.get(1),
        entry,
        prev_hash: hash(14)?,
        hash: hash(15)?,
    };
    if decision.is_none() {
        // A decision spelled otherwise was edited: the record is made not
        // to match its hash, whatever it was edited from.
        record.hash[0] ^= 0xff;
    }
    Ok((record, row.get(16)))
}

/// The advisory lock that makes a node's chain one process's: held by the
/// writer's session for as long as it lives.
pub(super) const NODE_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended(\
     'lienthong audit ' || current_schema() || ' ' || $1, 0))";

#[cfg(test)]
mod tests;
