//! Opening the audit log: where it ends, what its last record and
//! checkpoint are, and what a crash left behind (read apart from the
//! appending path, as raft-engine's pipe builder is).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::record::{GENESIS, Hash};
use super::segment::{self, Cursor, Frame, Position, Step};
use crate::error::{Error, Result};

/// What the log held when it was opened.
pub(super) struct Recovered {
    /// The last record's number and hash.
    pub(super) head: (u64, Hash),
    /// The last record the last checkpoint covers (0 if none was found in
    /// the segments checked at start).
    pub(super) checkpointed: u64,
    /// Where the next frame goes.
    pub(super) end: Position,
}

/// Finds where the log in `dir` ends, creating its first segment if it has
/// none. Segments past the last begun one hold only zeros (prepared, never
/// used) and are removed; a write a crash cut short at the end is moved
/// aside to `torn-SEGMENT-OFFSET.bin` and zeroed, so appending goes on
/// after the last whole frame and nothing is destroyed. Every record after
/// the last checkpoint is checked first; damage or an edit there is an
/// error naming the file and offset, the log left as found.
pub(super) fn recover(dir: &Path) -> Result<Recovered> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".seg.tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let numbers = segment::segments(dir)?;
    let Some(&first) = numbers.first() else {
        segment::prepare(dir, 1, segment::segment_size(1))?;
        return Ok(Recovered {
            head: (0, GENESIS),
            checkpointed: 0,
            end: Position::START,
        });
    };
    if first != 1 {
        return Err(Error::Audit(format!(
            "the audit log's segments before {} are missing",
            segment::segment_path(dir, first).display()
        )));
    }
    let mut current = first;
    for (&n, expected) in numbers.iter().zip(first..) {
        if n != expected {
            return Err(Error::Audit(format!(
                "the audit log's segment {} is missing",
                segment::segment_path(dir, expected).display()
            )));
        }
        let mut head = [0u8; 4];
        let path = segment::segment_path(dir, n);
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut head, 0))
            .map_err(Error::io(&path))?;
        if head != [0; 4] {
            current = n;
        }
    }
    for &n in numbers.iter().filter(|&&n| n > current) {
        let path = segment::segment_path(dir, n);
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        if bytes.iter().any(|&b| b != 0) {
            return Err(Error::Audit(format!(
                "{} holds data after an empty start; run `lienthong audit verify`",
                path.display()
            )));
        }
        std::fs::remove_file(&path).map_err(Error::io(&path))?;
    }
    // Every record after the last checkpoint, and more: from the start of
    // the newest segment that holds a checkpoint to the end, whole frames
    // checked — a record against its hash and its place in the chain, from
    // the last record before that segment (a checkpoint's signature is for
    // `audit verify` to judge: the key may have changed since).
    let from = newest_with_checkpoint(dir, current)?;
    let before = if from == 1 {
        (0, GENESIS)
    } else {
        last_of(dir, from - 1)?
    };
    let mut head = None;
    let mut checkpointed = 0;
    let start = Position {
        segment: from,
        offset: 0,
    };
    let mut cursor = Cursor::new(dir, start, None, 1 << 20);
    let end = loop {
        match cursor.step()? {
            Step::Frame(at, Frame::Record(r)) if r.expected_hash() == r.hash => {
                let (seq, hash) = head.unwrap_or(before);
                if r.seq != seq + 1 || r.prev_hash != hash {
                    return Err(Error::Audit(format!(
                        "{}: record {} at offset {} does not follow record {seq} in the chain \
                         (an edit, a removal or a reordering); the gateway does not serve over \
                         it. Run `lienthong audit verify`; restore the log from a backup",
                        segment::segment_path(dir, at.segment).display(),
                        r.seq,
                        at.offset
                    )));
                }
                head = Some((r.seq, r.hash));
            }
            Step::Frame(_, Frame::Checkpoint(c)) => {
                checkpointed = c.seq;
                head = head.or(Some((c.seq, c.hash)));
            }
            Step::Frame(at, _) | Step::Bad { at, .. } | Step::End(at) => break at,
        }
    };
    if end.segment != current {
        return Err(Error::Audit(format!(
            "{}: the frame at offset {} does not read, yet the log goes on in a later segment: \
             that is damage or an edit, not a write cut short; the gateway does not start over \
             it and leaves the log as it is. Run `lienthong audit verify`; restore the segment \
             from a backup",
            segment::segment_path(dir, end.segment).display(),
            end.offset
        )));
    }
    let path = segment::segment_path(dir, current);
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    refuse_damage_before_records(&file, &path, end)?;
    set_aside_torn(dir, &file, &path, end)?;
    drop(file);
    let head = head.unwrap_or(before);
    Ok(Recovered {
        head,
        checkpointed,
        end,
    })
}

/// Refuses to go on when a whole record lies after the first frame that does
/// not read (at `end`): a write cut short ends the log, so that is damage
/// or an edit, and setting it aside would hide records. The file is left
/// exactly as found.
fn refuse_damage_before_records(file: &File, path: &Path, end: Position) -> Result<()> {
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut rest = vec![0u8; (len - end.offset) as usize];
    file.read_exact_at(&mut rest, end.offset)
        .map_err(Error::io(path))?;
    if let Some(at) = whole_record_after(&rest) {
        return Err(Error::Audit(format!(
            "{}: the frame at offset {} does not read, yet a whole record follows at offset {}: \
             that is damage or an edit, not a write cut short; the gateway does not start over \
             it and leaves the log as it is. Run `lienthong audit verify`; restore the segment \
             from a backup",
            path.display(),
            end.offset,
            end.offset + at as u64
        )));
    }
    Ok(())
}

/// The first offset after the start of `bytes` where a whole record (one
/// whose hash matches) begins, if any.
fn whole_record_after(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len().saturating_sub(4)).find(|&at| {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
        n != 0
            && at + 4 + n <= bytes.len()
            && matches!(
                segment::decode(&bytes[at + 4..at + 4 + n]),
                Ok(Frame::Record(r)) if r.expected_hash() == r.hash
            )
    })
}

/// Moves whatever follows `end` in segment `file` (a torn write) aside and
/// zeroes it.
fn set_aside_torn(dir: &Path, file: &File, path: &Path, end: Position) -> Result<()> {
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut rest = vec![0u8; (len - end.offset) as usize];
    file.read_exact_at(&mut rest, end.offset)
        .map_err(Error::io(path))?;
    let Some(last) = rest.iter().rposition(|&b| b != 0) else {
        return Ok(());
    };
    let torn = &rest[..=last];
    let aside = dir.join(format!("torn-{:08}-{}.bin", end.segment, end.offset));
    crate::private::create(&aside)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, torn)?;
            f.sync_all()
        })
        .map_err(Error::io(&aside))?;
    segment::sync_dir(dir)?;
    file.write_all_at(&vec![0; torn.len()], end.offset)
        .and_then(|()| file.sync_data())
        .map_err(Error::io(path))?;
    tracing::warn!(
        bytes = torn.len(),
        kept = %aside.display(),
        "the audit log ended in a write cut short; its bytes are kept aside and the log goes on after the last whole record"
    );
    Ok(())
}

/// The newest segment, up to `current`, that holds a checkpoint; 1 if none
/// does (then the whole log is checked at start, and the segment chosen is
/// read twice: a checkpoint is signed every second, so that is rare).
fn newest_with_checkpoint(dir: &Path, current: u32) -> Result<u32> {
    for n in (1..=current).rev() {
        let start = Position {
            segment: n,
            offset: 0,
        };
        let until = Position {
            segment: n + 1,
            offset: 0,
        };
        let mut cursor = Cursor::new(dir, start, Some(until), 1 << 20);
        while let Step::Frame(at, frame) = cursor.step()? {
            if at.segment != n {
                break;
            }
            if matches!(frame, Frame::Checkpoint(_)) {
                return Ok(n);
            }
        }
    }
    Ok(1)
}

/// The last record's (or checkpoint's) number and hash in segment `n`.
fn last_of(dir: &Path, n: u32) -> Result<(u64, Hash)> {
    let start = Position {
        segment: n,
        offset: 0,
    };
    let mut cursor = Cursor::new(dir, start, None, 1 << 20);
    let mut head = None;
    while let Step::Frame(at, frame) = cursor.step()? {
        if at.segment != n {
            break;
        }
        head = Some(match frame {
            Frame::Record(r) => (r.seq, r.hash),
            Frame::Checkpoint(c) => (c.seq, c.hash),
        });
    }
    head.ok_or_else(|| Error::Audit(format!("segment {n} of the audit log holds no frame")))
}
