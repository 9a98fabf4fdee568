//! The shared registry's versioned schema. Migrations run at start in one
//! transaction under an advisory lock, so replicas starting together do not
//! race (the second finds the work done); `schema_version` records how many
//! have run, and a binary older than the schema refuses it.
//!
//! ```text
//! citizen(pid bigint PK, record bytea)        record = prost-encoded Citizen
//! outbox(seq bigint PK, id text UNIQUE, type, pid bigint, occurred_at,
//!        data, published_at, changed bytea)   as the embedded schema's
//! outbox_seq(one boolean PK, last bigint)     the last seq handed out: a
//!        write takes the next under this row's lock, held until it commits
//! request(agency, request_id, operation, fingerprint bytea, pid, event_id,
//!         seq, recorded_at, node; PK (agency, request_id))   receipts
//! consent(id PK, pid, agency, purpose, fields, issued_at, expires_at,
//!         revoked_at)
//! meta(key PK, value)                         e.g. seed, citizens
//! quota_day(agency, day, leased; PK (agency, day))   quota leased out;
//!        a lease locks its row
//! audit_record(period date, node, seq, at, time, …the record's fields…,
//!        prev_hash, hash; PK (node, seq, period))   one hash chain a
//!        replica; PARTITION BY RANGE (period): one partition a month
//! audit_pid(period, pid, at, node, seq; PK (pid, at, period))   the
//!        citizen index, partitioned alike
//! audit_checkpoint(node, seq, hash, time, signature; PK (node, seq))
//! audit_detached(node, period, last_seq, last_hash)   what a detached
//!        month ended with, for `audit verify`
//! audit_at                                    a sequence: the cluster-wide
//!        order `ListAccesses` pages by
//! schema_version(version int)                 one row
//! ```

use postgres::Client;

use crate::error::{Error, Result};

/// The advisory lock migrations run under: one per schema, as advisory
/// locks are the whole database's.
const MIGRATION_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('lienthong migrate ' || current_schema(), 0))";

/// Migrations in order; never edit one that has shipped, append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: everything the embedded schema's migrations 1-4 hold.
    "CREATE TABLE citizen (
        pid    bigint PRIMARY KEY,
        record bytea NOT NULL
     );
     CREATE TABLE outbox (
        seq          bigint PRIMARY KEY,
        id           text NOT NULL UNIQUE,
        type         text NOT NULL,
        pid          bigint NOT NULL,
        occurred_at  text NOT NULL,
        data         text NOT NULL,
        published_at text,
        changed      bytea
     );
     CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
     CREATE TABLE outbox_seq (
        one  boolean PRIMARY KEY DEFAULT true CHECK (one),
        last bigint NOT NULL
     );
     INSERT INTO outbox_seq (last) VALUES (0);
     CREATE TABLE request (
        agency      text NOT NULL,
        request_id  text NOT NULL,
        operation   text NOT NULL,
        fingerprint bytea NOT NULL,
        pid         bigint NOT NULL,
        event_id    text NOT NULL,
        seq         bigint NOT NULL,
        recorded_at text NOT NULL,
        PRIMARY KEY (agency, request_id)
     );
     CREATE TABLE consent (
        id         text PRIMARY KEY,
        pid        bigint NOT NULL,
        agency     text NOT NULL,
        purpose    text NOT NULL,
        fields     text NOT NULL,
        issued_at  text NOT NULL,
        expires_at text NOT NULL,
        revoked_at text
     );
     CREATE INDEX consent_by_citizen ON consent (pid);
     CREATE TABLE meta (
        key   text PRIMARY KEY,
        value text NOT NULL
     );",
    // 2: daily quota counts, which every replica leases from.
    "CREATE TABLE quota_day (
        agency text NOT NULL,
        day    bigint NOT NULL,
        leased bigint NOT NULL,
        PRIMARY KEY (agency, day)
     );",
    // 3: which replica committed each write, named in its receipt.
    "ALTER TABLE request ADD COLUMN node text NOT NULL DEFAULT '';",
    // 4: the cluster's audit log (`crate::audit::shared`): one hash chain
    // a replica, partitioned by month; the citizen index beside it.
    "CREATE SEQUENCE audit_at;
     CREATE TABLE audit_record (
        period        date NOT NULL,
        node          text NOT NULL,
        seq           bigint NOT NULL,
        at            bigint NOT NULL,
        time          text NOT NULL,
        agency        text NOT NULL,
        operation     text NOT NULL,
        purpose       text NOT NULL,
        pids          text NOT NULL,
        fields        text NOT NULL,
        decision      text NOT NULL,
        outcome       text NOT NULL,
        request_id    text NOT NULL,
        trace_id      text NOT NULL,
        request_hash  bytea NOT NULL,
        response_hash bytea NOT NULL,
        hidden_until  text,
        prev_hash     bytea NOT NULL,
        hash          bytea NOT NULL,
        PRIMARY KEY (node, seq, period)
     ) PARTITION BY RANGE (period);
     CREATE TABLE audit_pid (
        period date NOT NULL,
        pid    bigint NOT NULL,
        at     bigint NOT NULL,
        node   text NOT NULL,
        seq    bigint NOT NULL,
        PRIMARY KEY (pid, at, period)
     ) PARTITION BY RANGE (period);
     CREATE TABLE audit_checkpoint (
        node      text NOT NULL,
        seq       bigint NOT NULL,
        hash      bytea NOT NULL,
        time      text NOT NULL,
        signature bytea NOT NULL,
        PRIMARY KEY (node, seq)
     );
     CREATE TABLE audit_detached (
        node      text NOT NULL,
        period    date NOT NULL,
        last_seq  bigint NOT NULL,
        last_hash bytea NOT NULL,
        PRIMARY KEY (node, period)
     );",
];

/// The schema version this binary writes.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`], or refuses a newer one.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute(MIGRATION_LOCK, &[])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM schema_version", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute("UPDATE schema_version SET version = $1", &[&(i as i64 + 1)])?;
    }
    tx.commit()?;
    Ok(())
}
