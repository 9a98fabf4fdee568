//! The verification projection: what verification reads of every citizen,
//! in memory, so that a claim costs a hash look-up, not a B-tree walk and a
//! record decoded.
//!
//! ```text
//! start:   store ──visit_all (one snapshot)──▶ Projection, applied = outbox seq S
//! follow:  store.changes_after(applied) ─▶ (seq, Pids stored) … in seq order
//!                  └─▶ those Pids' records read again ─▶ put ─▶ applied = last seq
//!          run by: every write through ProjectedStore, before it is answered;
//!                  the follower, every FOLLOW_EVERY (writes of other processes
//!                  sharing the store); a call asking for x-lienthong-min-seq
//! read:    VerifyIdentity / VerifyBatch ─▶ Verifier ─▶ Projection::visit
//!          GetCitizen, QuerySector, the registry writes ─▶ the store
//! ```
//!
//! - [`table`]: the layout (bytes per citizen).
//! - [`store`]: [`ProjectedStore`], the store through which every write of
//!   this gateway goes: a write is applied before it is answered.
//! - [`follow`]: the task that applies the writes of others.
//!
//! The projection follows the outbox, not this process's writes: whatever
//! writes to the store, every projection over it applies the same writes in
//! the same (`seq`) order. A verification never sees an older state than a
//! write this gateway has acknowledged; one through another gateway is seen
//! within [`FOLLOW_EVERY`], or at once by a call that names the write's
//! `seq` ([`Projection::at_least`]). A stretch of the outbox purged before
//! it was applied (a gap in the `seq`s) makes the projection rebuild from a
//! new snapshot rather than go on without it.

mod follow;
mod store;
mod table;

pub use follow::{FOLLOW_EVERY, follow};
pub use store::ProjectedStore;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};

use crate::error::{Error, Result};
use crate::registry::PopulationStore;
use crate::telemetry::PROJECTION_SEQ;
use crate::verify::Facts;
use table::Table;

/// The request header by which a client asks for a verification no older
/// than a write it has seen acknowledged: the decimal `seq` of its receipt.
pub const MIN_SEQ_HEADER: &str = "x-lienthong-min-seq";

/// The response header naming the outbox `seq` a verification was made at
/// (at least: a batch stream's later batches may see newer writes).
pub const SEQ_HEADER: &str = "x-lienthong-seq";

/// Outbox rows read at once while following.
const FOLLOW_CHUNK: usize = 1_024;

/// Claims verified under one read of the projection.
pub const VISIT_CHUNK: usize = 256;

/// Every citizen's verification facts, kept current from the outbox.
pub struct Projection {
    table: RwLock<Table>,
    /// The outbox `seq` of the last write applied.
    applied: AtomicU64,
    /// Held while following: one reader of the outbox at a time, so that
    /// writes are applied once each, in order.
    following: Mutex<()>,
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
        let (table, seq) = snapshot(store)?;
        Ok(Self {
            table: RwLock::new(table),
            applied: AtomicU64::new(seq),
            following: Mutex::new(()),
        })
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

    /// Applies every write `store`'s outbox holds beyond the last one
    /// applied, in `seq` order; returns the `seq` applied after. Blocks on
    /// the store (a thread that may wait, not an async task's).
    pub fn catch_up(&self, store: &dyn PopulationStore) -> Result<u64> {
        self.catch_up_to(store, u64::MAX)
    }

    /// [`Projection::catch_up`], unless the write of outbox `seq` is
    /// applied already (by this caller's turn, perhaps by the one before:
    /// concurrent writes then cost one outbox read, not one each).
    fn catch_up_to(&self, store: &dyn PopulationStore, seq: u64) -> Result<u64> {
        let _one_reader = self.following.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let applied = self.applied_seq();
            if applied >= seq {
                return Ok(applied);
            }
            let changes = store.changes_after(applied, FOLLOW_CHUNK)?;
            // seq is gap-free: a missing one was purged from the outbox
            // before it was applied, and what it changed is unknown; a store
            // whose last seq is behind the projection's was restored from an
            // older copy. Either way the projection is read again whole.
            let gapless = match changes.writes.first() {
                Some(_) => changes
                    .writes
                    .iter()
                    .zip(applied + 1..)
                    .all(|(change, expected)| change.seq == expected),
                None => changes.last_seq == applied,
            };
            if !gapless {
                tracing::warn!(
                    applied,
                    last = changes.last_seq,
                    "the outbox no longer holds every write after the projection's: rebuilding it"
                );
                let (table, seq) = snapshot(store)?;
                *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
                self.set_applied(seq);
                continue;
            }
            let Some(last) = changes.writes.last().map(|c| c.seq) else {
                return Ok(applied);
            };
            let mut pids: Vec<Pid> = changes.writes.into_iter().flat_map(|c| c.pids).collect();
            pids.sort_unstable();
            pids.dedup();
            // Read after the outbox: each record is as of `last` or newer
            // (a newer one is applied again when its own row is read).
            let mut records: Vec<Citizen> = Vec::with_capacity(pids.len());
            store.visit_many(&pids, RecordView::Verification, &mut |_, c| {
                records.extend(c);
            })?;
            let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
            let put = records.iter().try_for_each(|c| table.put(c));
            drop(table);
            put?;
            self.set_applied(last);
        }
    }

    /// Makes sure the projection holds the write of outbox `seq`, catching
    /// up if it does not yet; refuses a `seq` the store has not committed
    /// (named by a caller in [`MIN_SEQ_HEADER`]). Costs at most one read of
    /// the outbox, however large `seq` is.
    pub fn at_least(&self, store: &dyn PopulationStore, seq: u64) -> Result<u64> {
        let applied = self.applied(store, seq)?;
        if applied >= seq {
            Ok(applied)
        } else {
            Err(Error::invalid(
                MIN_SEQ_HEADER,
                format!("names write {seq}; the register's last is {applied}"),
            ))
        }
    }

    /// The `seq` applied, after catching up if `seq` is not yet.
    pub(crate) fn applied(&self, store: &dyn PopulationStore, seq: u64) -> Result<u64> {
        match self.applied_seq() {
            applied if applied >= seq => Ok(applied),
            _ => self.catch_up_to(store, seq),
        }
    }

    /// The outbox `seq` of the last write the projection holds.
    pub fn applied_seq(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    fn set_applied(&self, seq: u64) {
        self.applied.store(seq, Ordering::Release);
        metrics::gauge!(PROJECTION_SEQ).set(seq as f64);
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

/// A table of everything in `store`, read in one snapshot, and the outbox
/// `seq` it is as of.
fn snapshot(store: &dyn PopulationStore) -> Result<(Table, u64)> {
    let started = Instant::now();
    // Grown as it is read, then shrunk: counting the rows first would read
    // the whole table once more (5 s cold at 10 M citizens).
    let mut table = Table::default();
    let mut put = Ok(());
    let seq = store.visit_all(RecordView::Verification, &mut |c| {
        if put.is_ok() {
            put = table.put(&c);
        }
    })?;
    put?;
    table.shrink();
    metrics::gauge!(PROJECTION_SEQ).set(seq as f64);
    tracing::info!(
        citizens = table.citizens(),
        mib = table.bytes() >> 20,
        seq,
        ms = started.elapsed().as_millis() as u64,
        "verification projection built"
    );
    Ok((table, seq))
}

#[cfg(test)]
mod tests;
