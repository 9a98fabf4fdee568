//! The shared audit log's writer: one thread, one session holding the
//! node's lock. It takes every job waiting as one group, numbers and chains
//! its records, signs a checkpoint when one is due, and commits the group
//! with one statement, then acks each job.
//!
//! ```text
//! WITH r AS (INSERT INTO audit_record SELECT … FROM unnest($arrays…)
//!            RETURNING seq, at),
//!      c AS (INSERT INTO audit_checkpoint SELECT … WHERE $due)
//! INSERT INTO audit_pid SELECT … FROM unnest($seqs, $pids) JOIN r USING (seq)
//! ```
//!
//! A failed statement fails its group's requests (`AUDIT_UNAVAILABLE`) and
//! ends the session: whether the commit landed is not known, so the next
//! group opens a new session, which takes the node's lock again and reads
//! the chain's head back from the database. If another process took the
//! node meanwhile, the writer stops for good.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use postgres::{Client, Statement};
use tokio::sync::oneshot;

use super::super::record::{AuditEntry, GENESIS, Hash, chain_hash, encode_entry};
use super::super::writer::{CHECKPOINT_EVERY, sign};
use super::{NODE_LOCK, RECORD_COLUMNS, period, record_of};
use crate::audit::index::pids_of;
use crate::clock;
use crate::error::{Error, Result};
use crate::registry::postgres::pool::Pool;
use crate::signing::SigningKey;
use crate::telemetry::{AUDIT_COMMIT, AUDIT_RECORDS};

/// Most records one group commits (more wait for the next).
const GROUP_RECORDS: usize = 4_096;

/// After a session could not be opened, how long groups fail at once
/// before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the writer is sent.
pub(super) enum Msg {
    /// Records to append; the ack is the last one's number, or why not.
    Job {
        entries: Vec<AuditEntry>,
        done: oneshot::Sender<std::result::Result<u64, String>>,
    },
    /// Commit what is queued, sign a last checkpoint, stop.
    Close,
}

const INSERT: &str = "WITH r AS (
    INSERT INTO audit_record (period, node, seq, at, time, agency, operation, purpose, pids,
        fields, decision, outcome, request_id, trace_id, request_hash, response_hash,
        hidden_until, prev_hash, hash)
    SELECT $1::text::date, $2, u.seq, nextval('audit_at'), $3, u.agency, u.operation,
        u.purpose, u.pids, u.fields, u.decision, u.outcome, u.request_id, u.trace_id,
        u.request_hash, u.response_hash, u.hidden_until, u.prev_hash, u.hash
    FROM unnest($4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
        $10::text[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::bytea[],
        $16::text[], $17::bytea[], $18::bytea[])
        AS u(seq, agency, operation, purpose, pids, fields, decision, outcome, request_id,
             trace_id, request_hash, response_hash, hidden_until, prev_hash, hash)
    ORDER BY u.seq
    RETURNING seq, at
), c AS (
    INSERT INTO audit_checkpoint (node, seq, hash, time, signature)
    SELECT $2, $21, $22, $3, $23 WHERE $24
)
INSERT INTO audit_pid (period, pid, at, node, seq)
SELECT $1::text::date, p.pid, r.at, $2, r.seq
FROM unnest($19::int8[], $20::int8[]) AS p(seq, pid) JOIN r ON r.seq = p.seq";

/// The writer's session: the node's lock, the chain's head.
pub(super) struct Session {
    client: Client,
    insert: Statement,
    /// The last record's number and hash.
    pub(super) head: (u64, Hash),
    /// The last record a checkpoint covers.
    checkpointed: u64,
    last_checkpoint: Instant,
    /// Months whose partitions are known to exist.
    periods: HashSet<String>,
}

impl Session {
    /// Connects, takes `node`'s lock and reads its chain's head: the last
    /// record (which must match its hash), or what the last detached month
    /// ended with; refuses a checkpoint past that head.
    pub(super) fn open(pool: &Pool, node: &str) -> Result<Self> {
        if node.is_empty() {
            return Err(Error::Audit(
                "a replica on the shared store needs a --node-name: its audit chain's name".into(),
            ));
        }
        let mut client = pool.connect()?;
        let taken: bool = client.query_one(NODE_LOCK, &[&node])?.get(0);
        if !taken {
            return Err(Error::AuditNodeTaken {
                node: node.to_owned(),
            });
        }
        let last = client.query_opt(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE node = $1
                 ORDER BY seq DESC LIMIT 1"
            ),
            &[&node],
        )?;
        let head = match last {
            Some(row) => {
                let (record, _) = record_of(&row)?;
                if record.expected_hash() != record.hash {
                    return Err(Error::Audit(format!(
                        "audit_record: the last record of node {node} (seq {}) does not match \
                         its hash; run `lienthong audit verify --store …` before serving",
                        record.seq
                    )));
                }
                (record.seq, record.hash)
            }
            None => match client.query_opt(
                "SELECT last_seq, last_hash FROM audit_detached WHERE node = $1
                 ORDER BY last_seq DESC LIMIT 1",
                &[&node],
            )? {
                Some(row) => (
                    row.get::<_, i64>(0) as u64,
                    row.get::<_, &[u8]>(1).try_into().unwrap_or(GENESIS),
                ),
                None => (0, GENESIS),
            },
        };
        let checkpointed = client
            .query_one(
                "SELECT coalesce(max(seq), 0) FROM audit_checkpoint WHERE node = $1",
                &[&node],
            )?
            .get::<_, i64>(0) as u64;
        if checkpointed > head.0 {
            return Err(Error::Audit(format!(
                "audit_record: node {node}'s chain ends at record {} but a signed checkpoint \
                 covers record {checkpointed}: records were removed; run `lienthong audit \
                 verify --store …` before serving",
                head.0
            )));
        }
        let mut periods = HashSet::new();
        let now = clock::now();
        for month in [period::of(&now), period::after(&period::of(&now))] {
            period::ensure(&mut client, &month)?;
            periods.insert(month);
        }
        let insert = client.prepare(INSERT)?;
        Ok(Self {
            client,
            insert,
            head,
            checkpointed,
            last_checkpoint: Instant::now(),
            periods,
        })
    }
}

/// The thread's state.
pub(super) struct Writer {
    pool: Arc<Pool>,
    node: String,
    key: Arc<SigningKey>,
    inbox: Receiver<Msg>,
    /// `None` after a failure, until the next group opens another.
    session: Option<Session>,
    /// When opening a session last failed.
    failed_at: Option<Instant>,
    /// Why the writer stopped for good, once it has.
    stopped: Option<String>,
}

/// One job of a group: its ack, and how many records it holds.
type Ack = (oneshot::Sender<std::result::Result<u64, String>>, usize);

impl Writer {
    pub(super) fn new(
        pool: Arc<Pool>,
        node: &str,
        key: Arc<SigningKey>,
        session: Session,
        inbox: Receiver<Msg>,
    ) -> Self {
        Self {
            pool,
            node: node.to_owned(),
            key,
            inbox,
            session: Some(session),
            failed_at: None,
            stopped: None,
        }
    }

    /// Commits groups until told to close or every handle is dropped;
    /// then what was queued, and a last checkpoint.
    pub(super) fn run(&mut self) {
        let mut closing = false;
        while !closing {
            let first = match self.inbox.recv_timeout(CHECKPOINT_EVERY) {
                Ok(Msg::Job { entries, done }) => (entries, done),
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.commit(Vec::new(), Vec::new(), false);
                    continue;
                }
            };
            let (mut entries, done) = first;
            let mut acks = vec![(done, entries.len())];
            while entries.len() < GROUP_RECORDS {
                match self.inbox.try_recv() {
                    Ok(Msg::Job {
                        entries: more,
                        done,
                    }) => {
                        acks.push((done, more.len()));
                        entries.extend(more);
                    }
                    Ok(Msg::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(entries, acks, false);
        }
        // What was sent before the close, then the last checkpoint.
        while let Ok(Msg::Job { entries, done }) = self.inbox.try_recv() {
            let n = entries.len();
            self.commit(entries, vec![(done, n)], false);
        }
        self.commit(Vec::new(), Vec::new(), true);
    }

    /// Commits `entries` (the records of the jobs `acks` answers, in order)
    /// with a checkpoint if one is due (or `last`), and acks each job; with
    /// no entries, signs a checkpoint alone if records are not yet covered.
    fn commit(&mut self, entries: Vec<AuditEntry>, acks: Vec<Ack>, last: bool) {
        let started = Instant::now();
        let (node, key) = (self.node.clone(), self.key.clone());
        let outcome = self.session().and_then(|session| {
            let head = session.head;
            let done = write(session, &node, &key, &entries, last)?;
            Ok((head, done))
        });
        match outcome {
            Ok((before, head)) => {
                if !entries.is_empty() {
                    metrics::histogram!(AUDIT_COMMIT).record(started.elapsed().as_secs_f64());
                    metrics::counter!(AUDIT_RECORDS).increment(head.0 - before.0);
                }
                let mut seq = before.0;
                for (done, records) in acks {
                    seq += records as u64;
                    let _ = done.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = entries.len(), "audit commit failed; the requests are refused");
                if matches!(e, Error::AuditNodeTaken { .. }) {
                    self.stopped = Some(e.to_string());
                }
                self.session = None;
                for (done, _) in acks {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }

    /// The session, opened again after a failure (at most once every
    /// [`RETRY_AFTER`]).
    fn session(&mut self) -> Result<&mut Session> {
        if let Some(why) = &self.stopped {
            return Err(Error::Audit(why.clone()));
        }
        if self.session.is_none() {
            if self.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return Err(Error::Audit(
                    "the audit log's database cannot be reached".into(),
                ));
            }
            match Session::open(&self.pool, &self.node) {
                Ok(session) => {
                    tracing::info!(seq = session.head.0, "audit session opened again");
                    self.failed_at = None;
                    self.session = Some(session);
                }
                Err(e) => {
                    self.failed_at = Some(Instant::now());
                    return Err(e);
                }
            }
        }
        self.session.as_mut().ok_or(Error::Task)
    }
}

/// Chains `entries` after the session's head and commits them in one
/// statement, with a checkpoint if one is due or this is the `last` commit
/// (with no entries, only if records are not yet covered); the new head.
fn write(
    session: &mut Session,
    node: &str,
    key: &SigningKey,
    entries: &[AuditEntry],
    last: bool,
) -> Result<(u64, Hash)> {
    let due = last || session.last_checkpoint.elapsed() >= CHECKPOINT_EVERY;
    if entries.is_empty() && (!due || session.checkpointed == session.head.0) {
        return Ok(session.head);
    }
    let time = clock::now();
    let month = period::of(&time);
    if !session.periods.contains(&month) {
        // This month's partitions, and the next month's ahead: creating one
        // locks the parent table, better done a month early than at midnight.
        for month in [month.clone(), period::after(&month)] {
            period::ensure(&mut session.client, &month)?;
            session.periods.insert(month);
        }
    }
    let mut columns = Columns::with_capacity(entries.len());
    let mut head = session.head;
    let mut bytes = Vec::with_capacity(512);
    for entry in entries {
        bytes.clear();
        encode_entry(entry, &mut bytes);
        let seq = head.0 + 1;
        let hash = chain_hash(seq, &time, &bytes, &head.1);
        columns.push(seq, entry, head.1, hash);
        head = (seq, hash);
    }
    let checkpoint = due.then(|| sign(key, head, &time));
    let (c_seq, c_hash, c_sig) = match &checkpoint {
        Some(c) => (c.seq as i64, c.hash.to_vec(), c.signature.clone()),
        None => (0, Vec::new(), Vec::new()),
    };
    let c = &columns;
    session.client.execute(
        &session.insert,
        &[
            &month,
            &node,
            &time,
            &c.seq,
            &c.agency,
            &c.operation,
            &c.purpose,
            &c.pids,
            &c.fields,
            &c.decision,
            &c.outcome,
            &c.request_id,
            &c.trace_id,
            &c.request_hash,
            &c.response_hash,
            &c.hidden_until,
            &c.prev_hash,
            &c.hash,
            &c.index_seq,
            &c.index_pid,
            &c_seq,
            &c_hash,
            &c_sig,
            &checkpoint.is_some(),
        ],
    )?;
    session.head = head;
    if let Some(c) = checkpoint {
        session.checkpointed = c.seq;
        session.last_checkpoint = Instant::now();
    }
    Ok(head)
}

/// A group's rows as one array a column, as the statement takes them.
struct Columns<'a> {
    seq: Vec<i64>,
    agency: Vec<&'a str>,
    operation: Vec<&'a str>,
    purpose: Vec<&'a str>,
    pids: Vec<&'a str>,
    fields: Vec<&'a str>,
    decision: Vec<&'static str>,
    outcome: Vec<&'a str>,
    request_id: Vec<&'a str>,
    trace_id: Vec<&'a str>,
    request_hash: Vec<&'a [u8]>,
    response_hash: Vec<&'a [u8]>,
    hidden_until: Vec<Option<&'a str>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    /// The citizen index: a row for each citizen a record names.
    index_seq: Vec<i64>,
    index_pid: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            agency: Vec::with_capacity(n),
            operation: Vec::with_capacity(n),
            purpose: Vec::with_capacity(n),
            pids: Vec::with_capacity(n),
            fields: Vec::with_capacity(n),
            decision: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            trace_id: Vec::with_capacity(n),
            request_hash: Vec::with_capacity(n),
            response_hash: Vec::with_capacity(n),
            hidden_until: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            index_seq: Vec::with_capacity(n),
            index_pid: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, seq: u64, e: &'a AuditEntry, prev: Hash, hash: Hash) {
        self.seq.push(seq as i64);
        self.agency.push(&e.agency);
        self.operation.push(&e.operation);
        self.purpose.push(&e.purpose);
        self.pids.push(&e.pids);
        self.fields.push(&e.fields);
        self.decision.push(e.decision.as_str());
        self.outcome.push(&e.outcome);
        self.request_id.push(&e.request_id);
        self.trace_id.push(&e.trace_id);
        self.request_hash.push(&e.request_hash);
        self.response_hash.push(&e.response_hash);
        self.hidden_until.push(e.hidden_until.as_deref());
        self.prev_hash.push(prev.to_vec());
        self.hash.push(hash.to_vec());
        for pid in pids_of(&e.pids) {
            self.index_seq.push(seq as i64);
            self.index_pid.push(pid);
        }
    }
}
