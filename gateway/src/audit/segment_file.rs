//! The segment the writer appends to, written in whole blocks straight to
//! the disk (`O_DIRECT`) where the file system allows it, else through the
//! page cache; and the zeros a new segment is prepared with, written the
//! same way.
//!
//! ```text
//!              block k                       block k+1
//!   file  … │ frames ‥‥‥‥‥‥‥‥ ‖ new frames ‥‥│‥‥‥ new frames ‖ 0 0 0 0 0 0 │
//!           ▲                 ▲ at                           ▲ at + n      ▲
//!           └ start: the block `at` is in; its bytes before  │             └ the write
//!             `at` (the tail) are kept in memory and written │               ends on a
//!             again, unchanged, ahead of the new frames      └ the next at   block
//! ```
//!
//! Why: a copy into the page cache costs CPU for every byte, and every
//! record would pay it twice (the zeros that prepare its place, then its
//! frame), on the cores that serve requests (figures in
//! `docs/benchmarks.md`). Written directly, the disk takes the bytes from
//! the writer's own buffer. The `fdatasync` after each group still flushes
//! the disk's write cache, so a group written directly is as durable as one
//! written through the page cache.
//!
//! A crash in the middle of a write cannot harm a durable frame: the tail's
//! bytes are the same in the old block and the new one, so whatever part of
//! the write reached the disk, what was there before `at` still is; the new
//! frames may be cut short, which recovery sets aside.
//!
//! Readers (the citizen index, `audit verify`, `ListAccesses`) read through
//! the page cache; the kernel drops cached pages a direct write covers, so
//! they read what was written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The unit of a direct write: its offset, its length and its buffer's
/// address are multiples of it. 4 KiB covers disks of 512-byte and of
/// 4 KiB sectors.
pub(crate) const BLOCK: usize = 4096;

/// The segment being appended to.
pub(crate) struct SegmentFile {
    file: File,
    path: PathBuf,
    /// Whether `file` was opened with `O_DIRECT`.
    direct: bool,
    /// The file's length in whole blocks: nothing is written past it.
    capacity: u64,
    /// Where the next bytes go.
    at: u64,
    /// Direct only: the bytes of `at`'s block before `at`.
    tail: Vec<u8>,
    /// Direct only: room for one write, plus a block, so that a window of
    /// it starts on a block boundary.
    buffer: Vec<u8>,
    /// Tests only: direct writes fail as a file system that opened the file
    /// with `O_DIRECT` but takes no direct write would fail them.
    #[cfg(test)]
    refuse_direct_writes: bool,
}

impl SegmentFile {
    /// Opens the segment at `path` to append after its first `at` bytes.
    pub(crate) fn open(path: &Path, at: u64) -> Result<Self> {
        Self::open_as(path, at, true)
    }

    /// As [`SegmentFile::open`]; `direct: false` writes through the page
    /// cache (as where the file system refuses `O_DIRECT`).
    pub(crate) fn open_as(path: &Path, at: u64, direct: bool) -> Result<Self> {
        let (file, direct) = open(&read_write(), path, direct).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        let mut segment = Self {
            file,
            path: path.to_path_buf(),
            direct,
            capacity: len - len % BLOCK as u64,
            at,
            tail: Vec::new(),
            buffer: Vec::new(),
            #[cfg(test)]
            refuse_direct_writes: false,
        };
        if direct {
            segment.read_tail()?;
        }
        Ok(segment)
    }

    /// Whether writes bypass the page cache.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// How many bytes the segment can hold.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Where the next bytes go.
    pub(crate) fn at(&self) -> u64 {
        self.at
    }

    /// Writes `bytes` at [`SegmentFile::at`], which must leave them within
    /// [`SegmentFile::capacity`]; durable after [`SegmentFile::sync`].
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            // The writer moving on before a group's first frame: nothing to
            // write (and `at` may be past a segment of an odd length).
            return Ok(());
        }
        debug_assert!(self.at + bytes.len() as u64 <= self.capacity);
        if self.direct {
            match self.append_direct(bytes) {
                // A file system that opened the file for direct writes but
                // takes none: go on through the page cache.
                Err(e) if refused_direct(&e) => {
                    tracing::warn!(error = %e, "the file system takes no direct writes to the audit log; writing through the page cache");
                    (self.file, self.direct) =
                        open(&read_write(), &self.path, false).map_err(Error::io(&self.path))?;
                }
                written => return written.map_err(Error::io(&self.path)),
            }
        }
        self.file
            .write_all_at(bytes, self.at)
            .map_err(Error::io(&self.path))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Makes what was appended durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(Error::io(&self.path))
    }

    /// Writes the tail and `bytes`, padded with zeros to a block, from the
    /// start of the tail's block; then keeps the new tail.
    fn append_direct(&mut self, bytes: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self.refuse_direct_writes {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let start = self.at - self.tail.len() as u64;
        let len = self.tail.len() + bytes.len();
        let padded = len.div_ceil(BLOCK) * BLOCK;
        if self.buffer.len() < padded + BLOCK {
            self.buffer = vec![0; padded + BLOCK];
        }
        let from = self.buffer.as_ptr().align_offset(BLOCK);
        let window = &mut self.buffer[from..from + padded];
        window[..self.tail.len()].copy_from_slice(&self.tail);
        window[self.tail.len()..len].copy_from_slice(bytes);
        window[len..].fill(0);
        self.file.write_all_at(window, start)?;
        self.at += bytes.len() as u64;
        self.tail.clear();
        self.tail.extend_from_slice(&window[len - len % BLOCK..len]);
        Ok(())
    }

    /// Reads the bytes of `at`'s block before `at` (through the page cache:
    /// a direct read would need an aligned buffer too).
    fn read_tail(&mut self) -> Result<()> {
        let start = self.at - self.at % BLOCK as u64;
        self.tail = vec![0; (self.at - start) as usize];
        File::open(&self.path)
            .and_then(|f| f.read_exact_at(&mut self.tail, start))
            .map_err(Error::io(&self.path))
    }
}

/// Creates the file `path` holding `size` bytes of zeros, rounded up to a
/// whole block, written directly where the file system allows it; not yet
/// durable (the caller syncs it).
pub(crate) fn create_zeroed(path: &Path, size: u64) -> Result<File> {
    let size = size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let mut options = File::options();
    crate::private::options(options.write(true).create(true).truncate(true));
    let (file, _) = open(&options, path, true).map_err(Error::io(path))?;
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK + BLOCK];
    let from = zeros.as_ptr().align_offset(BLOCK);
    let zeros = &zeros[from..from + CHUNK];
    let mut written = 0;
    while written < size {
        let n = (size - written).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], written)
            .map_err(Error::io(path))?;
        written += n as u64;
    }
    Ok(file)
}

/// How a segment is opened to append to.
fn read_write() -> OpenOptions {
    let mut options = File::options();
    options.read(true).write(true);
    options
}

/// Opens `path` with `options`, bypassing the page cache if `direct` and
/// the file system allows it; whether it does.
fn open(options: &OpenOptions, path: &Path, direct: bool) -> io::Result<(File, bool)> {
    if direct {
        let mut bypassing = options.clone();
        match bypassing.custom_flags(libc::O_DIRECT).open(path) {
            Err(e) if refused_direct(&e) => {}
            opened => return opened.map(|file| (file, true)),
        }
    }
    options.open(path).map(|file| (file, false))
}

/// Whether `e` is a file system's refusal of direct I/O.
fn refused_direct(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the file system holding `dir` opens files for direct I/O.
    fn takes_direct(dir: &Path) -> bool {
        File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join("probe"))
            .is_ok()
    }

    /// A temporary directory on a file system that takes direct I/O: the
    /// system's temporary directory, `/var/tmp` or the build's target
    /// directory, whichever does first. Panics if none does: a test of the
    /// direct path must run it, not pass without it.
    fn direct_dir() -> tempfile::TempDir {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
        for base in [std::env::temp_dir(), "/var/tmp".into(), target] {
            if let Ok(dir) = tempfile::tempdir_in(&base)
                && takes_direct(dir.path())
            {
                return dir;
            }
        }
        panic!("no file system here takes O_DIRECT (tried $TMPDIR, /var/tmp and target/)");
    }

    /// Bytes that differ from one append to the next, so that a block
    /// written from the wrong offset shows.
    fn pattern(seed: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| seed.wrapping_add(i as u8) | 1).collect()
    }

    /// Appends of odd sizes, a reopen in the middle of a block, and the
    /// file's bytes afterwards: what was appended, in order, then zeros to
    /// the end; in both modes.
    #[test]
    fn appends_land_in_order_whatever_their_size_and_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        for direct in [true, false] {
            let path = dir.path().join(format!("{direct}.seg"));
            drop(create_zeroed(&path, 100_000).unwrap());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 25 * 4096);
            let mut expected = Vec::new();
            let mut segment = SegmentFile::open_as(&path, 0, direct).unwrap();
            // Where the file system refuses direct writes, the fallback is
            // what this tests.
            assert_eq!(segment.is_direct(), direct && takes_direct(dir.path()));
            assert_eq!(segment.capacity(), 25 * 4096);
            for (seed, n) in [(1, 10), (2, 4086), (3, 1), (4, 9000), (5, 4096), (6, 333)] {
                let bytes = pattern(seed, n);
                segment.append(&bytes).unwrap();
                expected.extend_from_slice(&bytes);
                assert_eq!(segment.at(), expected.len() as u64);
            }
            segment.sync().unwrap();
            drop(segment);
            let mut segment = SegmentFile::open_as(&path, expected.len() as u64, direct).unwrap();
            for (seed, n) in [(7, 3000), (8, 5)] {
                let bytes = pattern(seed, n);
                segment.append(&bytes).unwrap();
                expected.extend_from_slice(&bytes);
            }
            segment.sync().unwrap();
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk[..expected.len()], expected[..], "direct: {direct}");
            assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
        }
    }

    /// A reader through the page cache that read a block before a direct
    /// write reads the new bytes after it (the citizen index follows the
    /// writer this way).
    #[test]
    fn a_reader_through_the_page_cache_sees_each_direct_write() {
        let dir = direct_dir();
        let path = dir.path().join("1.seg");
        drop(create_zeroed(&path, 8192).unwrap());
        let mut segment = SegmentFile::open(&path, 0).unwrap();
        assert!(segment.is_direct());
        let reader = File::open(&path).unwrap();
        let mut expected = Vec::new();
        for seed in 0..20 {
            let bytes = pattern(seed, 200);
            segment.append(&bytes).unwrap();
            segment.sync().unwrap();
            expected.extend_from_slice(&bytes);
            let mut read = vec![0; expected.len()];
            reader.read_exact_at(&mut read, 0).unwrap();
            assert_eq!(read, expected, "after append {seed}");
        }
    }

    /// A file system that opens the file for direct writes but refuses the
    /// first one (`EINVAL`): the segment goes on through the page cache
    /// from where it was, and nothing appended before or after is lost.
    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        // The refusal at open is the other tests' fallback; this one needs a
        // file opened for direct writes.
        let dir = direct_dir();
        let path = dir.path().join("1.seg");
        drop(create_zeroed(&path, 3 * 4096).unwrap());
        let mut segment = SegmentFile::open(&path, 0).unwrap();
        assert!(segment.is_direct());
        let mut expected = pattern(1, 5000);
        segment.append(&expected).unwrap();
        segment.refuse_direct_writes = true;
        for (seed, n) in [(2, 100), (3, 4000)] {
            let bytes = pattern(seed, n);
            segment.append(&bytes).unwrap();
            expected.extend_from_slice(&bytes);
            assert!(!segment.is_direct());
            assert_eq!(segment.at(), expected.len() as u64);
        }
        segment.sync().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk[..expected.len()], expected[..]);
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
    }
}
