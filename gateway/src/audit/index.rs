//! The citizen index: which audit records concern which citizen, so that
//! `ListAccesses` finds a citizen's accesses without reading the whole log.
//!
//! It is derived data, kept in its own file beside the log and brought up
//! to date by its own thread, off the request path: a request waits for its
//! record to be durable in the log, never for the index. Appending to the
//! log stays sequential; the index's random inserts are made in large sorted
//! batches, where a page touched by many entries is written once.
//!
//! ```text
//! audit-index.db
//!   audit_pid(pid, seq)   PRIMARY KEY (pid, seq)   for every Pid a record names
//!   indexed(through)      every record up to `through` is in audit_pid, and
//!                         no later one
//! ```
//!
//! The same thread also copies the log's WAL back into its file (a passive
//! checkpoint), which would otherwise stall a group commit now and then.
//!
//! Readers take the index up to `through` and scan the log past it (at most
//! a few seconds of records), in one snapshot: nothing is missed while the
//! index catches up. A missing or stale index is rebuilt from the log, and
//! `audit verify` checks that the index holds exactly what the log implies.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::store;
use crate::error::{Error, Result};

/// How often the index catches up with the log.
pub const INDEX_EVERY: Duration = Duration::from_millis(500);

/// Most records indexed in one transaction.
const CHUNK: usize = 100_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_pid (
    pid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (pid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexed (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
);
INSERT OR IGNORE INTO indexed (id, through) VALUES (1, 0);
PRAGMA user_version = 1;
";

/// The index file beside the log at `log`: `audit.db` → `audit-index.db`.
pub fn index_path(log: &Path) -> PathBuf {
    let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    log.with_file_name(format!("{stem}-index.db"))
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
    /// Reads the log (the writer appends meanwhile).
    log: Connection,
    /// Copies the log's WAL back into its file, so that the writer never
    /// stalls a group commit to do it.
    checkpointer: Connection,
    /// Owns the index file.
    index: Connection,
}

impl Indexer {
    /// Opens (creating if needed) the index of the log at `log_path`. An
    /// index ahead of the log (the log was replaced) is emptied, to be
    /// rebuilt.
    pub(crate) fn open(log_path: &Path) -> Result<Self> {
        let log = store::open_reader(log_path)?;
        let index = Connection::open(index_path(log_path))?;
        index.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;",
        )?;
        index.execute_batch(SCHEMA)?;
        let checkpointer = store::open_writer(log_path)?;
        let indexer = Self {
            log,
            checkpointer,
            index,
        };
        let head = store::head(&indexer.log)?.map_or(0, |(seq, _)| seq);
        if indexer.through()? > head {
            tracing::warn!("the audit index is ahead of the log; rebuilding it");
            indexer
                .index
                .execute_batch("DELETE FROM audit_pid; UPDATE indexed SET through = 0;")?;
        }
        Ok(indexer)
    }

    /// The last record indexed.
    fn through(&self) -> Result<u64> {
        Ok(self
            .index
            .query_row("SELECT through FROM indexed WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0) as u64)
    }

    /// Indexes up to [`CHUNK`] records past the last one indexed, in one
    /// transaction; how many it indexed.
    pub(crate) fn step(&mut self) -> Result<usize> {
        let through = self.through()?;
        let mut entries = Vec::new();
        let mut last = through;
        let mut stmt = self
            .log
            .prepare_cached("SELECT seq, pids FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = stmt.query(params![through as i64, CHUNK as i64])?;
        let mut records = 0;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let pids: String = row.get(1)?;
            entries.extend(pids_of(&pids).into_iter().map(|pid| (pid, seq)));
            last = seq as u64;
            records += 1;
        }
        drop(rows);
        if records == 0 {
            return Ok(0);
        }
        // Sorted, so that each page of the B-tree is visited once.
        entries.sort_unstable();
        let tx = self
            .index
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert =
                tx.prepare_cached("INSERT OR IGNORE INTO audit_pid (pid, seq) VALUES (?1, ?2)")?;
            for (pid, seq) in &entries {
                insert.execute(params![pid, seq])?;
            }
            tx.execute(
                "UPDATE indexed SET through = ?1 WHERE id = 1",
                params![last as i64],
            )?;
        }
        tx.commit()?;
        Ok(records)
    }

    /// Catches up (and checkpoints the log's WAL) every [`INDEX_EVERY`]
    /// until `stop` is dropped, then once more.
    pub(crate) fn run(mut self, stop: mpsc::Receiver<()>) {
        loop {
            let last = matches!(
                stop.recv_timeout(INDEX_EVERY),
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
            if let Err(e) = store::checkpoint(&self.checkpointer) {
                tracing::warn!(error = %e, "the audit log's WAL checkpoint failed");
            }
            if last {
                return;
            }
        }
    }
}

/// Opens the log at `log_path` for reading, with its index attached as
/// `idx` (read-only too: an attached file takes the connection's flags),
/// for queries that span the two in one snapshot.
pub(crate) fn open_reader(log_path: &Path) -> Result<Connection> {
    let conn = store::open_reader(log_path)?;
    let index = index_path(log_path);
    if !index.exists() {
        return Err(Error::Audit("the audit index is missing".into()));
    }
    let index = index
        .to_str()
        .ok_or_else(|| Error::Audit("the audit index's path is not UTF-8".into()))?;
    conn.execute("ATTACH DATABASE ?1 AS idx", params![index])?;
    Ok(conn)
}
