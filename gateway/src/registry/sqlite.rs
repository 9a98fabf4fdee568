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
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{OutboxEvent, PopulationStore, schema};
use crate::error::{Error, Result};

/// The registry in an SQLite database file.
pub struct SqliteRegistry {
    path: PathBuf,
    /// The only connection that writes; SQLite serializes writers anyway.
    writer: Mutex<Connection>,
    /// Idle read-only connections; a look-up takes one and puts it back.
    readers: Mutex<Vec<Connection>>,
}

impl SqliteRegistry {
    /// Opens (creating if needed) the registry at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
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

    fn is_empty(&self) -> Result<bool> {
        let conn = self.reader()?;
        let any: Result<bool> = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM citizen)", [], |r| r.get(0))
            .map_err(Into::into);
        self.give_back(conn);
        Ok(!any?)
    }

    fn commit_change(&self, citizen: &Citizen, event: &OutboxEvent) -> Result<u64> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO citizen (pid, record) VALUES (?1, ?2)
                 ON CONFLICT (pid) DO UPDATE SET record = excluded.record",
                params![citizen.pid as i64, citizen.encode_to_vec()],
            )?;
            tx.execute(
                "INSERT INTO outbox (id, type, pid, occurred_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    event.id,
                    event.kind,
                    event.pid.as_u64() as i64,
                    event.occurred_at,
                    event.data
                ],
            )?;
            let seq = tx.last_insert_rowid() as u64;
            tx.commit()?;
            Ok(seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_proto::population::Population;

    #[test]
    fn change_and_event_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteRegistry::open(dir.path().join("registry.db")).unwrap();
        let pop = Population::new(3, 10).unwrap();
        let mut citizen = pop.citizen(4);
        let pid = Pid::from_u64(citizen.pid).unwrap();
        assert_eq!(store.get(pid).unwrap(), None);
        citizen.status = 1;
        let event = OutboxEvent {
            id: "ev-1".into(),
            kind: "citizen.died".into(),
            pid,
            occurred_at: "2026-11-23T00:00:00Z".into(),
            data: "{}".into(),
        };
        assert_eq!(store.commit_change(&citizen, &event).unwrap(), 1);
        assert_eq!(store.get(pid).unwrap(), Some(citizen.clone()));
        // A second event with the same id violates the outbox's uniqueness:
        // the whole transaction, record included, rolls back.
        let mut again = citizen.clone();
        again.status = 0;
        assert!(store.commit_change(&again, &event).is_err());
        assert_eq!(store.get(pid).unwrap(), Some(citizen));
        let rows: i64 = store
            .with_writer(|c| Ok(c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn reopening_keeps_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let pop = Population::new(3, 100).unwrap();
        {
            let store = SqliteRegistry::open(&path).unwrap();
            crate::registry::seed(&store, &pop, None, |_| {}).unwrap();
        }
        let store = SqliteRegistry::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 100);
        let pids: Vec<Pid> = (0..100).map(|i| pop.pid(i)).collect();
        let got = store.get_many(&pids).unwrap();
        assert!(
            got.iter()
                .zip(0..)
                .all(|(c, i)| c.as_ref() == Some(&pop.citizen(i)))
        );
    }
}
