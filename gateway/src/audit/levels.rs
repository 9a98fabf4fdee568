//! The citizen index's runs, merged in levels as an LSM tree merges its
//! tables, so that a citizen's page costs a few seeks however long the log.
//!
//! ```text
//! audit_pid(run, pid, seq, pos)   PRIMARY KEY (run, pid, seq)
//! audit_run(run, level, first_seq, last_seq, state, merged_into,
//!           resume_pid, resume_seq)
//!
//!  oldest ───────────────────────────────────────────────▶ newest
//!  [ level 2 ][ level 1 ][ level 1 ][ 0 ][ 0 ][ 0 ][ 0, open ]
//!
//! level 0: the records indexed as they come, RUN_RECORDS to a run
//! level L+1: FANOUT runs of level L merged, in steps of MERGE_STEP rows
//! ```
//!
//! The indexer writes into the open level-0 run; each run is keyed by run
//! first, so a batch of random Pids only touches the pages of the newest
//! run (flat indexing cost, as the bucket was). A citizen's accesses are
//! one seek a live run, newest first; with [`FANOUT`] runs to a level,
//! at most `FANOUT - 1` runs a level are live once merges have caught up:
//! about 10 seeks at 10^7 records, 21 at 10^9 and 49 at 10^11, where a
//! bucket a [`RUN_RECORDS`] was 38, 3,815 and 381,470.
//!
//! A merge runs off the request path, in the indexer's idle time, in
//! short transactions: the target run fills in (pid, seq) order while its
//! sources stay live for readers (`state = 'merging'` is read by no one);
//! the switch (target live, sources retired) is one transaction, so a
//! reader sees either the sources or the target; retired rows are then
//! deleted in steps. Each step is resumable after a crash from what
//! `audit_run` records. Every row is rewritten once a level: about
//! log₈(records / RUN_RECORDS) times in all.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::Result;

/// Records to a level-0 run (a few in unit tests, so that they span many).
pub(crate) const RUN_RECORDS: u64 = if cfg!(test) { 64 } else { 1 << 18 };

/// Runs of one level merged into one of the next.
pub(crate) const FANOUT: i64 = 8;

/// Most rows one merge or delete step moves (a few in unit tests, so that
/// merges take many steps).
const MERGE_STEP: i64 = if cfg!(test) { 50 } else { 100_000 };

/// The runs' table (with the index's schema, version 3).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_run (
    run         INTEGER PRIMARY KEY,
    level       INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('live', 'merging', 'retired')),
    merged_into INTEGER,
    resume_pid  INTEGER,
    resume_seq  INTEGER
);
";

/// The live runs that may hold records up to `newest`, newest first: what
/// a reader walks.
pub(crate) fn live_runs(conn: &Connection, newest: u64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run FROM audit_run WHERE state = 'live' AND first_seq <= ?1
         ORDER BY first_seq DESC",
    )?;
    let runs = stmt
        .query_map([newest.min(i64::MAX as u64) as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(runs)
}

/// Which run the indexer writes record `seq` into, opening a new level-0
/// run when the open one is full; within the indexer's transaction.
pub(crate) struct OpenRun {
    /// The open run and its first record, if any.
    open: Option<(i64, u64)>,
    /// The next run's number.
    next: i64,
}

impl OpenRun {
    /// The open run as `conn` holds it.
    pub(crate) fn read(conn: &Connection) -> Result<Self> {
        let open = conn
            .query_row(
                "SELECT run, first_seq FROM audit_run WHERE level = 0 AND state = 'live'
                 ORDER BY first_seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()?;
        let next: i64 =
            conn.query_row("SELECT coalesce(max(run), 0) + 1 FROM audit_run", [], |r| {
                r.get(0)
            })?;
        Ok(Self { open, next })
    }

    /// The run of record `seq` (records come in `seq` order); a new run is
    /// inserted into `audit_run` when one opens.
    pub(crate) fn run_of(&mut self, conn: &Connection, seq: u64) -> Result<i64> {
        match self.open {
            Some((run, first)) if seq < first + RUN_RECORDS => Ok(run),
            _ => {
                let run = self.next;
                self.next += 1;
                conn.execute(
                    "INSERT INTO audit_run (run, level, first_seq, last_seq, state)
                     VALUES (?1, 0, ?2, ?2, 'live')",
                    params![run, seq as i64],
                )?;
                self.open = Some((run, seq));
                Ok(run)
            }
        }
    }

    /// Records that the open run now reaches record `last`.
    pub(crate) fn reached(&self, conn: &Connection, last: u64) -> Result<()> {
        if let Some((run, _)) = self.open {
            conn.execute(
                "UPDATE audit_run SET last_seq = ?2 WHERE run = ?1",
                params![run, last as i64],
            )?;
        }
        Ok(())
    }
}

/// Does one step of compaction, in its own transaction: a step of the
/// merge under way, else of deleting a retired run, else starts a merge if
/// a level holds [`FANOUT`] closed runs. Whether there is more to do.
pub(crate) fn compact_step(conn: &mut Connection) -> Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let merging: Option<i64> = tx
        .query_row(
            "SELECT run FROM audit_run WHERE state = 'merging'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let more = if let Some(target) = merging {
        merge_step(&tx, target)?;
        true
    } else if let Some(retired) = tx
        .query_row(
            "SELECT run FROM audit_run WHERE state = 'retired' LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
    {
        delete_step(&tx, retired)?;
        true
    } else {
        start_merge(&tx)?
    };
    tx.commit()?;
    Ok(more)
}

/// Starts merging the oldest [`FANOUT`] closed runs of the lowest level
/// that has that many; whether it did.
fn start_merge(tx: &Connection) -> Result<bool> {
    // The open level-0 run (the newest) is never merged.
    let open: Option<i64> = tx
        .query_row(
            "SELECT run FROM audit_run WHERE level = 0 AND state = 'live'
             ORDER BY first_seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let level: Option<i64> = tx
        .query_row(
            "SELECT level FROM audit_run WHERE state = 'live' AND run IS NOT ?1
             GROUP BY level HAVING count(*) >= ?2 ORDER BY level LIMIT 1",
            params![open, FANOUT],
            |r| r.get(0),
        )
        .optional()?;
    let Some(level) = level else {
        return Ok(false);
    };
    let sources: Vec<(i64, i64, i64)> = tx
        .prepare(
            "SELECT run, first_seq, last_seq FROM audit_run
             WHERE state = 'live' AND level = ?1 AND run IS NOT ?2
             ORDER BY first_seq LIMIT ?3",
        )?
        .query_map(params![level, open, FANOUT], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let target: i64 = tx.query_row("SELECT coalesce(max(run), 0) + 1 FROM audit_run", [], |r| {
        r.get(0)
    })?;
    let first = sources.iter().map(|s| s.1).min().unwrap_or(0);
    let last = sources.iter().map(|s| s.2).max().unwrap_or(0);
    tx.execute(
        "INSERT INTO audit_run (run, level, first_seq, last_seq, state)
         VALUES (?1, ?2, ?3, ?4, 'merging')",
        params![target, level + 1, first, last],
    )?;
    for (run, _, _) in &sources {
        tx.execute(
            "UPDATE audit_run SET merged_into = ?2 WHERE run = ?1",
            params![run, target],
        )?;
    }
    Ok(true)
}

/// Copies the next [`MERGE_STEP`] rows or so of the sources into `target`,
/// in (pid, seq) order; once all are copied, switches readers to it.
fn merge_step(tx: &Connection, target: i64) -> Result<()> {
    let sources: Vec<i64> = tx
        .prepare("SELECT run FROM audit_run WHERE merged_into = ?1")?
        .query_map([target], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let (pid, seq): (Option<i64>, Option<i64>) = tx.query_row(
        "SELECT resume_pid, resume_seq FROM audit_run WHERE run = ?1",
        [target],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let after = (pid.unwrap_or(i64::MIN), seq.unwrap_or(i64::MIN));
    let mut read = tx.prepare_cached(
        "SELECT pid, seq, pos FROM audit_pid WHERE run = ?1 AND (pid, seq) > (?2, ?3)
         ORDER BY pid, seq LIMIT ?4",
    )?;
    let per_source = (MERGE_STEP / sources.len().max(1) as i64).max(1);
    let mut rows: Vec<(i64, i64, i64)> = Vec::new();
    // Rows past the smallest last key of a source read in full may sort
    // after rows of that source not read yet: they wait for the next step.
    let mut bound: Option<(i64, i64)> = None;
    for run in &sources {
        let read_rows: Vec<(i64, i64, i64)> = read
            .query_map(params![run, after.0, after.1, per_source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if read_rows.len() as i64 == per_source
            && let Some(&(p, s, _)) = read_rows.last()
        {
            bound = Some(bound.map_or((p, s), |b| b.min((p, s))));
        }
        rows.extend(read_rows);
    }
    rows.sort_unstable();
    if let Some(bound) = bound {
        rows.retain(|&(p, s, _)| (p, s) <= bound);
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO audit_pid (run, pid, seq, pos) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (pid, seq, pos) in &rows {
        insert.execute(params![target, pid, seq, pos])?;
    }
    match (bound, rows.last()) {
        // More to copy.
        (Some(_), Some(&(pid, seq, _))) => {
            tx.execute(
                "UPDATE audit_run SET resume_pid = ?2, resume_seq = ?3 WHERE run = ?1",
                params![target, pid, seq],
            )?;
        }
        // All copied: readers switch to the target.
        _ => {
            tx.execute(
                "UPDATE audit_run SET state = 'live', resume_pid = NULL, resume_seq = NULL
                 WHERE run = ?1",
                [target],
            )?;
            tx.execute(
                "UPDATE audit_run SET state = 'retired', merged_into = NULL
                 WHERE merged_into = ?1",
                [target],
            )?;
        }
    }
    Ok(())
}

/// Deletes up to [`MERGE_STEP`] rows of the retired `run`; its entry once
/// none are left.
fn delete_step(tx: &Connection, run: i64) -> Result<()> {
    let cut: Option<(i64, i64)> = tx
        .query_row(
            "SELECT pid, seq FROM audit_pid WHERE run = ?1 ORDER BY pid, seq
             LIMIT 1 OFFSET ?2",
            params![run, MERGE_STEP],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match cut {
        Some((pid, seq)) => {
            tx.execute(
                "DELETE FROM audit_pid WHERE run = ?1 AND (pid, seq) < (?2, ?3)",
                params![run, pid, seq],
            )?;
        }
        None => {
            tx.execute("DELETE FROM audit_pid WHERE run = ?1", [run])?;
            tx.execute("DELETE FROM audit_run WHERE run = ?1", [run])?;
        }
    }
    Ok(())
}
