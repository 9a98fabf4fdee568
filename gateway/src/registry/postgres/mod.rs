//! The shared registry backend: PostgreSQL, for gateways that run as
//! replicas over one database (`--store postgres://…`).
//!
//! ```text
//! a registry write, one transaction:
//!   UPDATE outbox_seq SET last = last + 1 RETURNING last   ← the row lock:
//!   request (seen before? replay)                            writes of every
//!   plan's reads (citizen)                                   replica wait here
//!   INSERT citizen…, outbox (seq), request                   in turn
//!   COMMIT                                    ← the lock is released
//! ```
//!
//! Writes serialise on the `outbox_seq` row, taken first: `seq` is gap-free
//! (a rollback gives its number back), commit order is `seq` order (what
//! [`PopulationStore::changes_after`] asks of a store), a plan's reads
//! cannot change before its commit, and a retry through another replica
//! finds the first one's receipt. Registry writes are rare (some 12 million
//! a year nationally), so one at a time is affordable.
//!
//! Every method blocks on the network: it is called from blocking threads
//! (`blocking::off_runtime`), never on a runtime worker. Connections are
//! pooled and bounded in number and time ([`pool`]).

mod consent;
pub(crate) mod pool;
mod quota;
mod schema;
mod seed;

use std::collections::HashMap;
use std::sync::Mutex;

use fallible_iterator::FallibleIterator;
use lienthong_proto::citizen::RecordView;
use lienthong_proto::{Citizen, Pid};
use postgres::{Client, IsolationLevel, Transaction};
use prost::Message;

use super::{
    Change, Changes, Outbox, OutboxLag, OutboxRow, Plan, PopulationStore, Publisher, Receipt,
    RequestKey, WriteScope, Written,
};
use crate::error::{Error, Result};
use pool::Pool;

/// The advisory lock the publishing replica holds: one per schema, as
/// advisory locks are the whole database's.
const RELAY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('lienthong relay ' || current_schema(), 0))";

/// Lets [`RELAY_LOCK`] go (every hold of it this session took).
const RELAY_UNLOCK: &str = "SELECT pg_advisory_unlock_all()";

/// Whether any session holds [`RELAY_LOCK`]: a bigint advisory lock shows
/// in `pg_locks` as its high half (`classid`) and low half (`objid`).
const RELAY_LOCK_HELD: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND objsubid = 1
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((classid::bigint << 32) | objid::bigint)
           = hashtextextended('lienthong relay ' || current_schema(), 0))";

/// The registry in a PostgreSQL database.
pub struct PostgresRegistry {
    pool: Pool,
    /// The session that holds, or asks for, the relay's lock: the lock ends
    /// with it, so a replica that dies lets another lead.
    leading: Mutex<Option<Lead>>,
    /// This replica's name, recorded when it takes the right to publish.
    node: String,
}

/// The relay's lock session, and whether it holds the lock.
struct Lead {
    session: Client,
    held: bool,
}

impl Drop for PostgresRegistry {
    fn drop(&mut self) {
        let lead = self
            .leading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        pool::close_off_runtime(lead.into_iter().map(|l| l.session).collect());
    }
}

impl PostgresRegistry {
    /// Connects to `url` (`postgres://user:password@host:port/database`)
    /// and migrates the schema (under a lock: replicas may start together).
    pub fn open(url: &str) -> Result<Self> {
        let registry = Self {
            pool: Pool::from_url(url, pool::MAX_OPEN)?,
            leading: Mutex::new(None),
            node: String::new(),
        };
        registry.with_client(schema::migrate)?;
        Ok(registry)
    }

    /// `url` with every session's `search_path` set to `schema`: a store
    /// of its own in a shared database (tests, benches, side-by-side
    /// deployments).
    pub fn in_schema(url: &str, schema: &str) -> String {
        let joint = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joint}options=-csearch_path%3D{schema}")
    }

    /// The same registry, naming `node` as the publisher when its relay
    /// takes the right to publish.
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// Runs `f` with a pooled connection.
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.pool.with_client(f)
    }

    /// Runs `f` in a read-only transaction that sees one snapshot.
    fn with_snapshot<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with_client(|client| {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// The synthetic population the registry was seeded with, as
    /// (seed, citizens); `None` before seeding.
    pub fn seeded_with(&self) -> Result<Option<(u64, u64)>> {
        self.with_client(|client| {
            let value = |client: &mut Client, key: &str| -> Result<Option<u64>> {
                let row = client.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?;
                Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
            };
            Ok(value(client, "seed")?.zip(value(client, "citizens")?))
        })
    }
}

/// A stored record, checked against the Pid it is stored under.
fn decode(blob: &[u8], pid: i64, view: RecordView) -> Result<Citizen> {
    let citizen = Citizen::decode_view(blob, view).map_err(|_| Error::Corrupt)?;
    if citizen.pid as i64 != pid {
        return Err(Error::Corrupt);
    }
    Ok(citizen)
}

/// The last `seq` handed out and committed, as `tx` sees it.
fn last_seq(tx: &mut Transaction<'_>) -> Result<u64> {
    let last: i64 = tx.query_one("SELECT last FROM outbox_seq", &[])?.get(0);
    Ok(last as u64)
}

impl PopulationStore for PostgresRegistry {
    fn visit_many(
        &self,
        pids: &[Pid],
        view: RecordView,
        visit: &mut dyn FnMut(usize, Option<Citizen>),
    ) -> Result<()> {
        let keys: Vec<i64> = pids.iter().map(|p| p.as_u64() as i64).collect();
        let rows = self.with_client(|client| {
            Ok(client.query(
                "SELECT pid, record FROM citizen WHERE pid = ANY($1)",
                &[&keys],
            )?)
        })?;
        let mut found: HashMap<i64, Citizen> = HashMap::with_capacity(rows.len());
        for row in rows {
            let pid: i64 = row.get(0);
            found.insert(pid, decode(row.get(1), pid, view)?);
        }
        for (i, key) in keys.iter().enumerate() {
            visit(i, found.get(key).cloned());
        }
        Ok(())
    }

    fn visit_all(&self, view: RecordView, visit: &mut dyn FnMut(Citizen)) -> Result<u64> {
        self.with_snapshot(|tx| {
            // The whole register, read as fast as the projection takes it.
            tx.batch_execute("SET LOCAL statement_timeout = 0")?;
            let seq = last_seq(tx)?;
            let no_params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
            let mut rows =
                tx.query_raw("SELECT pid, record FROM citizen ORDER BY pid", no_params)?;
            while let Some(row) = rows.next()? {
                visit(decode(row.get(1), row.get(0), view)?);
            }
            Ok(seq)
        })
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Changes> {
        self.with_snapshot(|tx| {
            let rows = tx.query(
                "SELECT seq, pid, changed FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )?;
            let writes = rows
                .iter()
                .map(|row| {
                    let pids = match row.get::<_, Option<&[u8]>>(2) {
                        None => vec![pid_of(row.get(1))?],
                        Some(blob) => super::sqlite::changed_pids(blob)?,
                    };
                    Ok(Change {
                        seq: row.get::<_, i64>(0) as u64,
                        pids,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Changes {
                writes,
                last_seq: last_seq(tx)?,
            })
        })
    }

    fn count(&self) -> Result<u64> {
        self.with_client(|client| {
            let n: i64 = client
                .query_one("SELECT count(*) FROM citizen", &[])?
                .get(0);
            Ok(n as u64)
        })
    }

    fn is_empty(&self) -> Result<bool> {
        self.with_client(|client| {
            let any: bool = client
                .query_one("SELECT EXISTS (SELECT 1 FROM citizen)", &[])?
                .get(0);
            Ok(!any)
        })
    }

    fn write(&self, key: &RequestKey<'_>, plan: &mut Plan<'_>) -> Result<Written> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            // First: every other write, through any replica, waits here.
            let seq: i64 = tx
                .query_one("UPDATE outbox_seq SET last = last + 1 RETURNING last", &[])?
                .get(0);
            if let Some(receipt) = seen(&mut tx, key)? {
                // Rolled back: the seq taken above is given back.
                return Ok(Written::Replayed(receipt));
            }
            let planned = plan(&mut Scope { tx: &mut tx })?;
            let put = tx.prepare(
                "INSERT INTO citizen (pid, record) VALUES ($1, $2)
                 ON CONFLICT (pid) DO UPDATE SET record = excluded.record",
            )?;
            for citizen in &planned.records {
                tx.execute(&put, &[&(citizen.pid as i64), &citizen.encode_to_vec()])?;
            }
            let event = &planned.event;
            let changed = super::sqlite::changed(event.pid, &planned.records);
            tx.execute(
                "INSERT INTO outbox (seq, id, type, pid, occurred_at, data, changed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &seq,
                    &event.id,
                    &event.kind,
                    &(event.pid.as_u64() as i64),
                    &event.occurred_at,
                    &event.data,
                    &changed,
                ],
            )?;
            let receipt = Receipt {
                request_id: key.request_id.to_owned(),
                pid: event.pid,
                event_id: event.id.clone(),
                seq: seq as u64,
                recorded_at: event.occurred_at.clone(),
                node: key.node.to_owned(),
            };
            tx.execute(
                "INSERT INTO request (agency, request_id, operation, fingerprint, pid, event_id, seq, recorded_at, node)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &key.agency,
                    &key.request_id,
                    &key.operation,
                    &&key.fingerprint[..],
                    &(receipt.pid.as_u64() as i64),
                    &receipt.event_id,
                    &seq,
                    &receipt.recorded_at,
                    &receipt.node,
                ],
            )?;
            tx.commit()?;
            Ok(Written::Committed(receipt))
        })
    }
}

/// A Pid as the database keeps it.
fn pid_of(raw: i64) -> Result<Pid> {
    Pid::from_u64(raw as u64).map_err(|_| Error::Corrupt)
}

/// The receipt of `key` if it was written before; a different request under
/// the same key is refused.
fn seen(tx: &mut Transaction<'_>, key: &RequestKey<'_>) -> Result<Option<Receipt>> {
    let row = tx.query_opt(
        "SELECT operation, fingerprint, pid, event_id, seq, recorded_at, node
         FROM request WHERE agency = $1 AND request_id = $2",
        &[&key.agency, &key.request_id],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (operation, fingerprint): (String, Vec<u8>) = (row.get(0), row.get(1));
    if operation != key.operation || fingerprint != key.fingerprint {
        return Err(Error::RequestIdReused {
            request_id: key.request_id.to_owned(),
        });
    }
    Ok(Some(Receipt {
        request_id: key.request_id.to_owned(),
        pid: pid_of(row.get(2))?,
        event_id: row.get(3),
        seq: row.get::<_, i64>(4) as u64,
        recorded_at: row.get(5),
        node: row.get(6),
    }))
}

/// The register as a write's plan sees it: through the write's transaction.
struct Scope<'a, 't> {
    tx: &'a mut Transaction<'t>,
}

impl WriteScope for Scope<'_, '_> {
    fn get(&mut self, pid: Pid) -> Result<Option<Citizen>> {
        let key = pid.as_u64() as i64;
        let row = self
            .tx
            .query_opt("SELECT record FROM citizen WHERE pid = $1", &[&key])?;
        row.map(|row| decode(row.get(0), key, RecordView::Full))
            .transpose()
    }

    fn free_within(&mut self, lowest: Pid, highest: Pid) -> Result<Option<Pid>> {
        let (lo, hi) = (lowest.as_u64() as i64, highest.as_u64() as i64);
        let top: Option<i64> = self
            .tx
            .query_one(
                "SELECT max(pid) FROM citizen WHERE pid BETWEEN $1 AND $2",
                &[&lo, &hi],
            )?
            .get(0);
        let free = match top {
            None => Some(lo),
            Some(top) if top < hi => Some(top + 1),
            // The top serial is taken: the first gap from the bottom.
            Some(_) => self
                .tx
                .query_opt(
                    "SELECT $1::bigint WHERE NOT EXISTS (SELECT 1 FROM citizen WHERE pid = $1)
                     UNION ALL
                     SELECT * FROM (SELECT c.pid + 1 FROM citizen c
                      WHERE c.pid BETWEEN $1 AND $2::bigint - 1
                        AND NOT EXISTS (SELECT 1 FROM citizen n WHERE n.pid = c.pid + 1)
                      ORDER BY c.pid LIMIT 1) AS gap
                     LIMIT 1",
                    &[&lo, &hi],
                )?
                .map(|row| row.get(0)),
        };
        free.map(pid_of).transpose()
    }
}

impl Outbox for PostgresRegistry {
    fn unpublished(&self, after: u64, limit: usize) -> Result<Vec<OutboxRow>> {
        let rows = self.with_client(|client| {
            Ok(client.query(
                "SELECT seq, id, type, pid, occurred_at, data FROM outbox
                 WHERE published_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )?)
        })?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    seq: row.get::<_, i64>(0) as u64,
                    event: super::OutboxEvent {
                        id: row.get(1),
                        kind: row.get(2),
                        pid: pid_of(row.get(3))?,
                        occurred_at: row.get(4),
                        data: row.get(5),
                    },
                })
            })
            .collect()
    }

    fn mark_published(&self, from: u64, through: u64, at: &str) -> Result<()> {
        self.with_client(|client| {
            client.execute(
                "UPDATE outbox SET published_at = $1
                 WHERE seq BETWEEN $2 AND $3 AND published_at IS NULL",
                &[&at, &(from as i64), &(through as i64)],
            )?;
            Ok(())
        })
    }

    fn lag(&self) -> Result<OutboxLag> {
        self.with_snapshot(|tx| {
            let row = tx.query_one(
                "SELECT count(*), (SELECT occurred_at FROM outbox
                                   WHERE published_at IS NULL ORDER BY seq LIMIT 1)
                 FROM outbox WHERE published_at IS NULL",
                &[],
            )?;
            Ok(OutboxLag {
                waiting: row.get::<_, i64>(0) as u64,
                oldest_waiting: row.get(1),
                last_seq: last_seq(tx)?,
            })
        })
    }

    fn purge_published(&self, before: &str) -> Result<u64> {
        self.with_client(|client| {
            Ok(client.execute(
                "DELETE FROM outbox WHERE published_at IS NOT NULL AND occurred_at < $1",
                &[&before],
            )?)
        })
    }

    fn try_lead(&self) -> Result<bool> {
        let mut leading = self.leading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lead) = leading.as_mut() {
            // A session that no longer answers has lost the lock with it.
            if lead.session.is_closed() || lead.session.simple_query("SELECT 1").is_err() {
                let lost = leading.take();
                pool::close_off_runtime(lost.into_iter().map(|l| l.session).collect());
            } else if lead.held {
                return Ok(true);
            }
        }
        let lead = match leading.as_mut() {
            Some(lead) => lead,
            None => leading.insert(Lead {
                session: self.pool.connect()?,
                held: false,
            }),
        };
        let held: bool = lead.session.query_one(RELAY_LOCK, &[])?.get(0);
        if held {
            // Named before it counts as held; if naming fails, the lock is
            // let go, for this replica or another to take it again.
            let named = lead.session.execute(
                "INSERT INTO meta (key, value) VALUES ('publisher', $1 || ' ' || $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&crate::clock::now(), &self.node],
            );
            if let Err(e) = named {
                let _ = lead.session.execute(RELAY_UNLOCK, &[]);
                return Err(e.into());
            }
        }
        lead.held = held;
        Ok(held)
    }

    fn publisher(&self) -> Result<Option<Publisher>> {
        self.with_client(|client| {
            let holding: bool = client.query_one(RELAY_LOCK_HELD, &[])?.get(0);
            let last: Option<String> = client
                .query_opt("SELECT value FROM meta WHERE key = 'publisher'", &[])?
                .map(|r| r.get(0));
            Ok(last.map(|last| {
                let (since, node) = last.split_once(' ').unwrap_or((&last, ""));
                Publisher {
                    node: node.to_owned(),
                    since: since.to_owned(),
                    holding,
                }
            }))
        })
    }
}

#[cfg(test)]
mod tests;
