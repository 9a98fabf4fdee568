//! The appending end of the audit log: the segment being written, moving
//! on to the next one when a group does not fit, with that next segment
//! prepared (pre-zeroed) ahead on a thread of its own.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::segment::{self, Position};
use super::segment_file::SegmentFile;
use crate::error::Result;

/// The segment being written, and the next one being prepared.
pub(super) struct Tail {
    dir: PathBuf,
    /// The segment's number.
    number: u32,
    file: SegmentFile,
    /// The next segment's preparation, on a thread of its own.
    next: Option<JoinHandle<Result<()>>>,
}

impl Tail {
    /// Appends to segment `end.segment` after `end.offset`.
    pub(super) fn open(dir: &Path, end: Position) -> Result<Self> {
        let path = segment::segment_path(dir, end.segment);
        let file = SegmentFile::open(&path, end.offset)?;
        if !file.is_direct() {
            tracing::info!(
                "the audit log's file system takes no direct writes; writing through the page cache"
            );
        }
        let mut tail = Self {
            dir: dir.to_path_buf(),
            number: end.segment,
            file,
            next: None,
        };
        tail.prepare_next();
        Ok(tail)
    }

    /// Starts preparing the segment after this one.
    fn prepare_next(&mut self) {
        let dir = self.dir.clone();
        let n = self.number + 1;
        self.next = std::thread::Builder::new()
            .name("lienthong-audit-segment".into())
            .spawn(move || segment::prepare(&dir, n, segment::segment_size(n)))
            .ok();
    }

    /// Writes `frames` (whole frames, `ends` where each ends) at the end of
    /// the log, moving on to the next segment where one does not fit, and
    /// makes them durable. The next segment is open before the frames that
    /// still fit go to the one it follows: if it cannot be had, the write
    /// fails with those frames unwritten, and the records of a refused
    /// group are not in the log.
    pub(super) fn write(&mut self, frames: &[u8], ends: &[usize]) -> Result<()> {
        let mut from = 0;
        let mut upto = 0;
        for &end in ends {
            if self.file.at() + (end - from) as u64 > self.file.capacity() {
                let next = self.next_segment((end - upto) as u64)?;
                self.file.append(&frames[from..upto])?;
                self.file.sync()?;
                from = upto;
                self.file = next;
                self.number += 1;
                self.prepare_next();
            }
            upto = end;
        }
        self.file.append(&frames[from..upto])?;
        self.file.sync()
    }

    /// Opens the segment after this one, which must hold at least `need`
    /// bytes.
    fn next_segment(&mut self, need: u64) -> Result<SegmentFile> {
        let n = self.number + 1;
        let path = segment::segment_path(&self.dir, n);
        // A preparation that failed is tried once more, here; a second
        // failure stops the writer.
        let prepared = match self.next.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) => SegmentFile::open(&path, 0)
                .ok()
                .filter(|f| f.capacity() >= need),
            Some(Ok(Err(e))) => {
                tracing::warn!(error = %e, "preparing the next audit segment failed; trying again");
                None
            }
            _ => None,
        };
        match prepared {
            Some(file) => Ok(file),
            None => {
                segment::prepare(&self.dir, n, need.max(segment::segment_size(n)))?;
                SegmentFile::open(&path, 0)
            }
        }
    }

    pub(super) fn end(&self) -> Position {
        Position {
            segment: self.number,
            offset: self.file.at(),
        }
    }

    /// Waits for the next segment's preparation to end (before the log
    /// closes).
    pub(super) fn finish_preparing(&mut self) {
        if let Some(next) = self.next.take() {
            let _ = next.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// A tail at the end of a fresh first segment whose next segment's
    /// preparation ahead has failed.
    fn tail_after_a_failed_preparation(dir: &Path) -> Tail {
        segment::prepare(dir, 1, 8192).unwrap();
        let failed = std::thread::spawn(|| Err(Error::Audit("made to fail".into())));
        Tail {
            dir: dir.to_path_buf(),
            number: 1,
            file: SegmentFile::open(&segment::segment_path(dir, 1), 0).unwrap(),
            next: Some(failed),
        }
    }

    #[test]
    fn a_failed_preparation_ahead_is_tried_again_before_the_next_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = tail_after_a_failed_preparation(dir.path());
        // Two frames of 5,000 bytes: the second does not fit in 8 KiB.
        let frames = vec![7u8; 10_000];
        tail.write(&frames, &[5_000, 10_000]).unwrap();
        assert_eq!(
            tail.end(),
            Position {
                segment: 2,
                offset: 5_000
            }
        );
        let second = std::fs::read(segment::segment_path(dir.path(), 2)).unwrap();
        assert_eq!(second.len() as u64, segment::segment_size(2));
        assert!(second[..5_000].iter().all(|&b| b == 7));
        assert!(second[5_000..].iter().all(|&b| b == 0));
        if let Some(next) = tail.next.take() {
            next.join().unwrap().unwrap();
        }
    }

    #[test]
    fn a_segment_that_cannot_be_prepared_fails_the_write_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = tail_after_a_failed_preparation(dir.path());
        // Where segment 2 is prepared, a directory: the second try fails.
        let blocked = segment::segment_path(dir.path(), 2).with_extension("seg.tmp");
        std::fs::create_dir(&blocked).unwrap();
        let frames = vec![7u8; 10_000];
        let e = tail.write(&frames, &[5_000, 10_000]).unwrap_err();
        assert!(e.to_string().contains("00000002.seg.tmp"), "{e}");
        // Nothing of the group was written, not even the frame that fitted.
        let first = std::fs::read(segment::segment_path(dir.path(), 1)).unwrap();
        assert!(first.iter().all(|&b| b == 0));
        assert_eq!(tail.end(), Position::START);
    }
}
