//! The audit log: every request to `ExchangeService`, `RegistryService` and
//! `CitizenService` — granted or refused, a batch as one record naming each
//! of its claims — as an
//! append-only, hash-chained record, durable before the answer leaves.
//!
//! - [`AuditTrail`]: where records go, durable before `append` returns —
//!   the interface a backend implements.
//! - [`record`]: what a record holds and how it is chained.
//! - [`log`]: the embedded backend ([`AuditLog`]): segments on this
//!   machine's disk, laid out by concern —
//!   - [`segment`]: the bytes on disk, `DIR/audit/NNNNNNNN.seg`: records and
//!     checkpoints as frames, the one place a record is stored;
//!   - [`segment_file`]: one segment, written in whole blocks straight to
//!     the disk;
//!   - [`pipe`]: appending, and moving on to the next segment;
//!   - [`barrier`]: the group commit between the requests and the writer;
//!   - [`writer`]: the writer's thread: chaining, checkpoints, one sync a
//!     group;
//!   - [`recovery`]: where the log ends at start, and what a crash left.
//! - [`index`]: which records concern which citizen and where they are,
//!   kept up to date off the request path, in runs merged in levels
//!   ([`levels`]).
//! - [`shared`]: the cluster's backend ([`SharedAudit`]): with the shared
//!   store, each replica's chain in PostgreSQL, `ListAccesses` across all.
//! - [`verify()`]: the chain and checkpoint walk behind `lienthong audit verify`.
//! - [`AccessList`]: a citizen's view, behind `CitizenService.ListAccesses`.
//!
//! The log holds Pids, agencies, purposes, field names and outcomes — never a
//! name, a date of birth or an address.

mod barrier;
mod index;
mod levels;
mod log;
mod pipe;
mod record;
mod recovery;
mod segment;
mod segment_file;
mod shared;
mod verify;
mod writer;

pub use index::index_path;
pub use log::{AuditLog, AuditWriter};
pub use record::{AuditEntry, AuditRecord, Checkpoint, Decision, Hash};
pub use shared::{
    ChainAnchor, ChainReport, SharedAccesses, SharedAudit, SharedAuditWriter, verify_shared,
};
pub use verify::{Anchor, AuditReport, Problem, verify, verify_anchored};
pub use writer::{CHECKPOINT_EVERY, PACE, PACE_FROM};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lienthong_proto::Pid;
use rusqlite::{Connection, params};

use segment::{Cursor, Frame, Position, Step};

use crate::clock;
use crate::error::{Error, Result};
use crate::policy::{LivePolicy, Role};

/// An append's answer, once its records are durable: the last one's
/// number.
pub type Pending<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u64>> + Send + 'a>>;

/// Where audit records go. `append` returns once the records are durable,
/// in order and adjacent, so a request is answered only after its record
/// is kept; the embedded [`AuditLog`] is one backend.
pub trait AuditTrail: Send + Sync + 'static {
    /// Appends `entries` and resolves once they are durable.
    fn append(&self, entries: Vec<AuditEntry>) -> Pending<'_>;
}

/// `CitizenService` operations: granted, they are the citizen's own acts
/// through the identity provider, not accesses by others, so `ListAccesses`
/// leaves them out; refused, they are someone else trying, and are shown.
pub const CITIZEN_OPERATIONS: [&str; 3] = ["grant_consent", "revoke_consent", "list_accesses"];

/// Accesses per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most accesses per page.
pub const MAX_PAGE: usize = 500;

/// One stored access to a citizen's data, as `ListAccesses` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccess {
    /// Where it stands in the newest-first order: the page token that
    /// continues after it (the record's number in the embedded log; the
    /// cluster-wide `at` in the shared one).
    pub order: u64,
    /// The replica whose chain holds the record; empty in the embedded log.
    pub node: String,
    /// The audit record's number (in `node`'s chain).
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

/// Every record of the log in the directory `dir`, in order, as far as its
/// frames read (for tools and tests; `audit verify` says whether they
/// chain).
pub fn records(dir: &Path) -> Result<Vec<AuditRecord>> {
    let mut cursor = Cursor::new(dir, Position::START, None, 1 << 20);
    let mut out = Vec::new();
    while let Step::Frame(_, frame) = cursor.step()? {
        if let Frame::Record(r) = frame {
            out.push(*r);
        }
    }
    Ok(out)
}

/// Brings the citizen index of the log in the directory `dir` up to the
/// log's end and merges its runs until no merge is due — what the indexer
/// does while the gateway runs — and returns how many live runs a
/// citizen's page may now read (for tools and benches; the log must not be
/// open: this takes it).
pub fn compact_index(dir: &Path) -> Result<usize> {
    let _taken = log::take(dir)?;
    let found = recovery::recover(dir)?;
    let durable = Arc::new(std::sync::atomic::AtomicU64::new(found.end.pack()));
    let mut indexer = index::Indexer::open(dir, durable, found.head.0)?;
    while indexer.step()? > 0 {}
    drop(indexer);
    let mut conn = Connection::open(index_path(dir))?;
    while levels::compact_step(&mut conn)? {}
    Ok(levels::live_runs(&conn, u64::MAX)?.len())
}

/// One page of a citizen's accesses, newest first.
#[derive(Debug, Clone)]
pub struct AccessPage {
    /// Each access with the agency's display name.
    pub accesses: Vec<(StoredAccess, String)>,
    /// Where the next page starts, if there is one.
    pub next: Option<u64>,
}

/// The domain behind `ListAccesses`: a citizen's accesses, read from the log.
#[derive(Clone)]
pub struct AccessList {
    policy: LivePolicy,
    source: Source,
}

/// Which log the accesses are read from.
#[derive(Clone)]
enum Source {
    /// The embedded log in a directory, through its index.
    Segments {
        path: PathBuf,
        reader: Arc<Mutex<Option<Connection>>>,
    },
    /// The shared log: every replica's chain.
    Shared(SharedAccesses),
}

impl AccessList {
    /// Reads the log in the directory `path`.
    pub fn new(policy: LivePolicy, path: &Path) -> Self {
        Self {
            policy,
            source: Source::Segments {
                path: path.to_path_buf(),
                reader: Arc::new(Mutex::new(None)),
            },
        }
    }

    /// Reads the shared log of a cluster.
    pub fn shared(policy: LivePolicy, accesses: SharedAccesses) -> Self {
        Self {
            policy,
            source: Source::Shared(accesses),
        }
    }

    /// [`AccessList::list`] on the blocking pool: the read may wait for the
    /// disk, and must not hold up the runtime's workers.
    pub async fn list_off_runtime(
        &self,
        caller: &str,
        citizen: Pid,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<AccessPage> {
        let list = self.clone();
        let caller = caller.to_owned();
        tokio::task::spawn_blocking(move || list.list(&caller, citizen, page_size, before))
            .await
            .map_err(|_| Error::Task)?
    }

    /// Up to `page_size` accesses to `citizen`'s data before record `before`
    /// (the previous page's `next`), for the identity provider `caller`.
    /// Confidential accesses appear once their hidden-until time has passed.
    pub fn list(
        &self,
        caller: &str,
        citizen: Pid,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<AccessPage> {
        let policy = self.policy.current();
        policy.authorize_role(caller, Role::IdentityProvider, "list_accesses")?;
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE}"),
                ));
            }
        };
        let before = before.unwrap_or(u64::MAX);
        let now = clock::now();
        let mut rows = match &self.source {
            Source::Segments { path, reader } => {
                let mut reader = reader.lock().unwrap_or_else(|e| e.into_inner());
                if reader.is_none() {
                    *reader = Some(index::open_reader(path)?);
                }
                let conn = reader.as_ref().ok_or(Error::Task)?;
                accesses(path, conn, citizen, before, limit + 1, &now)?
            }
            Source::Shared(shared) => shared.page(citizen, before, limit + 1, &now)?,
        };
        let next = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map_or(0, |a| a.order)
        });
        Ok(AccessPage {
            accesses: rows
                .into_iter()
                .map(|a| {
                    let name = policy.agency_name(&a.agency).unwrap_or("").to_owned();
                    (a, name)
                })
                .collect(),
            next,
        })
    }
}

/// Up to `limit` accesses to `pid` before record `before`, newest first,
/// leaving out records hidden at `now` and the citizen's own acts through
/// the identity provider (granted [`CITIZEN_OPERATIONS`]; a refused one is
/// someone trying, and is shown). Records up to the index's `through` are
/// found through the index (`conn`), later ones by scanning the log's tail
/// from the index's `pos`, in one snapshot of the index.
fn accesses(
    dir: &Path,
    conn: &Connection,
    pid: Pid,
    before: u64,
    limit: usize,
    now: &str,
) -> Result<Vec<StoredAccess>> {
    conn.execute_batch("BEGIN")?;
    let found = (|| {
        let (through, pos) = index::indexed(conn)?;
        let shown = |r: &AuditRecord| {
            let e = &r.entry;
            r.seq < before
                && e.hidden_until.as_deref().is_none_or(|until| until <= now)
                && !(e.decision == Decision::Granted
                    && CITIZEN_OPERATIONS.contains(&e.operation.as_str()))
        };
        let wanted = pid.as_u64() as i64;
        // The tail, past the index, oldest first: whole records only (one
        // being written does not read yet, or does not hash).
        let mut tail = Vec::new();
        let mut cursor = Cursor::new(dir, pos, None, 256 << 10);
        loop {
            match cursor.step()? {
                Step::Frame(_, Frame::Record(r)) => {
                    if r.expected_hash() != r.hash {
                        break;
                    }
                    if index::pids_of(&r.entry.pids).contains(&wanted) && shown(&r) {
                        tail.push(*r);
                    }
                }
                Step::Frame(_, Frame::Checkpoint(_)) => {}
                Step::Bad { .. } | Step::End(_) => break,
            }
        }
        let mut out: Vec<AuditRecord> = tail.into_iter().rev().take(limit).collect();
        // Then the index, newest first, run by run, each record read where
        // it is.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, pos FROM audit_pid
             WHERE run = ?1 AND pid = ?2 AND seq <= ?3
             ORDER BY seq DESC",
        )?;
        // The newest record the index may give: before `before`, and
        // indexed.
        let newest = before.saturating_sub(1).min(through);
        let mut reader = Cursor::new(dir, pos, None, 4096);
        for run in levels::live_runs(conn, newest)? {
            if out.len() >= limit {
                break;
            }
            let mut rows = stmt.query(params![run, wanted, newest as i64])?;
            while out.len() < limit {
                let Some(row) = rows.next()? else { break };
                let seq = row.get::<_, i64>(0)? as u64;
                let at = Position::unpack(row.get::<_, i64>(1)? as u64);
                let record = reader
                    .record_at(at)?
                    .filter(|r| r.seq == seq)
                    .ok_or_else(|| {
                        Error::Audit(
                            "the audit index does not match the log; run `lienthong audit verify`"
                                .into(),
                        )
                    })?;
                if shown(&record) {
                    out.push(record);
                }
            }
        }
        let wanted = pid.to_string();
        Ok(out
            .into_iter()
            .map(|r| StoredAccess {
                outcome: r.entry.outcome_for(&wanted).to_owned(),
                order: r.seq,
                node: String::new(),
                seq: r.seq,
                time: r.time,
                agency: r.entry.agency,
                operation: r.entry.operation,
                purpose: r.entry.purpose,
                fields: r.entry.fields,
                decision: r.entry.decision,
            })
            .collect())
    })();
    conn.execute_batch("COMMIT")?;
    found
}

#[cfg(test)]
mod tests;
