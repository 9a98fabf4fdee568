//! The citizen index: which audit records concern which citizen, and
//! where each record is, so that `ListAccesses` finds a citizen's accesses
//! without reading the whole log.
//!
//! It is derived data, kept in its own file beside the segments and brought
//! up to date by its own thread, off the request path: a request waits for
//! its record to be durable in the log, never for the index. The thread
//! follows the durable end the writer publishes; its random inserts are
//! made in large sorted batches, where a page touched by many entries is
//! written once.
//!
//! ```text
//! audit/index.db
//!   audit_pid(run, pid, seq, pos)
//!       PRIMARY KEY (run, pid, seq)   for every Pid a record names;
//!       pos = segment << 40 | offset of its frame
//!   audit_run(run, level, first_seq, last_seq, state, …)   see `levels`
//!   indexed(through, pos)      every record up to `through` is in audit_pid,
//!                              and no later one; the next frame starts at `pos`
//! ```
//!
//! The run keeps the cost of indexing flat as the log grows: Pids are
//! random, so a batch lands on pages all over its part of the tree, and
//! keyed by Pid alone that part is the whole index (each batch rewrote most
//! of its leaves). Keyed by run first, a batch only touches the pages of
//! the open run (the last [`levels::RUN_RECORDS`] records). Runs are merged in
//! levels off the request path ([`super::levels`]), so a citizen's
//! accesses are one seek a live run — a few dozen at most, however long
//! the log — newest first.
//!
//! Readers take the index up to `through` and scan the log from `pos` (at
//! most a few seconds of records), in one snapshot of the index: nothing is
//! missed while the index catches up. A missing or stale index is rebuilt
//! from the log, and `audit verify` checks that the index holds exactly
//! what the log implies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::levels::{self, OpenRun};
use super::segment::{self, Cursor, Position, Step};
use crate::error::{Error, Result};

/// How often the index catches up with the log.
pub const INDEX_EVERY: Duration = Duration::from_millis(500);

/// Most records indexed in one transaction.
const CHUNK: usize = 100_000;

/// Rows inserted by one statement (4 parameters each, within SQLite's
/// limit of 32,766).
const ROWS_PER_INSERT: usize = 256;

/// The schema's version; an index of another version is rebuilt.
const VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_pid (
    run INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (run, pid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexed (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL,
    pos     INTEGER NOT NULL
);
INSERT OR IGNORE INTO indexed (id, through, pos) VALUES (1, 0, 1099511627776);
PRAGMA user_version = 3;
";

/// The index file of the log in the directory `log`.
pub fn index_path(log: &Path) -> PathBuf {
    log.join("index.db")
}

/// The Pids a record's `pids` column names, each once.
pub(crate) fn pids_of(pids: &str) -> Vec<i64> {
    let mut out: Vec<i64> = pids.split(' ').filter_map(|p| p.parse().ok()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Brings the index up to date with the log.
pub(crate) struct Indexer {
    /// Owns the index file.
    index: Connection,
    /// Where the writer's durable frames end ([`Position::pack`]).
    durable: Arc<AtomicU64>,
    /// Reads the log; kept, with what it read into, from step to step.
    cursor: Cursor,
    /// The records of a step, `(seq, pids, pos)` (kept likewise).
    records: Vec<(u64, Vec<i64>, i64)>,
    /// The rows of a step, `(run, pid, seq, pos)` (kept likewise).
    rows: Vec<(i64, i64, i64, i64)>,
}

impl Indexer {
    /// Opens (creating if needed) the index of the log in `dir`, whose last
    /// record is `head` and whose durable frames end at `durable`. An index
    /// ahead of the log (the log was replaced, or its torn end set aside)
    /// is emptied, to be rebuilt.
    pub(crate) fn open(dir: &Path, durable: Arc<AtomicU64>, head: u64) -> Result<Self> {
        let path = index_path(dir);
        crate::private::touch(&path).map_err(Error::io(&path))?;
        let index = Connection::open(&path)?;
        index.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;",
        )?;
        let version: i64 = index.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != 0 && version != VERSION {
            // Derived data: an index of an earlier build is made again.
            tracing::warn!("the audit index is of an earlier build; rebuilding it");
            index.execute_batch(
                "DROP TABLE IF EXISTS audit_pid; DROP TABLE IF EXISTS indexed;
                 DROP TABLE IF EXISTS audit_run;",
            )?;
        }
        index.execute_batch(SCHEMA)?;
        index.execute_batch(levels::SCHEMA)?;
        let indexer = Self {
            index,
            durable,
            cursor: Cursor::new(dir, Position::START, None, 1 << 20),
            records: Vec::new(),
            rows: Vec::new(),
        };
        let (through, pos) = indexer.through()?;
        if through > head || pos.pack() > indexer.durable.load(Ordering::Acquire) {
            tracing::warn!("the audit index is ahead of the log; rebuilding it");
            indexer.index.execute(
                "UPDATE indexed SET through = 0, pos = ?1",
                params![Position::START.pack() as i64],
            )?;
            indexer
                .index
                .execute_batch("DELETE FROM audit_pid; DELETE FROM audit_run;")?;
        }
        Ok(indexer)
    }

    /// The last record indexed, and where the next frame starts.
    fn through(&self) -> Result<(u64, Position)> {
        indexed(&self.index)
    }

    /// Indexes up to [`CHUNK`] durable records past the last one indexed,
    /// in one transaction; how many it indexed.
    pub(crate) fn step(&mut self) -> Result<usize> {
        let (mut last, from) = self.through()?;
        let durable = Position::unpack(self.durable.load(Ordering::Acquire));
        let cursor = &mut self.cursor;
        cursor.restart(from, Some(durable));
        let found = &mut self.records;
        found.clear();
        // Only each record's number and Pids are read.
        let read = |body: &[u8]| {
            segment::record_pids(body).map(|r| r.map(|(seq, pids)| (seq, pids_of(pids))))
        };
        let mut records = 0;
        while records < CHUNK {
            match cursor.step_as(read)? {
                Step::Frame(at, Some((seq, pids))) => {
                    found.push((seq, pids, at.pack() as i64));
                    last = seq;
                    records += 1;
                }
                Step::Frame(_, None) => {}
                Step::Bad { at, .. } => {
                    return Err(Error::Audit(format!(
                        "a durable frame of the audit log does not read (segment {}, byte {})",
                        at.segment, at.offset
                    )));
                }
                Step::End(_) => break,
            }
        }
        let next = cursor.position();
        if next == from {
            return Ok(0);
        }
        let tx = self
            .index
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            // Each record into the open run, a new one opened when it is
            // full.
            let mut open = OpenRun::read(&tx)?;
            let entries = &mut self.rows;
            entries.clear();
            for (seq, pids, pos) in found.iter() {
                let run = open.run_of(&tx, *seq)?;
                entries.extend(pids.iter().map(|&pid| (run, pid, *seq as i64, *pos)));
            }
            open.reached(&tx, last)?;
            // Sorted, so that each page of the B-tree is visited once.
            entries.sort_unstable();
            // Many rows a statement: the per-statement work is most of an
            // insert's cost when each lands on a page already at hand.
            let insert = |n: usize| {
                let values = vec!["(?, ?, ?, ?)"; n].join(", ");
                format!("INSERT OR IGNORE INTO audit_pid (run, pid, seq, pos) VALUES {values}")
            };
            let full = insert(ROWS_PER_INSERT);
            for chunk in entries.chunks(ROWS_PER_INSERT) {
                let values = chunk
                    .iter()
                    .flat_map(|(run, pid, seq, pos)| [run, pid, seq, pos]);
                let last_chunk;
                let sql = if chunk.len() == ROWS_PER_INSERT {
                    &full
                } else {
                    last_chunk = insert(chunk.len());
                    &last_chunk
                };
                tx.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(values))?;
            }
            tx.execute(
                "UPDATE indexed SET through = ?1, pos = ?2 WHERE id = 1",
                params![last as i64, next.pack() as i64],
            )?;
        }
        tx.commit()?;
        Ok(records)
    }

    /// Catches up every [`INDEX_EVERY`] until `stop` is dropped, then once
    /// more; between catch-ups, while the index is current, merges runs a
    /// step at a time ([`levels::compact_step`]).
    pub(crate) fn run(mut self, stop: mpsc::Receiver<()>) {
        let mut compacting = true;
        loop {
            let wait = if compacting {
                Duration::ZERO
            } else {
                INDEX_EVERY
            };
            let last = matches!(
                stop.recv_timeout(wait),
                Err(mpsc::RecvTimeoutError::Disconnected)
            );
            // A long catch-up (an index rebuilt from a large log) yields to a
            // stop between chunks; the next start goes on from `through`.
            let caught_up = loop {
                match self.step() {
                    Ok(n) if n < CHUNK => break Ok(true),
                    Ok(_)
                        if last
                            || matches!(stop.try_recv(), Err(mpsc::TryRecvError::Disconnected)) =>
                    {
                        break Ok(false);
                    }
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            match caught_up {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        "stopping with the audit index behind; it catches up on the next start"
                    );
                    return;
                }
                Err(e) => tracing::error!(error = %e, "the audit index could not catch up"),
            }
            if last {
                return;
            }
            compacting = match levels::compact_step(&mut self.index) {
                Ok(more) => more,
                Err(e) => {
                    tracing::error!(error = %e, "merging the audit index's runs failed; trying again later");
                    false
                }
            };
        }
    }
}

/// The index's `through` and `pos` on `conn` (the index's own connection,
/// or a reader's).
pub(crate) fn indexed(conn: &Connection) -> Result<(u64, Position)> {
    let row: Option<(i64, i64)> = conn
        .query_row("SELECT through, pos FROM indexed WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (through, pos) = row.unwrap_or((0, Position::START.pack() as i64));
    Ok((through as u64, Position::unpack(pos as u64)))
}

/// Opens the index of the log in `dir` for reading (the indexer may write
/// meanwhile).
pub(crate) fn open_reader(dir: &Path) -> Result<Connection> {
    let path = index_path(dir);
    if !path.exists() {
        return Err(Error::Audit("the audit index is missing".into()));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}
