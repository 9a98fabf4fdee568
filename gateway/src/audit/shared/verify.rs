//! `lienthong audit verify --store postgres://…`: walks every replica's
//! chain, its checkpoints and its part of the citizen index, in one
//! snapshot of the database, and names the first record that was edited,
//! removed or moved in each chain.
//!
//! ```text
//! one snapshot (exported by the first session, taken by the other two):
//!   records      audit_record WHERE node = N ORDER BY seq
//!   checkpoints  audit_checkpoint WHERE node = N ORDER BY seq   merged
//!   index        audit_pid WHERE node = N ORDER BY seq, pid      as it goes
//!
//! for each record:  seq = previous + 1             else removed (or moved)
//!                   hash = SHA-256(contents)       else edited
//!                   prev_hash = previous hash      else unchained
//!                   at > previous at               else moved in the order
//!                   index rows = the Pids it names, at its `at`
//! for each checkpoint: signed by the gateway's key, on a record the chain
//!                   holds with that hash            else forged, cut, rewritten
//! each anchor NODE:SEQ:HASH: the chain holds it     else cut or rewritten
//! ```
//!
//! A chain whose first months were detached starts after what
//! `audit_detached` says they ended with: its first record must follow that
//! seq and name that hash; the detached months are verified on their own
//! (a restored copy of the partitions) against the same row.

use std::fmt;

use fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, Row, RowIter, Transaction};

use super::super::index::pids_of;
use super::super::record::{GENESIS, Hash, checkpoint_message};
use super::super::verify::Problem;
use super::{RECORD_COLUMNS, record_of};
use crate::error::{Error, Result};
use crate::registry::postgres::pool::Pool;
use crate::signing::{Context, VerifyingKey};

/// A record's number and hash in one replica's chain, kept off the machine
/// (`NODE:SEQ:HASH`, from an earlier `audit verify --store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAnchor {
    /// The replica whose chain holds it.
    pub node: String,
    /// The record's number.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

/// What verification found in one replica's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The replica (`--node-name`).
    pub node: String,
    /// Records read.
    pub records: u64,
    /// The first record held: 1, or the one after the detached months.
    pub first: u64,
    /// Checkpoints that hold.
    pub checkpoints: u64,
    /// The last record a valid checkpoint covers, and its hash.
    pub checkpointed: u64,
    /// That record's hash.
    pub checkpointed_hash: Option<Hash>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Some(p) => write!(f, "chain {}: {p}", self.node),
            None => write!(
                f,
                "chain {}: {} records from {}, checkpointed to {}",
                self.node, self.records, self.first, self.checkpointed
            ),
        }
    }
}

/// Every chain's nodes: those with records (a loose index scan), with
/// checkpoints, or with detached months.
const NODES: &str = "WITH RECURSIVE n AS (
    SELECT min(node) AS node FROM audit_record
    UNION ALL
    SELECT (SELECT min(node) FROM audit_record WHERE node > n.node) FROM n WHERE n.node IS NOT NULL
 )
 SELECT node FROM n WHERE node IS NOT NULL
 UNION SELECT node FROM audit_checkpoint
 UNION SELECT node FROM audit_detached
 ORDER BY 1";

/// Verifies every chain of the shared audit log at `url` against the
/// gateway's public `key`, and each of `anchors`; one report a chain.
pub fn verify_shared(
    url: &str,
    key: &VerifyingKey,
    anchors: &[ChainAnchor],
) -> Result<Vec<ChainReport>> {
    let pool = Pool::from_url(url, 3)?;
    let (mut a, mut b, mut c) = (pool.connect()?, pool.connect()?, pool.connect()?);
    // A walk of a long log is one long statement on each session, read in
    // turns: no statement or idle timeout of the pool's may cut it.
    for session in [&mut a, &mut b, &mut c] {
        session.batch_execute(
            "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0",
        )?;
    }
    let mut records = snapshot(&mut a)?;
    let id: String = records
        .query_one("SELECT pg_export_snapshot()", &[])?
        .get(0);
    let mut checkpoints = snapshot_of(&mut b, &id)?;
    let mut index = snapshot_of(&mut c, &id)?;
    let mut nodes: Vec<String> = records
        .query(NODES, &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for anchor in anchors {
        if !nodes.contains(&anchor.node) {
            nodes.push(anchor.node.clone());
        }
    }
    let mut reports = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut chain = Chain::start(&mut records, &node)?;
        let anchored: Vec<&ChainAnchor> = anchors.iter().filter(|a| a.node == node).collect();
        let found = chain.walk(&mut records, &mut checkpoints, &mut index, key, &anchored)?;
        chain.report.problem = found;
        reports.push(chain.report);
    }
    Ok(reports)
}

/// A read-only transaction whose snapshot others can take.
fn snapshot(client: &mut Client) -> Result<Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
}

/// A read-only transaction in the exported snapshot `id`.
fn snapshot_of<'c>(client: &'c mut Client, id: &str) -> Result<Transaction<'c>> {
    let mut tx = snapshot(client)?;
    // `id` is what pg_export_snapshot returned: hex digits and dashes.
    if !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::Audit(format!("unexpected snapshot id {id:?}")));
    }
    tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{id}'"))?;
    Ok(tx)
}

/// One chain's walk.
struct Chain {
    report: ChainReport,
    /// The last record's number and hash (what the detached months ended
    /// with, before the first).
    last: (u64, Hash),
    last_at: i64,
}

impl Chain {
    fn start(tx: &mut Transaction<'_>, node: &str) -> Result<Self> {
        let detached = tx.query_opt(
            "SELECT last_seq, last_hash FROM audit_detached WHERE node = $1
             ORDER BY last_seq DESC LIMIT 1",
            &[&node],
        )?;
        let last = match detached {
            Some(row) => (
                row.get::<_, i64>(0) as u64,
                row.get::<_, &[u8]>(1).try_into().unwrap_or(GENESIS),
            ),
            None => (0, GENESIS),
        };
        Ok(Self {
            report: ChainReport {
                node: node.to_owned(),
                records: 0,
                first: last.0 + 1,
                checkpoints: 0,
                checkpointed: 0,
                checkpointed_hash: None,
                problem: None,
            },
            last,
            last_at: i64::MIN,
        })
    }

    /// Walks the chain, its checkpoints and its index rows side by side;
    /// the first problem.
    fn walk(
        &mut self,
        records: &mut Transaction<'_>,
        checkpoints: &mut Transaction<'_>,
        index: &mut Transaction<'_>,
        key: &VerifyingKey,
        anchors: &[&ChainAnchor],
    ) -> Result<Option<Problem>> {
        let node = self.report.node.clone();
        let mut rows = records.query_raw(
            &format!("SELECT {RECORD_COLUMNS} FROM audit_record WHERE node = $1 ORDER BY seq"),
            [&node],
        )?;
        let mut signed = Pending::new(checkpoints.query_raw(
            "SELECT seq, hash, time, signature FROM audit_checkpoint WHERE node = $1 ORDER BY seq",
            [&node],
        )?)?;
        let mut indexed = Pending::new(index.query_raw(
            "SELECT seq, pid, at FROM audit_pid WHERE node = $1 ORDER BY seq, pid",
            [&node],
        )?)?;
        // Checkpoints of detached months were checked with those months.
        while signed.take_through(self.last.0)?.is_some() {}
        while let Some(row) = rows.next()? {
            let (r, at) = record_of(&row)?;
            self.report.records += 1;
            let expected = self.last.0 + 1;
            if r.seq > expected {
                return Ok(Some(Problem::Missing {
                    expected,
                    found: r.seq,
                }));
            } else if r.seq < expected || r.expected_hash() != r.hash {
                return Ok(Some(Problem::Edited { seq: r.seq }));
            } else if r.prev_hash != self.last.1 {
                return Ok(Some(Problem::Unchained { seq: r.seq }));
            } else if at <= self.last_at {
                return Ok(Some(Problem::Moved { seq: r.seq }));
            }
            if anchors.iter().any(|a| a.seq == r.seq && a.hash != r.hash) {
                return Ok(Some(Problem::Rewritten { seq: r.seq }));
            }
            // The checkpoints up to this record.
            while let Some(c) = signed.take_through(r.seq)? {
                let (seq, hash) = checkpoint(&c, key)?;
                if seq < r.seq {
                    // Its record is not in the chain: reported as missing.
                    continue;
                }
                if hash != Some(r.hash) {
                    return Ok(Some(match hash {
                        None => Problem::CheckpointForged { seq },
                        Some(_) => Problem::Rewritten { seq },
                    }));
                }
                self.report.checkpoints += 1;
                self.report.checkpointed = seq;
                self.report.checkpointed_hash = hash;
            }
            // Its index rows: exactly the Pids it names, at its `at`.
            let names = pids_of(&r.entry.pids);
            let mut listed = 0;
            while let Some(i) = indexed.take_through(r.seq)? {
                let seq = i.get::<_, i64>(0) as u64;
                let pid: i64 = i.get(1);
                if seq < r.seq || !names.contains(&pid) || i.get::<_, i64>(2) != at {
                    return Ok(Some(Problem::IndexForeign { seq }));
                }
                listed += 1;
            }
            if listed != names.len() as u64 {
                return Ok(Some(Problem::IndexIncomplete {
                    expected: names.len() as u64,
                    found: listed,
                }));
            }
            self.last = (r.seq, r.hash);
            self.last_at = at;
        }
        let last = self.last.0;
        if let Some(c) = signed.take_through(u64::MAX)? {
            let (seq, hash) = checkpoint(&c, key)?;
            return Ok(Some(match hash {
                None => Problem::CheckpointForged { seq },
                Some(_) => Problem::TailCut { seq, last },
            }));
        }
        if let Some(i) = indexed.take_through(u64::MAX)? {
            return Ok(Some(Problem::IndexForeign {
                seq: i.get::<_, i64>(0) as u64,
            }));
        }
        Ok(anchors
            .iter()
            .find(|a| a.seq > last)
            .map(|a| Problem::TailCut { seq: a.seq, last }))
    }
}

/// A checkpoint row's record number, and the hash it signs if the
/// signature is the gateway's (`None`: forged).
fn checkpoint(row: &Row, key: &VerifyingKey) -> Result<(u64, Option<Hash>)> {
    let seq = row.get::<_, i64>(0) as u64;
    let hash: Hash = row
        .get::<_, &[u8]>(1)
        .try_into()
        .map_err(|_| Error::Audit(format!("checkpoint {seq}: its hash is not 32 bytes")))?;
    let time: &str = row.get(2);
    let signature: &[u8] = row.get(3);
    let valid = key.verify(
        Context::Checkpoint,
        &checkpoint_message(seq, &hash, time),
        signature,
    );
    Ok((seq, valid.then_some(hash)))
}

/// Rows in `seq` order (column 0), read one ahead.
struct Pending<'a> {
    rows: RowIter<'a>,
    next: Option<Row>,
}

impl<'a> Pending<'a> {
    fn new(mut rows: RowIter<'a>) -> Result<Self> {
        let next = rows.next()?;
        Ok(Self { rows, next })
    }

    /// The next row if its seq is at most `seq`.
    fn take_through(&mut self, seq: u64) -> Result<Option<Row>> {
        match &self.next {
            Some(row) if row.get::<_, i64>(0) as u64 <= seq => {
                let row = self.next.take();
                self.next = self.rows.next()?;
                Ok(row)
            }
            _ => Ok(None),
        }
    }
}
