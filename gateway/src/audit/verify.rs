//! `lienthong audit verify`: walks the chain and the checkpoints and names
//! the first record that was edited, removed or moved, or a cut tail.
//!
//! ```text
//! for each frame, segment by segment:
//!                                reads as a frame          else unreadable
//! for each record, in log order: seq = previous + 1        else moved (stored
//!                                                          later) or removed
//!                                hash = SHA-256(contents)  else edited
//!                                prev_hash = previous hash else unchained
//! for each checkpoint:           signature is the gateway's   else forged
//!                                seq ≤ last record            else tail cut
//!                                hash = that record's hash    else rewritten
//! the citizen index, up to the last record it covers:
//!                                every entry is a Pid its record names,
//!                                at the record's place,
//!                                and none is missing      else tampered
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::index::{self, index_path, indexed, pids_of};
use super::record::{Checkpoint, GENESIS, Hash, checkpoint_message};
use super::segment::{Cursor, Frame, Position, Step};
use crate::error::{Error, Result};
use crate::signing::{Context, VerifyingKey};

/// The index rows readers use: those of live runs (a merge's target fills
/// in unread; its retired sources are read no more).
const LIVE: &str = "run IN (SELECT run FROM audit_run WHERE state = 'live')";

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
    /// Bytes the gateway found after the last whole record when it started
    /// (a write a crash cut short, or an edit) and moved aside into these
    /// files: not in the chain, kept for whoever investigates.
    pub set_aside: Vec<PathBuf>,
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
    /// Record `seq` is stored after a later record.
    Moved { seq: u64 },
    /// The bytes where record `seq` should be are not a well-formed frame.
    Unreadable { seq: u64 },
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
            Self::Moved { seq } => write!(
                f,
                "record {seq} was moved: it is stored after a later record"
            ),
            Self::Unreadable { seq } => write!(
                f,
                "record {seq} does not read: it was edited, or a crash cut its write short \
                 (the gateway sets such bytes aside when it starts)"
            ),
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

/// A record's number and hash kept away from the machine (from an earlier
/// `audit verify`): checks what signed checkpoints in the file cannot,
/// that nobody removed the tail together with its checkpoints.
pub type Anchor = (u64, Hash);

/// Verifies the log in the directory `dir` against the gateway's public
/// `key`, and the citizen index beside it if there is one (a missing index
/// is rebuilt from the log when the gateway starts).
pub fn verify(dir: &Path, key: &VerifyingKey) -> Result<AuditReport> {
    verify_anchored(dir, key, None)
}

/// How often a frame that does not read is read again before it counts as
/// damaged: a gateway appending meanwhile finishes a write in well under
/// this.
const REREADS: u32 = 5;

/// [`verify`], and checks that the log still holds record `anchor.0` with
/// hash `anchor.1`.
pub fn verify_anchored(
    dir: &Path,
    key: &VerifyingKey,
    anchor: Option<Anchor>,
) -> Result<AuditReport> {
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no audit log here"),
        });
    }
    // The index first, in one snapshot: the log only grows, so every
    // record the snapshot covers is there when the walk reaches it.
    let index = if index_path(dir).exists() {
        let conn = index::open_reader(dir)?;
        conn.execute_batch("BEGIN")?;
        Some(conn)
    } else {
        None
    };
    let mut check = match &index {
        Some(conn) => Some(IndexCheck::new(conn)?),
        None => None,
    };
    let mut stmt = match &index {
        Some(conn) => Some(conn.prepare(&format!(
            "SELECT seq, pid, pos FROM audit_pid WHERE {LIVE} AND seq <= ?1 ORDER BY seq, pid"
        ))?),
        None => None,
    };
    let mut rows = match (&mut stmt, &check) {
        (Some(stmt), Some(c)) => Some(stmt.query([c.through as i64])?),
        _ => None,
    };

    let mut report = AuditReport {
        records: 0,
        checkpoints: 0,
        checkpointed: 0,
        checkpointed_hash: None,
        problem: None,
        set_aside: set_aside(dir)?,
    };
    let index = check.as_mut().zip(rows.as_mut());
    let mut walked = match walk(dir, anchor, index, &mut report)? {
        Ok(walked) => walked,
        Err(problem) => {
            report.problem = Some(problem);
            return Ok(report);
        }
    };
    report.problem = checkpoints_problem(dir, key, &mut walked, &mut report)?
        .or_else(|| anchor.and_then(|anchor| anchor_problem(anchor, &walked)));
    if report.problem.is_some() {
        return Ok(report);
    }
    if let (Some(check), Some(rows)) = (check, rows) {
        report.problem = index_problem(check, rows, walked.last.0)?;
    }
    Ok(report)
}

/// What the walk of the chain found.
struct Walk {
    /// The last record's number and hash.
    last: (u64, Hash),
    /// Every checkpoint, in order.
    checkpoints: Vec<Checkpoint>,
    /// The hash of the record each checkpoint frame follows (the one it
    /// signs, in a log as written): checkpoints are few, records are not.
    seen: HashMap<u64, Hash>,
    /// The anchor's record's hash, if the walk met it.
    anchored: Option<Hash>,
}

/// Walks every frame from the start, checking each record's number, hash
/// and link, and the index's entries for it as it goes; counts the records
/// in `report`. The first record out of place is the problem.
fn walk(
    dir: &Path,
    anchor: Option<Anchor>,
    mut index: Option<(&mut IndexCheck, &mut rusqlite::Rows<'_>)>,
    report: &mut AuditReport,
) -> Result<std::result::Result<Walk, Problem>> {
    let mut walked = Walk {
        last: (0, GENESIS),
        checkpoints: Vec::new(),
        seen: HashMap::new(),
        anchored: None,
    };
    let mut cursor = Cursor::new(dir, Position::START, None, 1 << 20);
    let mut rereads = 0;
    loop {
        let last = walked.last;
        let (at, frame) = match cursor.step()? {
            Step::Frame(at, frame) => (at, frame),
            Step::End(_) => return Ok(Ok(walked)),
            Step::Bad { at, .. } if rereads < REREADS => {
                rereads += 1;
                std::thread::sleep(Duration::from_millis(50));
                cursor = Cursor::new(dir, at, None, 1 << 20);
                continue;
            }
            Step::Bad { seq, .. } => {
                return Ok(Err(Problem::Unreadable {
                    seq: seq.unwrap_or(last.0 + 1),
                }));
            }
        };
        rereads = 0;
        let record = match frame {
            Frame::Record(r) => r,
            Frame::Checkpoint(c) => {
                walked.seen.insert(last.0, last.1);
                walked.checkpoints.push(c);
                continue;
            }
        };
        report.records += 1;
        let expected = last.0 + 1;
        if record.seq > expected {
            return Ok(Err(if stored_later(&mut cursor, expected)? {
                Problem::Moved { seq: expected }
            } else {
                Problem::Missing {
                    expected,
                    found: record.seq,
                }
            }));
        } else if record.seq < expected || record.expected_hash() != record.hash {
            return Ok(Err(Problem::Edited { seq: record.seq }));
        } else if record.prev_hash != last.1 {
            return Ok(Err(Problem::Unchained { seq: record.seq }));
        }
        if anchor.is_some_and(|(seq, _)| seq == record.seq) {
            walked.anchored = Some(record.hash);
        }
        if let Some((check, rows)) = &mut index {
            check.record(rows, record.seq, &record.entry.pids, at)?;
        }
        walked.last = (record.seq, record.hash);
    }
}

/// The first checkpoint that is forged, past the end of the chain, or
/// signs another hash than its record's; `report` says which checkpoints
/// hold.
fn checkpoints_problem(
    dir: &Path,
    key: &VerifyingKey,
    walked: &mut Walk,
    report: &mut AuditReport,
) -> Result<Option<Problem>> {
    let last = walked.last.0;
    report.checkpoints = walked.checkpoints.len();
    // A checkpoint stored away from the record it signs: read that record's
    // hash again.
    let elsewhere: HashSet<u64> = walked
        .checkpoints
        .iter()
        .map(|c| c.seq)
        .filter(|seq| *seq <= last && !walked.seen.contains_key(seq))
        .collect();
    if !elsewhere.is_empty() {
        walked.seen.extend(hashes_of(dir, &elsewhere)?);
    }
    for c in &walked.checkpoints {
        if !key.verify(
            Context::Checkpoint,
            &checkpoint_message(c.seq, &c.hash, &c.time),
            &c.signature,
        ) {
            return Ok(Some(Problem::CheckpointForged { seq: c.seq }));
        }
        if c.seq > last {
            return Ok(Some(Problem::TailCut { seq: c.seq, last }));
        }
        if walked.seen.get(&c.seq) != Some(&c.hash) {
            return Ok(Some(Problem::Rewritten { seq: c.seq }));
        }
        report.checkpointed = c.seq;
        report.checkpointed_hash = Some(c.hash);
    }
    Ok(None)
}

/// A record kept off the machine that the chain no longer holds as it was.
fn anchor_problem((seq, hash): Anchor, walked: &Walk) -> Option<Problem> {
    let last = walked.last.0;
    if seq > last {
        Some(Problem::TailCut { seq, last })
    } else if walked.anchored != Some(hash) {
        Some(Problem::Rewritten { seq })
    } else {
        None
    }
}

/// What is wrong with the index once the walk has reached `last`: it
/// covers records the log does not hold, lists a record for the wrong
/// citizen or place, or misses entries.
fn index_problem(
    mut check: IndexCheck,
    rows: rusqlite::Rows<'_>,
    last: u64,
) -> Result<Option<Problem>> {
    check.rest(rows)?;
    Ok(if check.through > last {
        Some(Problem::TailCut {
            seq: check.through,
            last,
        })
    } else if let Some(seq) = check.foreign {
        Some(Problem::IndexForeign { seq })
    } else if check.entries != check.implied {
        Some(Problem::IndexIncomplete {
            expected: check.implied,
            found: check.entries,
        })
    } else {
        None
    })
}

/// The hashes of records `seqs`, read from the log in `dir`.
fn hashes_of(dir: &Path, seqs: &HashSet<u64>) -> Result<HashMap<u64, Hash>> {
    let mut cursor = Cursor::new(dir, Position::START, None, 1 << 20);
    let mut found = HashMap::new();
    while let Step::Frame(_, frame) = cursor.step()? {
        if let Frame::Record(r) = frame
            && seqs.contains(&r.seq)
        {
            found.insert(r.seq, r.hash);
        }
    }
    Ok(found)
}

/// Whether record `seq` comes later in the log (it was moved, not removed).
fn stored_later(cursor: &mut Cursor, seq: u64) -> Result<bool> {
    loop {
        match cursor.step()? {
            Step::Frame(_, Frame::Record(r)) if r.seq == seq => return Ok(true),
            Step::Frame(..) => {}
            Step::Bad { .. } | Step::End(_) => return Ok(false),
        }
    }
}

/// The files the gateway moved a cut-short end of the log into.
fn set_aside(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("torn-") && n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The citizen index against the walk: its entries up to `through`, read
/// in record order beside the log.
struct IndexCheck {
    /// The last record it covers.
    through: u64,
    /// Its entries up to there, as read so far.
    entries: u64,
    /// The entries the records up to there imply.
    implied: u64,
    /// The first record it lists for a citizen the record does not name,
    /// or at a place the record is not.
    foreign: Option<u64>,
    /// An entry read ahead of the walk: (seq, pid, pos).
    pending: Option<(u64, i64, u64)>,
}

impl IndexCheck {
    fn new(conn: &Connection) -> Result<Self> {
        let (through, _) = indexed(conn)?;
        let beyond: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT seq FROM audit_pid WHERE {LIVE} AND seq > ?1 ORDER BY seq LIMIT 1"
                ),
                [through as i64],
                |r| r.get(0),
            )
            .optional()?;
        Ok(Self {
            through,
            entries: 0,
            implied: 0,
            foreign: beyond.map(|s| s as u64),
            pending: None,
        })
    }

    fn next(&mut self, rows: &mut rusqlite::Rows<'_>) -> Result<Option<(u64, i64, u64)>> {
        if let Some(row) = self.pending.take() {
            return Ok(Some(row));
        }
        Ok(match rows.next()? {
            Some(r) => Some((
                r.get::<_, i64>(0)? as u64,
                r.get(1)?,
                r.get::<_, i64>(2)? as u64,
            )),
            None => None,
        })
    }

    fn foreign(&mut self, seq: u64) {
        self.foreign = Some(self.foreign.map_or(seq, |s| s.min(seq)));
    }

    /// Checks the entries for record `seq`, which names `pids` and starts
    /// at `at`.
    fn record(
        &mut self,
        rows: &mut rusqlite::Rows<'_>,
        seq: u64,
        pids: &str,
        at: Position,
    ) -> Result<()> {
        if seq > self.through {
            return Ok(());
        }
        let named = pids_of(pids);
        self.implied += named.len() as u64;
        while let Some(row) = self.next(rows)? {
            let (s, pid, pos) = row;
            if s > seq {
                self.pending = Some(row);
                break;
            }
            self.entries += 1;
            if s < seq || !named.contains(&pid) || pos != at.pack() {
                self.foreign(s);
            }
        }
        Ok(())
    }

    /// Entries left once the walk ended list records the log lacks.
    fn rest(&mut self, mut rows: rusqlite::Rows<'_>) -> Result<()> {
        while let Some((s, _, _)) = self.next(&mut rows)? {
            self.entries += 1;
            self.foreign(s);
        }
        Ok(())
    }
}
