//! The audit writer's thread: it takes the waiting jobs as one group,
//! numbers and chains each record, signs a checkpoint when one is due,
//! appends the group with one write and makes it durable with one
//! `fdatasync`, then acks every job.
//!
//! ```text
//! loop: wait for a job (or CHECKPOINT_EVERY: a checkpoint alone)
//!       under load (the last group held PACE_FROM or more records): wait
//!         until as many records as the last group held have come and every
//!         ack sent is claimed, or PACE after the last group began
//!       take the group ─ chain ─ checkpoint if due ─ one pwrite + fdatasync
//!       ack: the group's first waiter wakes the rest
//! ```
//!
//! Pacing lets each wake-up and each sync serve more requests when the
//! server is busy; a lone request is written at once. A failed write or
//! sync stops the writer for good (the requests get `AUDIT_UNAVAILABLE`):
//! after a failed `fdatasync` nothing says what the disk holds, and the
//! next start reads it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::barrier::{Ack, Claim, Fanout, Inbox, Job, Outcome, Want};
use super::pipe::Tail;
use super::record::{Checkpoint, Hash, chain_hash, checkpoint_message};
use super::segment;
use crate::clock;
use crate::error::Error;
use crate::signing::{Context, SigningKey};
use crate::telemetry::{AUDIT_COMMIT, AUDIT_RECORDS};

/// How often a checkpoint is signed while records arrive.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Under load, the longest a group waits to be as large as the last one
/// and for the acks sent to be claimed, from the start of the last one.
pub const PACE: Duration = Duration::from_millis(2);
/// A group at least this large means load: the next one is paced.
pub const PACE_FROM: usize = 8;

pub(super) struct Writer {
    /// Where the jobs wait.
    pub(super) inbox: Arc<Inbox>,
    /// Where the frames go.
    pub(super) tail: Tail,
    /// Signs the checkpoints.
    pub(super) key: Arc<SigningKey>,
    /// The last record's number and hash.
    pub(super) head: (u64, Hash),
    /// The last record a checkpoint covers.
    pub(super) checkpointed: u64,
    /// When the last checkpoint was signed.
    pub(super) last_checkpoint: Instant,
    /// Where the durable frames end, for the indexer.
    pub(super) durable: Arc<AtomicU64>,
    /// Why the writer stopped writing, once it has.
    pub(super) failed: Option<String>,
    /// Frames of the group being written (kept to reuse its allocation).
    pub(super) frames: Vec<u8>,
}

impl Writer {
    /// Appends until the log is closed or every handle dropped; then
    /// commits what was left, signs a last checkpoint and stops.
    pub(super) fn run(&mut self) {
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
        self.tail.finish_preparing();
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
pub(super) fn sign(key: &SigningKey, (seq, hash): (u64, Hash), time: &str) -> Checkpoint {
    Checkpoint {
        seq,
        hash,
        time: time.to_owned(),
        signature: key
            .sign(Context::Checkpoint, &checkpoint_message(seq, &hash, time))
            .to_vec(),
    }
}
