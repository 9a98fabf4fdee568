//! The adapter's own store: one SQLite file per sector holding every record
//! an event created or changed, and the id of every event applied.
//!
//! ```text
//! meta(key, value)                      sector, population seed, citizens
//! records(pid, query, answer, event_id) answer: the SectorAnswer, protobuf;
//!                                       wins over the derived base record
//! applied(event_id, seq, type, pid, changed, applied_at)
//!                                       one row per event: a duplicate is
//!                                       found here and changes nothing
//! counters(name, value)                 duplicates, dead_lettered
//! ```
//!
//! An event's changes and its `applied` row commit in one transaction
//! (WAL, `synchronous = FULL`) before the message is acknowledged.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lienthong_proto::Pid;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};

/// The population a store's records belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PopulationId {
    pub seed: u64,
    pub citizens: u64,
}

/// A sector's SQLite store.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// Totals kept by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub applied: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
}

/// What one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied now, changing this many records.
    Changed(usize),
    /// Applied before (same event id): nothing changed.
    Duplicate,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    pid INTEGER NOT NULL,
    query TEXT NOT NULL,
    answer BLOB NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (pid, query)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied (
    event_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    pid INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

fn open_connection(path: &Path) -> Result<Connection> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(path))?;
    let conn = Connection::open(path).map_err(Error::store(path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(Error::store(path))?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the store of `sector` at `path`. A store made for
    /// another sector or population is refused: its records would be
    /// applied to the wrong people.
    pub fn open(path: &Path, sector: &str, population: PopulationId) -> Result<Self> {
        let conn = open_connection(path)?;
        conn.execute_batch(SCHEMA).map_err(Error::store(path))?;
        let expected = [
            ("sector", sector.to_owned()),
            ("seed", population.seed.to_string()),
            ("citizens", population.citizens.to_string()),
        ];
        for (key, value) in expected {
            let found: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(Error::store(path))?;
            match found {
                None => {
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        [key, &value],
                    )
                    .map_err(Error::store(path))?;
                }
                Some(found) if found == value => {}
                Some(found) => {
                    return Err(Error::Usage(format!(
                        "{}: this store was made for {key} {found}, not {value}; \
                         use another data directory or start with the same settings",
                        path.display()
                    )));
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The stored answer to `query` for `pid`, protobuf-encoded.
    pub fn answer(&self, pid: Pid, query: &str) -> Result<Option<Vec<u8>>> {
        let conn = match self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(conn) => conn,
            None => open_connection(&self.path)?,
        };
        let found = conn
            .prepare_cached("SELECT answer FROM records WHERE pid = ?1 AND query = ?2")
            .and_then(|mut s| {
                s.query_row(params![pid.as_u64() as i64, query], |r| r.get(0))
                    .optional()
            })
            .map_err(Error::store(&self.path));
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        found
    }

    /// Applies one event in one transaction: if its id was applied before,
    /// counts a duplicate and changes nothing; otherwise `react` gets the
    /// stored answers of the event's subject (by query) and returns the
    /// answers to store. A reaction's error rolls everything back.
    pub fn apply<E>(
        &self,
        event_id: &str,
        seq: u64,
        kind: &str,
        pid: Pid,
        react: impl FnOnce(Vec<(String, Vec<u8>)>) -> Result<Vec<(&'static str, Vec<u8>)>, E>,
    ) -> Result<Result<Applied, E>> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Immediate: the write lock is taken first, so another writer makes
        // this wait (busy_timeout) rather than fail on the upgrade.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::store(&self.path))?;
        let seen: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM applied WHERE event_id = ?1)",
                [event_id],
                |r| r.get(0),
            )
            .map_err(Error::store(&self.path))?;
        if seen {
            bump(&tx, "duplicates").map_err(Error::store(&self.path))?;
            tx.commit().map_err(Error::store(&self.path))?;
            return Ok(Ok(Applied::Duplicate));
        }
        let key = pid.as_u64() as i64;
        let current = {
            let mut s = tx
                .prepare_cached("SELECT query, answer FROM records WHERE pid = ?1")
                .map_err(Error::store(&self.path))?;
            s.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                .map_err(Error::store(&self.path))?
        };
        let changes = match react(current) {
            Ok(changes) => changes,
            Err(e) => return Ok(Err(e)),
        };
        for (query, answer) in &changes {
            tx.execute(
                "INSERT INTO records (pid, query, answer, event_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pid, query) DO UPDATE SET answer = ?3, event_id = ?4",
                params![key, query, answer, event_id],
            )
            .map_err(Error::store(&self.path))?;
        }
        tx.execute(
            "INSERT INTO applied (event_id, seq, type, pid, changed) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![event_id, seq as i64, kind, key, changes.len() as i64],
        )
        .map_err(Error::store(&self.path))?;
        tx.commit().map_err(Error::store(&self.path))?;
        Ok(Ok(Applied::Changed(changes.len())))
    }

    /// The highest event seq applied (0 before any).
    pub fn highest_applied(&self) -> Result<u64> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM applied", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
        .map_err(Error::store(&self.path))
    }

    /// Counts a message sent to the dead-letter queue.
    pub fn count_dead_lettered(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        bump(&conn, "dead_lettered").map_err(Error::store(&self.path))
    }

    /// The totals.
    pub fn stats(&self) -> Result<Stats> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let read = || -> rusqlite::Result<Stats> {
            let counter = |name: &str| -> rusqlite::Result<u64> {
                conn.query_row(
                    "SELECT COALESCE((SELECT value FROM counters WHERE name = ?1), 0)",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as u64)
            };
            Ok(Stats {
                applied: conn
                    .query_row("SELECT COUNT(*) FROM applied", [], |r| r.get::<_, i64>(0))?
                    as u64,
                duplicates: counter("duplicates")?,
                dead_lettered: counter("dead_lettered")?,
            })
        };
        read().map_err(Error::store(&self.path))
    }
}

fn bump(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
        [name],
    )
    .map(drop)
}
