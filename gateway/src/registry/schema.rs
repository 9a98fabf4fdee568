//! The registry's versioned schema. Each migration runs once, in order, in a
//! transaction; `PRAGMA user_version` records how many have run.
//!
//! ```text
//! citizen(pid INTEGER PRIMARY KEY, record BLOB)   record = prost-encoded Citizen
//! outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, id, type, pid, occurred_at,
//!        data, published_at, changed)
//!                           seq never reused, even after a purge; changed:
//!                           the Pids of every record the write stored, 8 B
//!                           little-endian each (NULL: the event's pid alone)
//! meta(key TEXT PRIMARY KEY, value)               e.g. seed, citizens
//! request(agency, request_id, operation, fingerprint, pid, event_id, seq,
//!         recorded_at, node) one row per registry write: its receipt, by the
//!                           client's idempotency key; node: the replica
//! consent(id PK, pid, agency, purpose, fields, issued_at, expires_at,
//!         revoked_at)       consents citizens granted; revoked_at set once
//! quota_day(agency, day, leased)   PK (agency, day): how much of an
//!                           agency's quota day is leased out
//! ```

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Migrations in order; never edit one that has shipped, append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: citizens, outbox, metadata.
    "CREATE TABLE citizen (
        pid    INTEGER PRIMARY KEY,
        record BLOB NOT NULL
     );
     CREATE TABLE outbox (
seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        type         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        occurred_at  TEXT NOT NULL,
        data         TEXT NOT NULL,
        published_at TEXT
     );
     CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
     CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
     );",
    // 2: idempotency keys of registry writes, with their receipts.
    "CREATE TABLE request (
        agency      TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        operation   TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        pid         INTEGER NOT NULL,
        event_id    TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (agency, request_id)
     ) WITHOUT ROWID;",
    // 3: citizens' consents.
    "CREATE TABLE consent (
        id         TEXT PRIMARY KEY,
        pid        INTEGER NOT NULL,
        agency     TEXT NOT NULL,
        purpose    TEXT NOT NULL,
        fields     TEXT NOT NULL,
        issued_at  TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
     ) WITHOUT ROWID;
     CREATE INDEX consent_by_citizen ON consent (pid);",
    // 4: which records each write stored, for the verification projection
    // to follow the outbox (a death or a marriage changes two).
    "ALTER TABLE outbox ADD COLUMN changed BLOB;",
    // 5: daily quota counts, so that a restart does not start them again.
    "CREATE TABLE quota_day (
        agency TEXT NOT NULL,
        day    INTEGER NOT NULL,
        leased INTEGER NOT NULL,
        PRIMARY KEY (agency, day)
     ) WITHOUT ROWID;",
    // 6: which replica committed each write, named in its receipt.
    "ALTER TABLE request ADD COLUMN node TEXT NOT NULL DEFAULT '';",
];

/// The schema version this binary writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
