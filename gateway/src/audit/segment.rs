//! The audit log's files: numbered segments of frames, each filled with
//! zeros before its first frame is written.
//!
//! ```text
//! DIR/audit/
//!   00000001.seg   frames, then zeros to the end of the file
//!   00000002.seg   begun once 00000001.seg had no room for the next frame
//!   …              1 MiB, 2 MiB, … doubling up to 64 MiB
//!   index.db       the citizen index (derived: super::index)
//!
//! frame      = u32be(n) ‖ body[n]                    n = 0: no frame here (yet)
//! body       = 0x01 ‖ record  |  0x02 ‖ checkpoint
//! record     = u64be(seq) ‖ str(time) ‖ str(agency) ‖ str(operation) ‖ str(purpose)
//!              ‖ str(pids) ‖ str(fields) ‖ str(decision) ‖ str(outcome)
//!              ‖ str(request_id) ‖ str(trace_id) ‖ request_hash[32] ‖ response_hash[32]
//!              ‖ u8(hidden: 0 | 1) ‖ str(hidden_until) ‖ prev_hash[32] ‖ hash[32]
//! checkpoint = u64be(seq) ‖ hash[32] ‖ str(time) ‖ str(signature)
//! str(s)     = u32be(byte length) ‖ bytes
//! ```
//!
//! A record is stored once, here; nothing else holds a copy. Writing into
//! blocks the file already owns lets a group commit be one `pwrite` and one
//! `fdatasync` that commits no file-system metadata (a write that allocates
//! blocks makes the sync commit metadata too, which costs more:
//! `docs/benchmarks.md`), and the zeros tell a reader where the frames end.
//! Both the zeros and the frames go straight to the disk in whole blocks
//! where the file system allows it ([`super::segment_file`]). A segment is
//! prepared off the request path under a temporary name and renamed into
//! place, so a reader never sees half of one.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{AuditEntry, AuditRecord, Checkpoint, Decision, Hash};
use super::segment_file;
use crate::error::{Error, Result};

/// The first segment's size; each next one doubles, up to [`MAX_SEGMENT`].
const FIRST_SEGMENT: u64 = 1 << 20;
/// The largest segment prepared ahead (a larger frame gets a segment of
/// its own size).
const MAX_SEGMENT: u64 = 64 << 20;

const RECORD: u8 = 1;
const CHECKPOINT: u8 = 2;

/// Where a frame starts: its segment and its byte offset in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) segment: u32,
    pub(crate) offset: u64,
}

impl Position {
    /// The log's first frame.
    pub(crate) const START: Self = Self {
        segment: 1,
        offset: 0,
    };

    /// One integer, for the index and for sharing between threads:
    /// `segment << 40 | offset`.
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.segment) << 40) | self.offset
    }

    /// The position [`Position::pack`] made `packed` from.
    pub(crate) fn unpack(packed: u64) -> Self {
        Self {
            segment: (packed >> 40) as u32,
            offset: packed & ((1 << 40) - 1),
        }
    }
}

/// What a frame holds.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    Record(Box<AuditRecord>),
    Checkpoint(Checkpoint),
}

/// Segment `number`'s file in the log directory `dir`.
pub(crate) fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}.seg"))
}

/// The size segment `number` is prepared with.
pub(crate) fn segment_size(number: u32) -> u64 {
    (FIRST_SEGMENT << number.saturating_sub(1).min(6)).min(MAX_SEGMENT)
}

/// The numbers of the segments in `dir`, in order.
pub(crate) fn segments(dir: &Path) -> Result<Vec<u32>> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number` of at least `size` bytes of zeros (rounded up
/// to a whole block), durably: written under a temporary name, synced,
/// renamed into place, and the directory synced.
pub(crate) fn prepare(dir: &Path, number: u32, size: u64) -> Result<()> {
    let path = segment_path(dir, number);
    let temporary = path.with_extension("seg.tmp");
    segment_file::create_zeroed(&temporary, size)?
        .sync_all()
        .map_err(Error::io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(Error::io(&path))?;
    sync_dir(dir)
}

/// Makes the directory's entries (a new or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// Appends `record` as a frame to `out` (the writer appends from parts).
#[cfg(test)]
pub(crate) fn encode_record(r: &AuditRecord, out: &mut Vec<u8>) {
    let mut entry = Vec::with_capacity(256);
    super::record::encode_entry(&r.entry, &mut entry);
    encode_record_parts(r.seq, &r.time, &entry, &r.prev_hash, &r.hash, out);
}

/// Appends a record frame to `out` from its parts: `entry` as
/// [`encode_entry`] made it.
pub(crate) fn encode_record_parts(
    seq: u64,
    time: &str,
    entry: &[u8],
    prev: &Hash,
    hash: &Hash,
    out: &mut Vec<u8>,
) {
    frame(out, RECORD, |b| {
        b.extend_from_slice(&seq.to_be_bytes());
        str(b, time.as_bytes());
        b.extend_from_slice(entry);
        b.extend_from_slice(prev);
        b.extend_from_slice(hash);
    });
}

/// Appends checkpoint `c` as a frame to `out`.
pub(crate) fn encode_checkpoint(c: &Checkpoint, out: &mut Vec<u8>) {
    frame(out, CHECKPOINT, |b| {
        b.extend_from_slice(&c.seq.to_be_bytes());
        b.extend_from_slice(&c.hash);
        str(b, c.time.as_bytes());
        str(b, &c.signature);
    });
}

fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    body(out);
    let n = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&n.to_be_bytes());
}

fn str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads a frame's body; a body that does not read fails with the record
/// number it starts with, if even that reads.
pub(crate) fn decode(body: &[u8]) -> std::result::Result<Frame, Option<u64>> {
    let mut r = Bytes(body);
    let kind = r.u8().ok_or(None)?;
    let seq = r.u64().ok_or(None)?;
    let frame = (|| match kind {
        RECORD => {
            let mut s = || r.string();
            let time = s()?;
            let agency = s()?;
            let operation = s()?;
            let purpose = s()?;
            let pids = s()?;
            let fields = s()?;
            let decision = Decision::parse(&s()?)?;
            let outcome = s()?;
            let request_id = s()?;
            let trace_id = s()?;
            let request_hash = r.hash()?;
            let response_hash = r.hash()?;
            let hidden = r.u8()?;
            let until = r.string()?;
            let hidden_until = match hidden {
                0 if until.is_empty() => None,
                1 => Some(until),
                _ => return None,
            };
            let prev_hash = r.hash()?;
            let hash = r.hash()?;
            Some(Frame::Record(Box::new(AuditRecord {
                seq,
                time,
                entry: AuditEntry {
                    agency,
                    operation,
                    purpose,
                    pids,
                    fields,
                    decision,
                    outcome,
                    request_id,
                    trace_id,
                    request_hash,
                    response_hash,
                    hidden_until,
                },
                prev_hash,
                hash,
            })))
        }
        CHECKPOINT => Some(Frame::Checkpoint(Checkpoint {
            seq,
            hash: r.hash()?,
            time: r.string()?,
            signature: r.bytes()?.to_vec(),
        })),
        _ => None,
    })();
    match frame {
        Some(f) if r.0.is_empty() => Ok(f),
        _ => Err(Some(seq)),
    }
}

/// A record frame's number and its `pids` column, read from the frame's
/// `body` without decoding the rest (the citizen index needs no more of
/// each record); `None` for a checkpoint. Fails, as [`decode`] does, where
/// the kind, the number or the fields up to the Pids do not read; what
/// follows the Pids is not looked at (`audit verify` reads every byte).
pub(crate) fn record_pids(body: &[u8]) -> std::result::Result<Option<(u64, &str)>, Option<u64>> {
    let mut r = Bytes(body);
    let kind = r.u8().ok_or(None)?;
    let seq = r.u64().ok_or(None)?;
    match kind {
        CHECKPOINT => Ok(None),
        // time, agency, operation and purpose come before the pids.
        RECORD => (|| {
            for _ in 0..4 {
                r.bytes()?;
            }
            std::str::from_utf8(r.bytes()?).ok()
        })()
        .map(|pids| Some((seq, pids)))
        .ok_or(Some(seq)),
        _ => Err(Some(seq)),
    }
}

/// A body being read, front to back.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<Hash> {
        self.take(32)?.try_into().ok()
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// What the next frame of the log is: `F` is what was read of it
/// ([`Frame`] unless a reader asks for less).
#[derive(Debug)]
pub(crate) enum Step<F = Frame> {
    /// A frame that reads, where it starts.
    Frame(Position, F),
    /// Bytes at `at` that are not a frame (an edit, or a write a crash cut
    /// short or still under way); `seq` is the record number they start
    /// with, if it reads.
    Bad { at: Position, seq: Option<u64> },
    /// No frame follows.
    End(Position),
}

/// Reads frames in order from a position, across segments.
pub(crate) struct Cursor {
    dir: PathBuf,
    at: Position,
    /// Stop here (a writer's durable end), if given.
    until: Option<u64>,
    /// How much to read at once.
    read_ahead: usize,
    file: Option<(u32, File, u64)>,
    /// Bytes of the open segment from `buffered_at`.
    buffer: Vec<u8>,
    buffered_at: u64,
}

impl Cursor {
    /// Reads the log in `dir` from `at`, `read_ahead` bytes at a time,
    /// up to `until` if given.
    pub(crate) fn new(
        dir: &Path,
        at: Position,
        until: Option<Position>,
        read_ahead: usize,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            at,
            until: until.map(Position::pack),
            read_ahead,
            file: None,
            buffer: Vec::new(),
            buffered_at: 0,
        }
    }

    /// Where the next frame would start.
    pub(crate) fn position(&self) -> Position {
        self.at
    }

    /// The record whose frame starts at `at` (the file stays open, and what
    /// was read stays buffered, for the next look-up).
    pub(crate) fn record_at(&mut self, at: Position) -> Result<Option<AuditRecord>> {
        self.at = at;
        Ok(match self.step()? {
            Step::Frame(p, Frame::Record(r)) if p == at => Some(*r),
            _ => None,
        })
    }

    /// The next frame; after `Bad` or `End` the cursor stays where it is.
    pub(crate) fn step(&mut self) -> Result<Step> {
        self.step_as(decode)
    }

    /// Goes on from `at` up to `until`, as a new cursor would, keeping the
    /// memory it has read into (the citizen index's scan every half
    /// second).
    pub(crate) fn restart(&mut self, at: Position, until: Option<Position>) {
        self.at = at;
        self.until = until.map(Position::pack);
        self.file = None;
        self.buffer.clear();
        self.buffered_at = 0;
    }

    /// The next frame, its body read by `read` (as [`decode`] does, or
    /// less); after `Bad` or `End` the cursor stays where it is.
    pub(crate) fn step_as<F>(
        &mut self,
        read: impl FnOnce(&[u8]) -> std::result::Result<F, Option<u64>>,
    ) -> Result<Step<F>> {
        loop {
            if self.until.is_some_and(|u| self.at.pack() >= u) {
                return Ok(Step::End(self.at));
            }
            let n = match self.read(self.at.offset, 4)? {
                Some(b) => u32::from_be_bytes(b.try_into().unwrap_or([0; 4])) as usize,
                None => 0,
            };
            if n == 0 {
                // This segment's frames end here; the next segment goes on
                // once its writer has begun it.
                let next = Position {
                    segment: self.at.segment + 1,
                    offset: 0,
                };
                if self.first_frame_in(next.segment)? {
                    self.at = next;
                    continue;
                }
                return Ok(Step::End(self.at));
            }
            let at = self.at;
            let Some(body) = self.read(at.offset + 4, n)? else {
                return Ok(Step::Bad { at, seq: None });
            };
            return Ok(match read(body) {
                Ok(frame) => {
                    self.at.offset += 4 + n as u64;
                    Step::Frame(at, frame)
                }
                Err(seq) => Step::Bad { at, seq },
            });
        }
    }

    /// Whether segment `number` exists and holds a frame.
    fn first_frame_in(&mut self, number: u32) -> Result<bool> {
        let path = segment_path(&self.dir, number);
        let Ok(file) = File::open(&path) else {
            return Ok(false);
        };
        let mut head = [0u8; 4];
        Ok(file.read_exact_at(&mut head, 0).is_ok() && head != [0; 4])
    }

    /// `n` bytes of the current segment at `offset`, or `None` past its end.
    fn read(&mut self, offset: u64, n: usize) -> Result<Option<&[u8]>> {
        let segment = self.at.segment;
        if self.file.as_ref().is_none_or(|(s, _, _)| *s != segment) {
            let path = segment_path(&self.dir, segment);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path)(e)),
            };
            let len = file.metadata().map_err(Error::io(&path))?.len();
            self.file = Some((segment, file, len));
            self.buffer.clear();
        }
        let Some((_, file, len)) = &self.file else {
            return Ok(None);
        };
        let end = offset + n as u64;
        if end > *len {
            return Ok(None);
        }
        let held = self.buffered_at + self.buffer.len() as u64;
        if offset < self.buffered_at || end > held {
            let want = (n.max(self.read_ahead) as u64).min(len - offset) as usize;
            self.buffer.resize(want, 0);
            file.read_exact_at(&mut self.buffer, offset)
                .map_err(Error::io(segment_path(&self.dir, segment)))?;
            self.buffered_at = offset;
        }
        let from = (offset - self.buffered_at) as usize;
        Ok(Some(&self.buffer[from..from + n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_as_written() {
        let record = AuditRecord::chain(
            7,
            "2026-11-24T00:00:00.000000Z".into(),
            AuditEntry {
                agency: "bank".into(),
                operation: "verify_identity".into(),
                purpose: "KYC".into(),
                pids: "001089000001".into(),
                fields: "full_name".into(),
                decision: Decision::Refused,
                outcome: "CONSENT_REQUIRED".into(),
                request_id: "r-1".into(),
                trace_id: "t-1".into(),
                request_hash: [3; 32],
                response_hash: [4; 32],
                hidden_until: Some(String::new()),
            },
            [5; 32],
        );
        let checkpoint = Checkpoint {
            seq: 7,
            hash: record.hash,
            time: "now".into(),
            signature: vec![9; 64],
        };
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes);
        encode_checkpoint(&checkpoint, &mut bytes);
        let n = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        match decode(&bytes[4..4 + n]) {
            Ok(Frame::Record(r)) => assert_eq!(*r, record),
            other => panic!("{other:?}"),
        }
        match decode(&bytes[8 + n..]) {
            Ok(Frame::Checkpoint(c)) => assert_eq!(c, checkpoint),
            other => panic!("{other:?}"),
        }
        // Cut short, a body does not read; its record number still does.
        assert!(matches!(decode(&bytes[4..4 + n - 1]), Err(Some(7))));
        assert!(matches!(decode(&bytes[4..7]), Err(None)));
        // The citizen index reads only the number and the Pids.
        assert_eq!(record_pids(&bytes[4..4 + n]), Ok(Some((7, "001089000001"))));
        assert_eq!(record_pids(&bytes[8 + n..]), Ok(None));
        assert_eq!(record_pids(&bytes[4..4 + 30]), Err(Some(7)));
        assert_eq!(record_pids(&bytes[4..7]), Err(None));
        let packed = Position {
            segment: 3,
            offset: 12_345,
        };
        assert_eq!(Position::unpack(packed.pack()), packed);
    }

    /// A record frame numbered `seq`.
    fn frame_of(seq: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_record_parts(seq, "t", b"", &[0; 32], &[0; 32], &mut bytes);
        bytes
    }

    #[test]
    fn a_restarted_cursor_reads_what_was_written_since() {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path(), 1, FIRST_SEGMENT).unwrap();
        let file = File::options()
            .write(true)
            .open(segment_path(dir.path(), 1))
            .unwrap();
        let first = frame_of(1);
        file.write_all_at(&first, 0).unwrap();
        // Read to the end: the read-ahead holds the zeros after frame 1.
        let mut cursor = Cursor::new(dir.path(), Position::START, None, 1 << 20);
        let seqs = |c: &mut Cursor| {
            let mut seqs = Vec::new();
            while let Step::Frame(_, Some((seq, _))) = c
                .step_as(|b| record_pids(b).map(|r| r.map(|(s, p)| (s, p.len()))))
                .unwrap()
            {
                seqs.push(seq);
            }
            seqs
        };
        assert_eq!(seqs(&mut cursor), [1]);
        let end = cursor.position();
        file.write_all_at(&frame_of(2), first.len() as u64).unwrap();
        // Without a restart the cursor still sees its zeros; restarted,
        // it reads the file again.
        assert_eq!(seqs(&mut cursor), [] as [u64; 0]);
        cursor.restart(end, None);
        assert_eq!(seqs(&mut cursor), [2]);
        // Bounded by a durable end, it stops there.
        cursor.restart(Position::START, Some(end));
        assert_eq!(seqs(&mut cursor), [1]);
    }
}
