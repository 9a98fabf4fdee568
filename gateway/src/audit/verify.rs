//! `lienthong audit verify`: walks the chain and the checkpoints and names
//! the first record that was edited, removed or moved, or a cut tail.
//!
//! ```text
//! for each record in seq order:  seq = previous + 1        else removed
//!                                prev_hash = previous hash else removed/moved
//!                                hash = SHA-256(contents)  else edited/moved
//! for each checkpoint:           signature is the gateway's   else forged
//!                                seq ≤ last record            else tail cut
//!                                hash = that record's hash    else rewritten
//! the citizen index, up to the last record it covers:
//!                                every entry is a Pid its record names,
//!                                and none is missing      else tampered
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::index::{self, index_path, pids_of};
use super::record::{GENESIS, Hash, checkpoint_message};
use super::store;
use crate::error::Result;
use crate::signing::{Context, VerifyingKey};

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// Checkpoints read.
    pub checkpoints: usize,
    /// The last record a valid checkpoint covers.
    pub checkpointed: u64,
    /// That record's hash, as the checkpoint signs it (to keep elsewhere).
    pub checkpointed_hash: Option<Hash>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Record `seq`'s contents do not match its hash.
    Edited { seq: u64 },
    /// Record `expected` is missing: the next one stored is `found`.
    Missing { expected: u64, found: u64 },
    /// Record `seq` does not follow the record stored before it.
    Unchained { seq: u64 },
    /// A row is not a well-formed record.
    Unreadable { seq: Option<i64> },
    /// The checkpoint at `seq` is not signed by this gateway's key.
    CheckpointForged { seq: u64 },
    /// A signed checkpoint (or the citizen index, or the anchor given)
    /// covers record `seq` but the log ends at `last`.
    TailCut { seq: u64, last: u64 },
    /// The log was rewritten: the hash of record `seq` differs from the one
    /// its signed checkpoint (or the anchor given) holds.
    Rewritten { seq: u64 },
    /// The citizen index lists record `seq` for a citizen it does not name.
    IndexForeign { seq: u64 },
    /// The citizen index lacks entries the log implies: citizens would not
    /// see some accesses.
    IndexIncomplete { expected: u64, found: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { seq } => write!(
                f,
                "record {seq} was edited or moved: its contents do not match its hash"
            ),
            Self::Missing { expected, found } => write!(
                f,
                "record {expected} was removed: the record stored after {} is {found}",
                expected - 1
            ),
            Self::Unchained { seq } => write!(
                f,
                "record {seq} does not follow record {}: a record was removed or the order changed",
                seq - 1
            ),
            Self::Unreadable { seq: Some(seq) } => {
                write!(f, "record {seq} was edited: a column does not read")
            }
            Self::Unreadable { seq: None } => write!(f, "a record's seq was edited"),
            Self::CheckpointForged { seq } => write!(
                f,
                "the checkpoint at record {seq} is not signed by this gateway's key"
            ),
            Self::TailCut { seq, last } => write!(
                f,
                "the tail was cut: record {seq} was recorded (a signed checkpoint, the citizen index or the anchor covers it) but the log ends at record {last}"
            ),
            Self::Rewritten { seq } => write!(
                f,
                "the log was rewritten up to record {seq}: its hash differs from the signed checkpoint's or the anchor's"
            ),
            Self::IndexForeign { seq } => write!(
                f,
                "the citizen index lists record {seq} for a citizen the record does not name"
            ),
            Self::IndexIncomplete { expected, found } => write!(
                f,
                "the citizen index holds {found} entries where the log implies {expected}: \
                 entries were removed, hiding accesses from citizens"
            ),
        }
    }
}

/// What the citizen index holds, read before the walk.
struct IndexState {
    /// The last record it covers.
    through: u64,
    /// Its entries up to there.
    entries: u64,
    /// A record it lists for a citizen the record does not name.
    foreign: Option<u64>,
}

/// Reads the index attached to `conn` (inside its read transaction).
fn index_state(conn: &Connection) -> Result<IndexState> {
    let through: i64 = conn.query_row("SELECT through FROM idx.indexed WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let entries: i64 = conn.query_row(
        "SELECT count(*) FROM idx.audit_pid WHERE seq <= ?1",
        [through],
        |r| r.get(0),
    )?;
    let foreign: Option<i64> = conn
        .query_row(
            "SELECT p.seq FROM idx.audit_pid p LEFT JOIN audit a ON a.seq = p.seq
             WHERE p.seq > ?1 OR a.seq IS NULL
                OR instr(' ' || a.pids || ' ', printf(' %012d ', p.pid)) = 0
             LIMIT 1",
            [through],
            |r| r.get(0),
        )
        .optional()?;
    Ok(IndexState {
        through: through as u64,
        entries: entries as u64,
        foreign: foreign.map(|s| s as u64),
    })
}

/// A record's number and hash kept away from the machine (from an earlier
/// `audit verify`): checks what signed checkpoints in the file cannot,
/// that nobody removed the tail together with its checkpoints.
pub type Anchor = (u64, Hash);

/// Verifies the log at `path` against the gateway's public `key`, and the
/// citizen index beside it if there is one (a missing index is rebuilt from
/// the log when the gateway starts).
pub fn verify(path: &Path, key: &VerifyingKey) -> Result<AuditReport> {
    verify_anchored(path, key, None)
}

/// [`verify`], and checks that the log still holds record `anchor.0` with
/// hash `anchor.1`.
pub fn verify_anchored(
    path: &Path,
    key: &VerifyingKey,
    anchor: Option<Anchor>,
) -> Result<AuditReport> {
    let mut anchored: Option<Hash> = None;
    let conn = if index_path(path).exists() {
        index::open_reader(path)?
    } else {
        store::open_reader(path)?
    };
    // One snapshot for the index and the log, while a gateway may append.
    conn.execute_batch("BEGIN")?;
    let index = if index_path(path).exists() {
        Some(index_state(&conn)?)
    } else {
        None
    };
    let mut implied = 0u64;
    let checkpoints = store::checkpoints(&conn)?;
    let wanted: HashMap<u64, Hash> = checkpoints.iter().map(|c| (c.seq, c.hash)).collect();
    let mut seen: HashMap<u64, Hash> = HashMap::new();
    let mut report = AuditReport {
        records: 0,
        checkpoints: checkpoints.len(),
        checkpointed: 0,
        checkpointed_hash: None,
        problem: None,
    };
    let mut last: (u64, Hash) = (0, GENESIS);
    store::each_record(&conn, |read| {
        let record = match read {
            Ok(r) => r,
            Err(bad) => {
                report.problem = Some(Problem::Unreadable { seq: bad.seq });
                return false;
            }
        };
        report.records += 1;
        let problem = if record.seq != last.0 + 1 {
            Some(if record.seq > last.0 + 1 {
                Problem::Missing {
                    expected: last.0 + 1,
                    found: record.seq,
                }
            } else {
                Problem::Edited { seq: record.seq }
            })
        } else if record.expected_hash() != record.hash {
            Some(Problem::Edited { seq: record.seq })
        } else if record.prev_hash != last.1 {
            Some(Problem::Unchained { seq: record.seq })
        } else {
            None
        };
        if problem.is_some() {
            report.problem = problem;
            return false;
        }
        if wanted.contains_key(&record.seq) {
            seen.insert(record.seq, record.hash);
        }
        if anchor.is_some_and(|(seq, _)| seq == record.seq) {
            anchored = Some(record.hash);
        }
        if index.as_ref().is_some_and(|i| record.seq <= i.through) {
            implied += pids_of(&record.entry.pids).len() as u64;
        }
        last = (record.seq, record.hash);
        true
    })?;
    if report.problem.is_some() {
        return Ok(report);
    }
    for c in &checkpoints {
        if !key.verify(
            Context::Checkpoint,
            &checkpoint_message(c.seq, &c.hash, &c.time),
            &c.signature,
        ) {
            report.problem = Some(Problem::CheckpointForged { seq: c.seq });
            return Ok(report);
        }
        if c.seq > last.0 {
            report.problem = Some(Problem::TailCut {
                seq: c.seq,
                last: last.0,
            });
            return Ok(report);
        }
        if seen.get(&c.seq) != Some(&c.hash) {
            report.problem = Some(Problem::Rewritten { seq: c.seq });
            return Ok(report);
        }
        report.checkpointed = c.seq;
        report.checkpointed_hash = Some(c.hash);
    }
    if let Some((seq, hash)) = anchor {
        if seq > last.0 {
            report.problem = Some(Problem::TailCut { seq, last: last.0 });
            return Ok(report);
        }
        if anchored != Some(hash) {
            report.problem = Some(Problem::Rewritten { seq });
            return Ok(report);
        }
    }
    if let Some(index) = index {
        report.problem = if index.through > last.0 {
            Some(Problem::TailCut {
                seq: index.through,
                last: last.0,
            })
        } else if let Some(seq) = index.foreign {
            Some(Problem::IndexForeign { seq })
        } else if index.entries != implied {
            Some(Problem::IndexIncomplete {
                expected: implied,
                found: index.entries,
            })
        } else {
            None
        };
    }
    Ok(report)
}
