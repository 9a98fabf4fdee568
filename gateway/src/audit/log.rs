//! The audit writer: one thread that chains records, appends them to the
//! segments in groups, makes each group durable with one `fdatasync`, and
//! signs checkpoints.
//!
//! ```text
//! request ─▶ AuditLog::append(entries) ─▶ inbox ─▶ writer thread:
//!              encodes them, awaits its ack         under load, wait until as many records
//!                                                     as the last group held have come and
//!                                                     every ack sent is claimed, or PACE
//!                                                     since the last group began
//!                                                   take every job waiting (one group)
//!                                                   number + chain each record
//!                                                   checkpoint if one is due
//!                                                   one pwrite, one fdatasync
//! first waiter ◀── ack + the group's other acks ─── wake the group's first waiter
//!   wakes the others from its runtime thread
//! each request, running again, claims its ack
//! ```
//!
//! A request waits for one `fdatasync` however many requests share it, so
//! the cost of durability is spread over everything in flight (group
//! commit). Under load (the last group held at least [`PACE_FROM`]
//! records) the writer waits for the next group to hold as many records as
//! the last one, and for the runtime to have taken up every ack already
//! sent (each request [`Claim`]s its own when it runs again), but no
//! longer than [`PACE`] after the last one began, so that each wake-up and
//! each sync serves more requests. When a steady number of callers each
//! wait for their answer, the group goes as soon as all of them are in it.
//! While the runtime still works through earlier answers, a group sent
//! sooner would only queue behind them, so it waits and grows instead: this
//! is what sets the group's size when the server is busiest. A lone request
//! is written at once. It never waits for the
//! citizen index: a thread of its own ([`super::index`]) follows the
//! durable end. Each caller waits for its own ack, so the inbox holds at
//! most what the server has in flight. A checkpoint is signed at most every
//! [`CHECKPOINT_EVERY`] while records arrive, and when the log closes.
//!
//! A failed write or sync stops the writer for good (the requests get
//! `AUDIT_UNAVAILABLE`): after a failed `fdatasync` nothing says what the
//! disk holds, and the next start reads it back.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::index::Indexer;
use super::record::{
    AuditEntry, Checkpoint, GENESIS, Hash, chain_hash, checkpoint_message, encode_entry,
};
use super::segment::{self, Cursor, Frame, Position, Step};
use super::segment_file::SegmentFile;
use crate::clock;
use crate::error::{Error, Result};
use crate::signing::{Context, SigningKey};
use crate::telemetry::{AUDIT_COMMIT, AUDIT_RECORDS};

/// How often a checkpoint is signed while records arrive.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Under load, the longest a group waits to be as large as the last one
/// and for the acks sent to be claimed, from the start of the last one.
pub const PACE: Duration = Duration::from_millis(2);
/// A group at least this large means load: the next one is paced.
pub const PACE_FROM: usize = 8;

/// Records to append, encoded by the request that made them. The bytes go
/// back to it with the ack, so that the thread that allocated them frees
/// them (a free from another thread costs the allocator more on both).
struct Job {
    /// The entries, each as `u32be(len) ‖ entry` ([`encode_entry`]).
    entries: Vec<u8>,
    /// How many entries `entries` holds.
    records: usize,
    done: oneshot::Sender<Acked>,
}

/// A job's answer: its last record's number once durable, or why not.
type Outcome = std::result::Result<u64, String>;

/// One job's ack: where to send it, what it says, the job's bytes, and the
/// claim its request settles once it holds the ack.
type Ack = (oneshot::Sender<Acked>, Outcome, Vec<u8>, Claim);

/// What a waiting request is sent when its group is durable.
struct Acked {
    outcome: Outcome,
    /// The job's bytes, to be freed by the request.
    spent: Vec<u8>,
    /// The rest of the group, for the first waiter to wake.
    rest: Fanout,
    /// Settled when dropped: by the request once it runs again, or with
    /// the ack of a request that is gone.
    claim: Claim,
}

/// An ack sent and not yet in its request's hands.
///
/// While any is out, the runtime has not yet worked through the answers
/// of the groups already durable: under load, the writer's next group
/// waits for them (see [`Writer::run`]). Counted in [`Inbox::unclaimed`].
struct Claim(Arc<Inbox>);

impl Claim {
    fn new(inbox: &Arc<Inbox>) -> Self {
        inbox.unclaimed.fetch_add(1, Ordering::AcqRel);
        Self(inbox.clone())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0.unclaimed.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_claimed();
        }
    }
}

/// The acks of a group's other jobs, sent when this is dropped.
///
/// The writer wakes only the first waiter of a group, and hands it the
/// others: it drops them on a runtime thread, where each wake is a push on
/// that thread's own queue, rather than one push on the runtime's shared
/// queue (and often a sleeping worker woken) per request from the writer's
/// thread. Sent on drop, wherever the drop happens (a waiter gone before
/// its ack arrived drops it with its channel), no ack is lost.
struct Fanout(Vec<Ack>);

impl Fanout {
    /// Sends each of `acks`: the first one carries the others.
    fn send(acks: Vec<Ack>) {
        let mut acks = acks.into_iter();
        if let Some((done, outcome, spent, claim)) = acks.next() {
            // A waiter that is gone returns the ack, which is dropped here:
            // the others are then sent from this thread.
            let _ = done.send(Acked {
                outcome,
                spent,
                rest: Fanout(acks.collect()),
                claim,
            });
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for (done, outcome, spent, claim) in self.0.drain(..) {
            let _ = done.send(Acked {
                outcome,
                spent,
                rest: Fanout(Vec::new()),
                claim,
            });
        }
    }
}

/// Where requests leave jobs for the writer, which takes all of them at
/// once: nothing is allocated per job, and an append wakes the writer only
/// when it sleeps.
#[derive(Default)]
struct Inbox {
    waiting: Mutex<Waiting>,
    arrived: Condvar,
    /// Acks sent and not yet claimed ([`Claim`]).
    unclaimed: AtomicUsize,
}

#[derive(Default)]
struct Waiting {
    jobs: Vec<Job>,
    /// How many records `jobs` holds.
    records: usize,
    /// The writer sleeps on `arrived` until it has this.
    asleep: Option<Want>,
    /// No more jobs are taken: the log was closed, or every handle dropped.
    closed: bool,
}

/// What the writer waits for before it takes a group.
#[derive(Clone, Copy, Debug)]
struct Want {
    /// At least this many records waiting.
    records: usize,
    /// And every ack sent claimed.
    claimed: bool,
}

impl Want {
    /// At least `n` records, whatever is unclaimed.
    fn records(n: usize) -> Self {
        Self {
            records: n,
            claimed: false,
        }
    }
}

impl Waiting {
    /// Whether `want` is met.
    fn has(&self, want: Want, inbox: &Inbox) -> bool {
        self.records >= want.records
            && !(want.claimed && inbox.unclaimed.load(Ordering::Acquire) > 0)
    }
}

impl Inbox {
    /// Leaves `job` for the writer; gives it back once the log is closed.
    fn put(&self, job: Job) -> std::result::Result<(), Job> {
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(job);
        }
        waiting.records += job.records;
        waiting.jobs.push(job);
        self.wake_if_wanted(waiting);
        Ok(())
    }

    /// Wakes the writer if it sleeps and what it wants is here. Called
    /// when the last claim is settled.
    fn all_claimed(&self) {
        self.wake_if_wanted(self.lock());
    }

    fn wake_if_wanted(&self, mut waiting: MutexGuard<'_, Waiting>) {
        if waiting.asleep.is_some_and(|want| waiting.has(want, self)) {
            waiting.asleep = None;
            drop(waiting);
            self.arrived.notify_one();
        }
    }

    /// Takes no more jobs; the writer commits those it holds and stops.
    fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_one();
    }

    /// Waits up to `limit` for what is wanted, or the close; whether any
    /// job waits or the log is closed.
    fn wait(&self, want: Want, limit: Duration) -> bool {
        let mut waiting = self.lock();
        let not_yet = |w: &mut Waiting| !w.closed && !w.has(want, self);
        if not_yet(&mut waiting) {
            waiting.asleep = Some(want);
            waiting = self
                .arrived
                .wait_timeout_while(waiting, limit, not_yet)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            waiting.asleep = None;
        }
        !waiting.jobs.is_empty() || waiting.closed
    }

    /// Swaps every waiting job into `group` (empty, its capacity kept for
    /// the next jobs); whether the log is closed.
    fn take(&self, group: &mut Vec<Job>) -> bool {
        let mut waiting = self.lock();
        std::mem::swap(group, &mut waiting.jobs);
        waiting.records = 0;
        waiting.closed
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One handle's hold on the inbox: the last one dropped closes the log.
struct Inlet(Arc<Inbox>);

impl Drop for Inlet {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The handle requests append through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    /// `None` for [`AuditLog::off`].
    inlet: Option<Arc<Inlet>>,
}

/// The writer and index threads, to close the log when serving stops.
pub struct AuditWriter {
    /// The writer's thread, which ends after the indexer's.
    thread: JoinHandle<()>,
    inbox: Arc<Inbox>,
}

impl AuditLog {
    /// Opens (creating if needed) the log in the directory `dir` and its
    /// index, and starts the writer, which signs checkpoints with `key`,
    /// and the indexer. The writer stops, after a last checkpoint, once
    /// every `AuditLog` clone is dropped; the indexer then catches up and
    /// stops.
    pub fn open(dir: &Path, key: Arc<SigningKey>) -> Result<(Self, AuditWriter)> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let found = recover(dir)?;
        let durable = Arc::new(AtomicU64::new(found.end.pack()));
        let indexer = Indexer::open(dir, durable.clone(), found.head.0)?;
        let (stop_indexer, stopped) = mpsc::channel();
        let inbox = Arc::new(Inbox::default());
        let mut writer = Writer {
            inbox: inbox.clone(),
            tail: Tail::open(dir, found.end)?,
            key,
            head: found.head,
            checkpointed: found.checkpointed,
            last_checkpoint: Instant::now(),
            durable,
            failed: None,
            frames: Vec::new(),
        };
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map_err(|e| Error::Audit(format!("cannot start {name}: {e}")))
        };
        let indexing = spawn(
            "lienthong-audit-index",
            Box::new(move || indexer.run(stopped)),
        )?;
        let writing = spawn(
            "lienthong-audit",
            Box::new(move || {
                writer.run();
                // The index catches up with the last records.
                drop(stop_indexer);
                let _ = indexing.join();
            }),
        )?;
        Ok((
            Self {
                inlet: Some(Arc::new(Inlet(inbox.clone()))),
            },
            AuditWriter {
                thread: writing,
                inbox,
            },
        ))
    }

    /// A log that records nothing: only for measuring what the audit costs
    /// (the benchmark's baseline). `lienthong serve` never uses it.
    pub fn off() -> Self {
        Self { inlet: None }
    }

    /// Appends `entries` (in order, adjacent) and returns once they are
    /// durable, with the last one's number.
    pub async fn append(&self, entries: Vec<AuditEntry>) -> Result<u64> {
        let Some(inlet) = &self.inlet else {
            return Ok(0);
        };
        let mut bytes = Vec::with_capacity(entries.len() * 260);
        for entry in &entries {
            let at = bytes.len();
            bytes.extend_from_slice(&[0; 4]);
            encode_entry(entry, &mut bytes);
            let len = (bytes.len() - at - 4) as u32;
            bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        let records = entries.len();
        drop(entries);
        let stopped = || Error::Audit("the audit writer has stopped".into());
        let (done, ack) = oneshot::channel();
        inlet
            .0
            .put(Job {
                entries: bytes,
                records,
                done,
            })
            .map_err(|_| stopped())?;
        let Acked {
            outcome,
            spent,
            rest,
            claim,
        } = ack.await.map_err(|_| stopped())?;
        drop(claim);
        drop(rest);
        drop(spent);
        outcome.map_err(Error::Audit)
    }
}

impl AuditWriter {
    /// Closes the log: what is queued is committed, a last checkpoint is
    /// signed and the index catches up, even while some [`AuditLog`] handles
    /// remain (requests still in flight then get `AUDIT_UNAVAILABLE`).
    /// Waits up to `limit`; whether it closed.
    pub async fn close(self, limit: Duration) -> bool {
        self.inbox.close();
        let joined = tokio::task::spawn_blocking(move || self.thread.join().is_ok());
        matches!(tokio::time::timeout(limit, joined).await, Ok(Ok(true)))
    }
}

/// What the log held when it was opened.
struct Recovered {
    /// The last record's number and hash.
    head: (u64, Hash),
    /// The last record a checkpoint in the last segment covers.
    checkpointed: u64,
    /// Where the next frame goes.
    end: Position,
}

/// Finds where the log in `dir` ends, creating its first segment if it has
/// none. Segments past the last begun one hold only zeros (prepared, never
/// used) and are removed; a write a crash cut short at the end is moved
/// aside to `torn-SEGMENT-OFFSET.bin` and zeroed, so appending goes on
/// after the last whole frame and nothing is destroyed.
fn recover(dir: &Path) -> Result<Recovered> {
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
    // The last begun segment, whole frames checked: a record against its
    // hash (a checkpoint's signature is for `audit verify` to judge: the
    // key may have changed since).
    let mut head = None;
    let mut checkpointed = 0;
    let start = Position {
        segment: current,
        offset: 0,
    };
    let mut cursor = Cursor::new(dir, start, None, 1 << 20);
    let end = loop {
        match cursor.step()? {
            Step::Frame(_, Frame::Record(r)) if r.expected_hash() == r.hash => {
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
        return Err(Error::Audit(
            "the audit log's segments changed while it was opened".into(),
        ));
    }
    let path = segment::segment_path(dir, current);
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    set_aside_torn(dir, &file, &path, end)?;
    drop(file);
    let head = match head {
        Some(h) => h,
        None if current == 1 => (0, GENESIS),
        None => last_of(dir, current - 1)?,
    };
    Ok(Recovered {
        head,
        checkpointed,
        end,
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
    std::fs::write(&aside, torn)
        .and_then(|()| File::open(&aside)?.sync_all())
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

/// The segment being written, and the next one being prepared.
struct Tail {
    dir: PathBuf,
    number: u32,
    file: SegmentFile,
    next: Option<JoinHandle<Result<()>>>,
}

impl Tail {
    /// Appends to segment `end.segment` after `end.offset`.
    fn open(dir: &Path, end: Position) -> Result<Self> {
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
    fn write(&mut self, frames: &[u8], ends: &[usize]) -> Result<()> {
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

    fn end(&self) -> Position {
        Position {
            segment: self.number,
            offset: self.file.at(),
        }
    }
}

struct Writer {
    /// Where the jobs wait.
    inbox: Arc<Inbox>,
    tail: Tail,
    key: Arc<SigningKey>,
    /// The last record's number and hash.
    head: (u64, Hash),
    /// The last record a checkpoint covers.
    checkpointed: u64,
    last_checkpoint: Instant,
    /// Where the durable frames end, for the indexer.
    durable: Arc<AtomicU64>,
    /// Why the writer stopped writing, once it has.
    failed: Option<String>,
    /// Frames of the group being written (kept to reuse its allocation).
    frames: Vec<u8>,
}

impl Writer {
    /// Appends until the log is closed or every handle dropped; then
    /// commits what was left, signs a last checkpoint and stops.
    fn run(&mut self) {
        let mut group = Vec::new();
        let mut last_start = Instant::now();
        let mut last_size = 0;
        loop {
            if !self.inbox.wait(Want::records(1), CHECKPOINT_EVERY) {
                self.checkpoint_alone();
                continue;
            }
            if last_size >= PACE_FROM {
                let due = last_start + PACE;
                let paced = Want {
                    records: last_size,
                    claimed: true,
                };
                self.inbox
                    .wait(paced, due.saturating_duration_since(Instant::now()));
            }
            last_start = Instant::now();
            let closed = self.inbox.take(&mut group);
            last_size = group.iter().map(|job| job.records).sum();
            if !group.is_empty() {
                self.commit(&mut group);
            }
            if closed {
                break;
            }
        }
        self.checkpoint_alone();
        // The next segment's preparation ends before the log is closed.
        if let Some(next) = self.tail.next.take() {
            let _ = next.join();
        }
    }

    /// Appends every job of `group` with one write and one sync, then acks
    /// each; `group` is left empty.
    fn commit(&mut self, group: &mut Vec<Job>) {
        if let Some(why) = &self.failed {
            Fanout::send(
                group
                    .drain(..)
                    .map(|job| self.ack(job, Err(why.clone())))
                    .collect(),
            );
            return;
        }
        let started = Instant::now();
        let before = self.head;
        let time = clock::now();
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();
        let mut ends = Vec::with_capacity(group.len() + 1);
        let mut acks: Vec<Ack> = Vec::with_capacity(group.len());
        for job in group.drain(..) {
            let mut rest = &job.entries[..];
            while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                let Some((entry, tail)) = tail.split_at_checked(u32::from_be_bytes(*len) as usize)
                else {
                    break;
                };
                rest = tail;
                let (seq, prev) = (self.head.0 + 1, self.head.1);
                let hash = chain_hash(seq, &time, entry, &prev);
                segment::encode_record_parts(seq, &time, entry, &prev, &hash, &mut frames);
                ends.push(frames.len());
                self.head = (seq, hash);
            }
            acks.push(self.ack(job, Ok(self.head.0)));
        }
        let checkpoint = (self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
            .then(|| sign(&self.key, self.head, &time));
        if let Some(c) = &checkpoint {
            segment::encode_checkpoint(c, &mut frames);
            ends.push(frames.len());
        }
        let written = self.tail.write(&frames, &ends);
        self.frames = frames;
        match written {
            Ok(()) => {
                self.durable
                    .store(self.tail.end().pack(), Ordering::Release);
                metrics::histogram!(AUDIT_COMMIT).record(started.elapsed().as_secs_f64());
                metrics::counter!(AUDIT_RECORDS).increment(self.head.0 - before.0);
                if let Some(c) = checkpoint {
                    self.checkpointed = c.seq;
                    self.last_checkpoint = Instant::now();
                }
            }
            Err(e) => {
                self.fail(&e);
                for (_, outcome, _, _) in &mut acks {
                    *outcome = Err(e.to_string());
                }
            }
        }
        Fanout::send(acks);
    }

    /// `job`'s ack, saying `outcome`, claimed once its request holds it.
    fn ack(&self, job: Job, outcome: Outcome) -> Ack {
        (job.done, outcome, job.entries, Claim::new(&self.inbox))
    }

    fn fail(&mut self, e: &Error) {
        tracing::error!(error = %e, "audit append failed; the audit log takes no more records until the gateway restarts");
        self.failed = Some(format!(
            "the audit writer stopped after a failed write: {e}"
        ));
    }

    /// Signs a checkpoint for records not yet covered, on its own.
    fn checkpoint_alone(&mut self) {
        if self.head.0 == self.checkpointed || self.failed.is_some() {
            return;
        }
        let c = sign(&self.key, self.head, &clock::now());
        let mut frame = Vec::new();
        segment::encode_checkpoint(&c, &mut frame);
        match self.tail.write(&frame, &[frame.len()]) {
            Ok(()) => {
                self.durable
                    .store(self.tail.end().pack(), Ordering::Release);
                tracing::debug!(seq = c.seq, "audit checkpoint signed");
                self.checkpointed = c.seq;
                self.last_checkpoint = Instant::now();
            }
            Err(e) => self.fail(&e),
        }
    }
}

/// A checkpoint of the log up to `head`, signed with `key`.
fn sign(key: &SigningKey, (seq, hash): (u64, Hash), time: &str) -> Checkpoint {
    Checkpoint {
        seq,
        hash,
        time: time.to_owned(),
        signature: key
            .sign(Context::Checkpoint, &checkpoint_message(seq, &hash, time))
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Three acks (1, 2, 3), each with its claim on `inbox`.
    fn three_acks(inbox: &Arc<Inbox>) -> (Vec<Ack>, Vec<oneshot::Receiver<Acked>>) {
        (1..=3u64)
            .map(|n| {
                let (done, waiting) = oneshot::channel();
                ((done, Ok(n), vec![n as u8], Claim::new(inbox)), waiting)
            })
            .unzip()
    }

    /// Each waiter's own outcome and bytes, once whoever holds the rest has
    /// let them go; its claim is settled.
    fn delivered(waiting: oneshot::Receiver<Acked>) -> (Outcome, Vec<u8>) {
        let Acked {
            outcome,
            spent,
            rest,
            claim,
        } = waiting.blocking_recv().expect("an ack");
        drop((rest, claim));
        (outcome, spent)
    }

    fn unclaimed(inbox: &Inbox) -> usize {
        inbox.unclaimed.load(Ordering::Acquire)
    }

    #[test]
    fn every_waiter_of_a_group_is_acked_whatever_the_first_one_does() {
        let inbox = Arc::new(Inbox::default());
        // The first waiter reads its ack and passes the others on.
        let (acks, mut waiting) = three_acks(&inbox);
        Fanout::send(acks);
        assert_eq!(unclaimed(&inbox), 3, "every ack sent is out");
        let first = waiting.remove(0).blocking_recv().unwrap();
        assert_eq!(first.rest.0.len(), 2, "the first waiter carries the rest");
        assert_eq!((first.outcome, first.spent.clone()), (Ok(1), vec![1]));
        drop((first.rest, first.claim));
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0, "every ack claimed");

        // The first waiter is gone before the ack: the writer sends the
        // rest, and the ack it could not deliver is settled with it.
        let (acks, mut waiting) = three_acks(&inbox);
        drop(waiting.remove(0));
        Fanout::send(acks);
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0);

        // The first waiter is gone after the ack arrived, unread: dropping
        // it with its channel sends the rest and settles its claim.
        let (acks, mut waiting) = three_acks(&inbox);
        let first = waiting.remove(0);
        Fanout::send(acks);
        drop(first);
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0);
    }

    /// Returns once the writer sleeps on `inbox`.
    fn asleep(inbox: &Inbox) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while inbox.lock().asleep.is_none() {
            assert!(Instant::now() < deadline, "the writer never slept");
            std::thread::yield_now();
        }
    }

    /// Does `then` on another thread once the writer sleeps on `inbox`.
    fn once_asleep(
        inbox: &Arc<Inbox>,
        then: impl FnOnce(&Inbox) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let inbox = inbox.clone();
        std::thread::spawn(move || {
            asleep(&inbox);
            then(&inbox);
        })
    }

    fn job(records: usize) -> Job {
        Job {
            entries: Vec::new(),
            records,
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn the_writer_waits_for_as_many_records_as_it_wants_or_the_limit() {
        let inbox = Arc::new(Inbox::default());
        // Fewer records than wanted: the wait lasts its whole limit and
        // reports that jobs wait.
        inbox.put(job(1)).map_err(drop).unwrap();
        let started = Instant::now();
        assert!(inbox.wait(Want::records(3), Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));

        // Once the writer sleeps, the record that makes up the count wakes
        // it (a missed wake would leave it asleep to the end of its limit).
        let limit = Duration::from_secs(30);
        let filler = once_asleep(&inbox, |inbox| inbox.put(job(2)).map_err(drop).unwrap());
        let started = Instant::now();
        assert!(inbox.wait(Want::records(3), limit));
        assert!(started.elapsed() < limit, "woken by the put");
        filler.join().unwrap();
        let mut group = Vec::new();
        assert!(!inbox.take(&mut group));
        assert_eq!(group.iter().map(|j| j.records).sum::<usize>(), 3);

        // Taken, the count starts again; the close ends any wait.
        assert!(!inbox.wait(Want::records(1), Duration::from_millis(10)));
        let closer = once_asleep(&inbox, Inbox::close);
        let started = Instant::now();
        assert!(inbox.wait(Want::records(1), limit));
        assert!(started.elapsed() < limit, "woken by the close");
        closer.join().unwrap();
        assert!(inbox.put(job(1)).is_err(), "a closed inbox takes no job");
    }

    #[test]
    fn a_paced_group_waits_until_every_ack_sent_is_claimed() {
        let inbox = Arc::new(Inbox::default());
        let limit = Duration::from_secs(30);
        let paced = Want {
            records: 2,
            claimed: true,
        };
        inbox.put(job(2)).map_err(drop).unwrap();
        // Nothing out: the records are enough.
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit);

        // Two acks out: the records alone are not enough, and the wait
        // lasts its whole limit, unless only records are wanted.
        let (first, second) = (Claim::new(&inbox), Claim::new(&inbox));
        let started = Instant::now();
        assert!(inbox.wait(paced, Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let started = Instant::now();
        assert!(inbox.wait(Want::records(2), limit));
        assert!(started.elapsed() < limit);

        // One claim settled, one still out: the writer sleeps until the
        // last one is settled, which wakes it.
        drop(first);
        let claimer = once_asleep(&inbox, move |_| drop(second));
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit, "woken by the last claim");
        claimer.join().unwrap();
        assert_eq!(unclaimed(&inbox), 0);

        // Claims settled, the records that make up the count wake it.
        let mut group = Vec::new();
        inbox.take(&mut group);
        let filler = once_asleep(&inbox, |inbox| inbox.put(job(2)).map_err(drop).unwrap());
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit, "woken by the put");
        filler.join().unwrap();
    }
}
