//! The audit log's file: its own SQLite database beside the registry, so
//! that appending never waits for a registry write and the other way round.
//!
//! ```text
//! audit(seq INTEGER PRIMARY KEY, time, agency, operation, purpose, pids,
//!       fields, decision, outcome, request_id, request_hash, response_hash,
//!       hidden_until, prev_hash, hash, trace_id)                  append-only, chained
//! checkpoint(seq PK, hash, time, signature)   signed (seq, hash, time)
//! ```
//!
//! Commits are durable (`synchronous = FULL`): a record the writer has
//! acknowledged survives a crash or a power cut. Which records concern which
//! citizen is kept apart, in the index ([`super::index`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use lienthong_proto::Pid;

use super::record::{AuditEntry, AuditRecord, Decision, Hash};
use crate::error::{Error, Result};

/// The schema; `user_version` 1.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq           INTEGER PRIMARY KEY,
    time          TEXT NOT NULL,
    agency        TEXT NOT NULL,
    operation     TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    pids          TEXT NOT NULL,
    fields        TEXT NOT NULL,
    decision      TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    response_hash BLOB NOT NULL,
    hidden_until  TEXT,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL,
    trace_id      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL,
    time      TEXT NOT NULL,
    signature BLOB NOT NULL
);
PRAGMA user_version = 1;
";

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub hash: Hash,
    /// When it was signed.
    pub time: String,
    /// Ed25519 over `record::checkpoint_message`.
    pub signature: Vec<u8>,
}

/// Opens the log for appending, creating it if needed. The writer never
/// copies the WAL back into the file itself (that would stall a group
/// commit): [`checkpoint`] does, from another thread.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > 1 {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: 1,
        });
    }
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Copies what the WAL holds back into the file, without blocking the
/// writer (a passive checkpoint), on a connection of its own (`conn`, opened
/// with [`open_writer`]).
pub(crate) fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// Opens the log to read it (the writer may be appending meanwhile).
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no audit log here"),
        });
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

/// The last record's number and hash, if any.
pub(crate) fn head(conn: &Connection) -> Result<Option<(u64, Hash)>> {
    conn.query_row(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, hash_col(r, 1)?)),
    )
    .optional()
    .map_err(Into::into)
}

/// Appends `record` (inside the caller's transaction).
pub(crate) fn insert(conn: &Connection, r: &AuditRecord) -> Result<()> {
    let e = &r.entry;
    conn.prepare_cached(
        "INSERT INTO audit (seq, time, agency, operation, purpose, pids, fields, decision,
                            outcome, request_id, request_hash, response_hash, hidden_until,
                            prev_hash, hash, trace_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        r.seq as i64,
        r.time,
        e.agency,
        e.operation,
        e.purpose,
        e.pids,
        e.fields,
        e.decision.as_str(),
        e.outcome,
        e.request_id,
        &e.request_hash[..],
        &e.response_hash[..],
        e.hidden_until,
        &r.prev_hash[..],
        &r.hash[..],
        e.trace_id,
    ])?;
    Ok(())
}

/// Stores a signed checkpoint (inside the caller's transaction).
pub(crate) fn insert_checkpoint(conn: &Connection, c: &Checkpoint) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO checkpoint (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![c.seq as i64, &c.hash[..], c.time, c.signature])?;
    Ok(())
}

/// Every checkpoint, oldest first.
pub(crate) fn checkpoints(conn: &Connection) -> Result<Vec<Checkpoint>> {
    let mut stmt =
        conn.prepare("SELECT seq, hash, time, signature FROM checkpoint ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok(Checkpoint {
            seq: r.get::<_, i64>(0)? as u64,
            hash: hash_col(r, 1)?,
            time: r.get(2)?,
            signature: r.get(3)?,
        })
    })?;
    rows.collect::<Result<_, _>>().map_err(Into::into)
}

/// Calls `visit` with every record in stored order (by `seq`) until it
/// returns false; a row that does not read as a record comes as `Err` with
/// its position.
pub(crate) fn each_record(
    conn: &Connection,
    mut visit: impl FnMut(Result<AuditRecord, Unreadable>) -> bool,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT seq, time, agency, operation, purpose, pids, fields, decision, outcome,
                request_id, request_hash, response_hash, hidden_until, prev_hash, hash,
                trace_id
         FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let read = record(row).map_err(|_| Unreadable {
            seq: row.get::<_, i64>(0).ok(),
        });
        if !visit(read) {
            break;
        }
    }
    Ok(())
}

/// A stored row that is not a well-formed record (a column edited to
/// another type or an unknown decision).
#[derive(Debug, Clone, Copy)]
pub struct Unreadable {
    /// Its `seq`, if that at least reads.
    pub seq: Option<i64>,
}

/// One stored access to a citizen's data, as `ListAccesses` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccess {
    /// The audit record's number.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Who.
    pub agency: String,
    /// What.
    pub operation: String,
    /// Why.
    pub purpose: String,
    /// The fields asked for, comma-separated.
    pub fields: String,
    /// Granted or refused.
    pub decision: Decision,
    /// `OK` or the reason.
    pub outcome: String,
}

/// Up to `limit` accesses to `pid` before record `before`, newest first,
/// leaving out records hidden at `now` and the citizen's own acts through
/// the identity provider (granted operations in `own_acts`; a refused one
/// is someone trying, and is shown). `conn` is an [`super::index::open_reader`]
/// connection: records up to the index's `through` are found through it,
/// later ones by scanning the log's tail, in one snapshot.
pub(crate) fn accesses(
    conn: &Connection,
    pid: Pid,
    before: u64,
    limit: usize,
    own_acts: &[&str],
    now: &str,
) -> Result<Vec<StoredAccess>> {
    let mut stmt = conn.prepare_cached(
        "WITH bound(t) AS (SELECT coalesce((SELECT through FROM idx.indexed WHERE id = 1), 0))
         SELECT a.seq, a.time, a.agency, a.operation, a.purpose, a.fields, a.decision, a.outcome
         FROM audit a
         WHERE a.seq IN (
                 SELECT p.seq FROM idx.audit_pid p
                 WHERE p.pid = ?1 AND p.seq < ?2 AND p.seq <= (SELECT t FROM bound)
                 UNION ALL
                 SELECT s.seq FROM audit s
                 WHERE s.seq > (SELECT t FROM bound) AND s.seq < ?2
                   AND instr(' ' || s.pids || ' ', ?3) > 0)
           AND (a.hidden_until IS NULL OR a.hidden_until <= ?4)
           AND NOT (a.decision = 'granted'
                    AND a.operation IN (SELECT value FROM json_each(?5)))
         ORDER BY a.seq DESC LIMIT ?6",
    )?;
    let own_acts = serde_json::to_string(own_acts).map_err(|_| Error::Task)?;
    let rows = stmt.query_map(
        params![
            pid.as_u64() as i64,
            before.min(i64::MAX as u64) as i64,
            format!(" {pid} "),
            now,
            own_acts,
            limit as i64
        ],
        |r| {
            let decision: String = r.get(6)?;
            Ok(StoredAccess {
                seq: r.get::<_, i64>(0)? as u64,
                time: r.get(1)?,
                agency: r.get(2)?,
                operation: r.get(3)?,
                purpose: r.get(4)?,
                fields: r.get(5)?,
                decision: Decision::parse(&decision).unwrap_or(Decision::Refused),
                outcome: r.get(7)?,
            })
        },
    )?;
    rows.collect::<Result<_, _>>().map_err(Into::into)
}

fn record(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let decision: String = r.get(7)?;
    Ok(AuditRecord {
        seq: r.get::<_, i64>(0)? as u64,
        time: r.get(1)?,
        entry: AuditEntry {
            agency: r.get(2)?,
            operation: r.get(3)?,
            purpose: r.get(4)?,
            pids: r.get(5)?,
            fields: r.get(6)?,
            decision: Decision::parse(&decision).ok_or(rusqlite::Error::InvalidQuery)?,
            outcome: r.get(8)?,
            request_id: r.get(9)?,
            trace_id: r.get(15)?,
            request_hash: hash_col(r, 10)?,
            response_hash: hash_col(r, 11)?,
            hidden_until: r.get(12)?,
        },
        prev_hash: hash_col(r, 13)?,
        hash: hash_col(r, 14)?,
    })
}

/// A 32-byte column; another length reads as zeros, which never matches.
fn hash_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Hash> {
    let bytes: Vec<u8> = r.get(i)?;
    Ok(bytes.try_into().unwrap_or([0; 32]))
}
