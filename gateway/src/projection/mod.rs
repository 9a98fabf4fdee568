//! The verification projection: what verification reads of every citizen,
//! in memory, so that a claim costs a hash look-up, not a B-tree walk and a
//! record decoded.
//!
//! ```text
//! start:  registry ──visit_all (one snapshot)──▶ Projection, applied = outbox seq
//! write:  Registrar ─▶ ProjectedStore::write ─▶ store commit (records, event, seq)
//!                                        └──▶ Projection::apply(seq, records)
//!                                             before the write is answered
//! read:   VerifyIdentity / VerifyBatch ─▶ Verifier ─▶ Projection::visit
//!         GetCitizen, QuerySector, the registry writes ─▶ the store
//! ```
//!
//! - [`table`]: the layout (bytes per citizen).
//! - [`store`]: [`ProjectedStore`], the store through which every write of
//!   this gateway goes, keeping the projection in the writes' order.
//!
//! A verification never sees an older state than a write this gateway has
//! acknowledged: the write is applied before it is answered, and writes are
//! applied one at a time, in commit order. This gateway is the register's
//! only writer: the audit log's lock (`audit/lock`) keeps a second `serve`
//! off the data directory.

mod store;
mod table;

pub use store::ProjectedStore;

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};

use crate::error::Result;
use crate::registry::PopulationStore;
use crate::telemetry::PROJECTION_SEQ;
use crate::verify::Facts;
use table::Table;

/// Claims verified under one read of the projection.
pub const VISIT_CHUNK: usize = 256;

/// Every citizen's verification facts, kept current by this gateway's
/// registry writes.
pub struct Projection {
    table: RwLock<Table>,
    /// The outbox `seq` of the last write applied.
    applied: AtomicU64,
}

/// How big a projection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Citizens held.
    pub citizens: usize,
    /// Bytes held (rows, text and index).
    pub bytes: usize,
    /// Of those, text bytes left by changed citizens until the next start.
    pub stale: usize,
}

impl Projection {
    /// The projection of everything in `store`, read in one snapshot.
    pub fn build(store: &dyn PopulationStore) -> Result<Self> {
        let started = Instant::now();
        // Grown as it is read, then shrunk: counting the rows first would
        // read the whole table once more (5 s cold at 10 M citizens).
        let mut table = Table::default();
        let seq = store.visit_all(RecordView::Verification, &mut |c| table.put(&c))?;
        table.shrink();
        let projection = Self {
            table: RwLock::new(table),
            applied: AtomicU64::new(seq),
        };
        let footprint = projection.footprint();
        metrics::gauge!(PROJECTION_SEQ).set(seq as f64);
        tracing::info!(
            citizens = footprint.citizens,
            mib = footprint.bytes >> 20,
            seq,
            ms = started.elapsed().as_millis() as u64,
            "verification projection built"
        );
        Ok(projection)
    }

    /// Calls `visit` with each Pid's index in `pids` and its facts (`None`:
    /// not on the register), in order. Each [`VISIT_CHUNK`] Pids are read
    /// from one state of the register, so that a registry write waits for
    /// at most one chunk's comparisons, never a whole batch's.
    pub fn visit(
        &self,
        pids: impl Iterator<Item = Pid>,
        mut visit: impl FnMut(usize, Option<Facts<'_>>),
    ) {
        let mut pids = pids.map(Pid::as_u64).peekable();
        let mut chunk = Vec::with_capacity(VISIT_CHUNK);
        let mut i = 0;
        while pids.peek().is_some() {
            chunk.clear();
            chunk.extend(pids.by_ref().take(VISIT_CHUNK));
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            let mut facts = Vec::with_capacity(chunk.len());
            table.get_many(&chunk, &mut facts);
            for f in facts {
                visit(i, f);
                i += 1;
            }
        }
    }

    /// Applies a committed write: its `records`, as of outbox `seq`.
    pub(crate) fn apply(&self, seq: u64, records: &[Citizen]) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        for c in records {
            table.put(c);
        }
        self.applied.fetch_max(seq, Ordering::Release);
        metrics::gauge!(PROJECTION_SEQ).set(seq as f64);
    }

    /// The outbox `seq` of the last write the projection holds.
    pub fn applied_seq(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// How big it is.
    pub fn footprint(&self) -> Footprint {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        Footprint {
            citizens: table.citizens(),
            bytes: table.bytes(),
            stale: table.stale(),
        }
    }
}

#[cfg(test)]
mod tests;
