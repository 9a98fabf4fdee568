//! The embedded registry backend: one SQLite file in WAL mode.
//!
//! One writer connection behind a mutex (SQLite has one writer anyway) and a
//! pool of read-only connections, so look-ups run in parallel with each other
//! and with writes. Records are prost-encoded [`Citizen`]s keyed by the Pid's
//! integer value, SQLite's rowid: a look-up is one B-tree descent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};
use prost::Message;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    Change, Changes, Outbox, OutboxEvent, OutboxLag, OutboxRow, Plan, PopulationStore, Receipt,
    RequestKey, WriteScope, Written, schema,
};
use crate::error::{Error, Result};

/// The outbox's last `seq` (AUTOINCREMENT keeps it, even after a purge).
const LAST_SEQ: &str =
    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)";

/// The registry in an SQLite database file.
pub struct SqliteRegistry {
    path: PathBuf,
    /// The only connection that writes; SQLite serializes writers anyway.
    writer: Mutex<Connection>,
    /// Idle read-only connections; a look-up takes one and puts it back.
    readers: Mutex<Vec<Connection>>,
}

impl SqliteRegistry {
    /// The synthetic population the registry was seeded with, as
    /// (seed, citizens); `None` before seeding.
    pub fn seeded_with(&self) -> Result<Option<(u64, u64)>> {
        let conn = self.writer.lock().expect("registry writer");
        let value = |key: &str| -> Result<Option<u64>> {
            let text: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
            Ok(text.and_then(|t| t.parse().ok()))
        };
        Ok(value("seed")?.zip(value("citizens")?))
    }

    /// Opens (creating if needed) the registry at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        crate::private::touch(&path).map_err(Error::io(&path))?;
        let mut writer = Connection::open(&path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )?;
        schema::migrate(&mut writer)?;
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn reader(&self) -> Result<Connection> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Reads go straight to the mapped file instead of copying pages into
        // a private cache.
        conn.execute_batch(
            "PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16384; PRAGMA mmap_size = 17179869184;",
        )?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < 64 {
            idle.push(conn);
        }
    }

    /// Runs `f` with a read-only connection from the pool.
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader()?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs `f` with the writer connection.
    pub(crate) fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}

fn decode(blob: &[u8], pid: Pid, view: RecordView) -> Result<Citizen> {
    let citizen = Citizen::decode_view(blob, view).map_err(|_| Error::Corrupt)?;
    if citizen.pid != pid.as_u64() {
        return Err(Error::Corrupt);
    }
    Ok(citizen)
}

impl PopulationStore for SqliteRegistry {
    fn visit_many(
        &self,
        pids: &[Pid],
        view: RecordView,
        visit: &mut dyn FnMut(usize, Option<Citizen>),
    ) -> Result<()> {
        let conn = self.reader()?;
        let result = (|| {
            // One read transaction for the whole batch: one snapshot, and the
            // WAL lock is taken once instead of once per row. A single
            // look-up needs none (and saves the two statements).
            let snapshot = pids.len() > 1;
            if snapshot {
                conn.prepare_cached("BEGIN")?.execute([])?;
            }
            let looked_up = (|| {
                let mut stmt = conn.prepare_cached("SELECT record FROM citizen WHERE pid = ?1")?;
                // Visiting keys in order walks the B-tree's pages in order.
                let mut order: Vec<usize> = (0..pids.len()).collect();
                order.sort_unstable_by_key(|&i| pids[i]);
                for i in order {
                    let pid = pids[i];
                    let found = stmt
                        .query_row([pid.as_u64() as i64], |r| {
                            let blob = r.get_ref(0)?.as_blob()?;
                            Ok(decode(blob, pid, view))
                        })
                        .optional()?;
                    visit(i, found.transpose()?);
                }
                Ok(())
            })();
            if snapshot {
                // A read transaction commits nothing; ending it releases the snapshot.
                conn.prepare_cached("COMMIT")?.execute([])?;
            }
            looked_up
        })();
        // A connection that failed mid-way may still hold a transaction:
        // it is dropped rather than pooled.
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    fn count(&self) -> Result<u64> {
        let conn = self.reader()?;
        let n: Result<i64> = conn
            .query_row("SELECT count(*) FROM citizen", [], |r| r.get(0))
            .map_err(Into::into);
        self.give_back(conn);
        Ok(n? as u64)
    }

    fn visit_all(&self, view: RecordView, visit: &mut dyn FnMut(Citizen)) -> Result<u64> {
        let conn = self.reader()?;
        let result = (|| {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let scanned = (|| {
                let seq: i64 = conn.query_row(LAST_SEQ, [], |r| r.get(0))?;
                let mut stmt = conn.prepare("SELECT pid, record FROM citizen ORDER BY pid")?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let pid =
                        Pid::from_u64(row.get::<_, i64>(0)? as u64).map_err(|_| Error::Corrupt)?;
                    let blob = row.get_ref(1)?.as_blob().map_err(|_| Error::Corrupt)?;
                    visit(decode(blob, pid, view)?);
                }
                Ok(seq as u64)
            })();
            conn.prepare_cached("COMMIT")?.execute([])?;
            scanned
        })();
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Changes> {
        let conn = self.reader()?;
        let changes = (|| {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let read = (|| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, pid, changed FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut rows = stmt.query(params![after as i64, limit as i64])?;
                let mut writes = Vec::new();
                while let Some(row) = rows.next()? {
                    let pid = row.get::<_, i64>(1)?;
                    let changed = row.get_ref(2)?.as_blob_or_null();
                    let pids = match changed.map_err(|_| Error::Corrupt)? {
                        None => vec![Pid::from_u64(pid as u64).map_err(|_| Error::Corrupt)?],
                        Some(blob) => changed_pids(blob)?,
                    };
                    writes.push(Change {
                        seq: row.get::<_, i64>(0)? as u64,
                        pids,
                    });
                }
                let last: i64 = conn.prepare_cached(LAST_SEQ)?.query_row([], |r| r.get(0))?;
                Ok(Changes {
                    writes,
                    last_seq: last as u64,
                })
            })();
            conn.prepare_cached("COMMIT")?.execute([])?;
            read
        })();
        if changes.is_ok() {
            self.give_back(conn);
        }
        changes
    }

    fn is_empty(&self) -> Result<bool> {
        let conn = self.reader()?;
        let any: Result<bool> = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM citizen)", [], |r| r.get(0))
            .map_err(Into::into);
        self.give_back(conn);
        Ok(!any?)
    }

    fn write(&self, key: &RequestKey<'_>, plan: &mut Plan<'_>) -> Result<Written> {
        self.with_writer(|conn| {
            // IMMEDIATE: the write lock is taken before the first read, so
            // what `plan` reads cannot change before the commit.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(receipt) = seen(&tx, key)? {
                return Ok(Written::Replayed(receipt));
            }
            let planned = plan(&mut Scope { tx: &tx })?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO citizen (pid, record) VALUES (?1, ?2)
                     ON CONFLICT (pid) DO UPDATE SET record = excluded.record",
                )?;
                for citizen in &planned.records {
                    put.execute(params![citizen.pid as i64, citizen.encode_to_vec()])?;
                }
            }
            let event = &planned.event;
            tx.prepare_cached(
                "INSERT INTO outbox (id, type, pid, occurred_at, data, changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.id,
                event.kind,
                event.pid.as_u64() as i64,
                event.occurred_at,
                event.data,
                changed(event.pid, &planned.records),
            ])?;
            let receipt = Receipt {
                request_id: key.request_id.to_owned(),
                pid: event.pid,
                event_id: event.id.clone(),
                seq: tx.last_insert_rowid() as u64,
                recorded_at: event.occurred_at.clone(),
                node: key.node.to_owned(),
            };
            tx.prepare_cached(
                "INSERT INTO request (agency, request_id, operation, fingerprint, pid, event_id, seq, recorded_at, node)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                key.agency,
                key.request_id,
                key.operation,
                &key.fingerprint[..],
                receipt.pid.as_u64() as i64,
                receipt.event_id,
                receipt.seq as i64,
                receipt.recorded_at,
                receipt.node
            ])?;
            tx.commit()?;
            Ok(Written::Committed(receipt))
        })
    }
}

/// The outbox's `changed` column for a write of `records` whose event is
/// about `pid`: NULL when that is the one record stored.
pub(super) fn changed(pid: Pid, records: &[Citizen]) -> Option<Vec<u8>> {
    match records {
        [one] if one.pid == pid.as_u64() => None,
        _ => Some(records.iter().flat_map(|c| c.pid.to_le_bytes()).collect()),
    }
}

/// The Pids of an outbox `changed` column.
pub(super) fn changed_pids(blob: &[u8]) -> Result<Vec<Pid>> {
    if !blob.len().is_multiple_of(8) {
        return Err(Error::Corrupt);
    }
    blob.chunks_exact(8)
        .map(|b| {
            let raw = u64::from_le_bytes(b.try_into().map_err(|_| Error::Corrupt)?);
            Pid::from_u64(raw).map_err(|_| Error::Corrupt)
        })
        .collect()
}

/// The receipt of `key` if it was written before; a different request under
/// the same key is refused.
fn seen(tx: &Transaction<'_>, key: &RequestKey<'_>) -> Result<Option<Receipt>> {
    let row = tx
        .prepare_cached(
            "SELECT operation, fingerprint, pid, event_id, seq, recorded_at, node
             FROM request WHERE agency = ?1 AND request_id = ?2",
        )?
        .query_row(params![key.agency, key.request_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .optional()?;
    let Some((operation, fingerprint, pid, event_id, seq, recorded_at, node)) = row else {
        return Ok(None);
    };
    if operation != key.operation || fingerprint != key.fingerprint {
        return Err(Error::RequestIdReused {
            request_id: key.request_id.to_owned(),
        });
    }
    Ok(Some(Receipt {
        request_id: key.request_id.to_owned(),
        pid: Pid::from_u64(pid as u64).map_err(|_| Error::Corrupt)?,
        event_id,
        seq: seq as u64,
        recorded_at,
        node,
    }))
}

/// The register as a write's plan sees it: through the writer's transaction.
struct Scope<'t> {
    tx: &'t Transaction<'t>,
}

impl WriteScope for Scope<'_> {
    fn get(&mut self, pid: Pid) -> Result<Option<Citizen>> {
        let found = self
            .tx
            .prepare_cached("SELECT record FROM citizen WHERE pid = ?1")?
            .query_row([pid.as_u64() as i64], |r| {
                let blob = r.get_ref(0)?.as_blob()?;
                Ok(decode(blob, pid, RecordView::Full))
            })
            .optional()?;
        found.transpose()
    }

    fn free_within(&mut self, lowest: Pid, highest: Pid) -> Result<Option<Pid>> {
        let (lo, hi) = (lowest.as_u64() as i64, highest.as_u64() as i64);
        let top: Option<i64> = self
            .tx
            .prepare_cached("SELECT max(pid) FROM citizen WHERE pid BETWEEN ?1 AND ?2")?
            .query_row([lo, hi], |r| r.get(0))?;
        let free = match top {
            None => Some(lo),
            Some(top) if top < hi => Some(top + 1),
            // The top serial is taken: the first gap from the bottom (one
            // index walk over the bucket; rare, and only for births).
            Some(_) => self
                .tx
                .prepare_cached(
                    "SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM citizen WHERE pid = ?1)
                     UNION ALL
                     SELECT * FROM (SELECT c.pid + 1 FROM citizen c
                      WHERE c.pid BETWEEN ?1 AND ?2 - 1
                        AND NOT EXISTS (SELECT 1 FROM citizen n WHERE n.pid = c.pid + 1)
                      ORDER BY c.pid LIMIT 1)
                     LIMIT 1",
                )?
                .query_row([lo, hi], |r| r.get(0))
                .optional()?,
        };
        free.map(|p: i64| Pid::from_u64(p as u64).map_err(|_| Error::Corrupt))
            .transpose()
    }
}

impl Outbox for SqliteRegistry {
    fn unpublished(&self, after: u64, limit: usize) -> Result<Vec<OutboxRow>> {
        let conn = self.reader()?;
        let rows = (|| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, type, pid, occurred_at, data FROM outbox
                 WHERE published_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (seq, id, kind, pid, occurred_at, data) = row?;
                Ok(OutboxRow {
                    seq: seq as u64,
                    event: OutboxEvent {
                        id,
                        kind,
                        pid: Pid::from_u64(pid as u64).map_err(|_| Error::Corrupt)?,
                        occurred_at,
                        data,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()
        })();
        if rows.is_ok() {
            self.give_back(conn);
        }
        rows
    }

    fn mark_published(&self, from: u64, through: u64, at: &str) -> Result<()> {
        self.with_writer(|conn| {
            conn.prepare_cached(
                "UPDATE outbox SET published_at = ?1
                 WHERE seq BETWEEN ?2 AND ?3 AND published_at IS NULL",
            )?
            .execute(params![at, from as i64, through as i64])?;
            Ok(())
        })
    }

    fn lag(&self) -> Result<OutboxLag> {
        let conn = self.reader()?;
        let lag = (|| {
            conn.execute_batch("BEGIN")?;
            let (waiting, oldest): (i64, Option<String>) = conn.query_row(
                "SELECT count(*), (SELECT occurred_at FROM outbox
                                   WHERE published_at IS NULL ORDER BY seq LIMIT 1)
                 FROM outbox WHERE published_at IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let last: i64 = conn.query_row(LAST_SEQ, [], |r| r.get(0))?;
            conn.execute_batch("COMMIT")?;
            Ok(OutboxLag {
                waiting: waiting as u64,
                oldest_waiting: oldest,
                last_seq: last as u64,
            })
        })();
        if lag.is_ok() {
            self.give_back(conn);
        }
        lag
    }

    fn purge_published(&self, before: &str) -> Result<u64> {
        self.with_writer(|conn| {
            let n = conn.execute(
                "DELETE FROM outbox WHERE published_at IS NOT NULL AND occurred_at < ?1",
                [before],
            )?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests;
