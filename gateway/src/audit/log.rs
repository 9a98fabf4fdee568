//! The audit writer: one thread that appends, chains and commits records in
//! groups, and signs checkpoints.
//!
//! ```text
//! request ─▶ AuditLog::append(entries) ─▶ queue ─▶ writer thread:
//!              awaits its ack               take every job waiting (one group)
//!                                           number + chain each record
//!                                           checkpoint if one is due
//!                                           one durable commit (fsync)
//!            ◀──────── ack ─────────────── ack every job of the group
//! ```
//!
//! A request waits for one fsync however many requests share it, so the
//! cost of durability is spread over everything in flight (group commit).
//! It never waits for the citizen index: a thread of its own
//! ([`super::index`]) brings that up to date every half second.
//! Each caller waits for its own ack, so the queue holds at most what the
//! server has in flight. A checkpoint is signed at most every
//! [`CHECKPOINT_EVERY`] while records arrive, and when the log closes.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::index::Indexer;
use super::record::{AuditEntry, AuditRecord, GENESIS, Hash, checkpoint_message};
use super::store::{self, Checkpoint};
use crate::clock;
use crate::error::{Error, Result};
use crate::signing::{Context, SigningKey};
use crate::telemetry::{AUDIT_COMMIT, AUDIT_RECORDS};

/// How often a checkpoint is signed while records arrive.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Most records committed in one group.
const MAX_GROUP: usize = 50_000;

struct Job {
    entries: Vec<AuditEntry>,
    done: oneshot::Sender<Result<u64, String>>,
}

/// What the writer is sent.
enum Message {
    /// Records to append.
    Append(Job),
    /// Commit what is queued, sign a last checkpoint and stop; later
    /// appends fail (their requests get `AUDIT_UNAVAILABLE`).
    Close,
}

/// The handle requests append through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    /// `None` for [`AuditLog::off`].
    jobs: Option<mpsc::Sender<Message>>,
}

/// The writer and index threads, to close the log when serving stops.
pub struct AuditWriter {
    /// The writer's thread, which ends after the indexer's.
    thread: std::thread::JoinHandle<()>,
    /// Tells the writer to close.
    close: mpsc::Sender<Message>,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` and its index, and
    /// starts the writer, which signs checkpoints with `key`, and the
    /// indexer. The writer stops, after a last checkpoint, once every
    /// `AuditLog` clone is dropped; the indexer then catches up and stops.
    pub fn open(path: &Path, key: Arc<SigningKey>) -> Result<(Self, AuditWriter)> {
        let conn = store::open_writer(path)?;
        let head = store::head(&conn)?;
        let checkpointed = store::checkpoints(&conn)?.last().map_or(0, |c| c.seq);
        let indexer = Indexer::open(path)?;
        let (stop_indexer, stopped) = mpsc::channel();
        let (jobs, queue) = mpsc::channel();
        let mut writer = Writer {
            conn,
            key,
            head: head.unwrap_or((0, GENESIS)),
            checkpointed,
            last_checkpoint: Instant::now(),
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
                writer.run(queue);
                // The index catches up with the last records, then the
                // writer's connection closes last, folding the WAL into the
                // file.
                drop(stop_indexer);
                let _ = indexing.join();
                drop(writer);
            }),
        )?;
        Ok((
            Self {
                jobs: Some(jobs.clone()),
            },
            AuditWriter {
                thread: writing,
                close: jobs,
            },
        ))
    }

    /// A log that records nothing: only for measuring what the audit costs
    /// (the benchmark's baseline). `lienthong serve` never uses it.
    pub fn off() -> Self {
        Self { jobs: None }
    }

    /// Appends `entries` (in order, adjacent) and returns once they are
    /// durable, with the last one's number.
    pub async fn append(&self, entries: Vec<AuditEntry>) -> Result<u64> {
        let Some(jobs) = &self.jobs else {
            return Ok(0);
        };
        let (done, ack) = oneshot::channel();
        jobs.send(Message::Append(Job { entries, done }))
            .map_err(|_| Error::Audit("the audit writer has stopped".into()))?;
        ack.await
            .map_err(|_| Error::Audit("the audit writer has stopped".into()))?
            .map_err(Error::Audit)
    }
}

impl AuditWriter {
    /// Closes the log: what is queued is committed, a last checkpoint is
    /// signed and the index catches up, even while some [`AuditLog`] handles
    /// remain (requests still in flight then get `AUDIT_UNAVAILABLE`).
    /// Waits up to `limit`; whether it closed.
    pub async fn close(self, limit: Duration) -> bool {
        let _ = self.close.send(Message::Close);
        let joined = tokio::task::spawn_blocking(move || self.thread.join().is_ok());
        matches!(tokio::time::timeout(limit, joined).await, Ok(Ok(true)))
    }
}

struct Writer {
    conn: Connection,
    key: Arc<SigningKey>,
    /// The last record's number and hash.
    head: (u64, Hash),
    /// The last record a checkpoint covers.
    checkpointed: u64,
    last_checkpoint: Instant,
}

impl Writer {
    /// Appends until told to close or every sender is gone; then commits
    /// what was queued, signs a last checkpoint and drops the queue.
    fn run(&mut self, queue: mpsc::Receiver<Message>) {
        let mut closing = false;
        while !closing {
            let first = match queue.recv_timeout(CHECKPOINT_EVERY) {
                Ok(Message::Append(job)) => job,
                Ok(Message::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.checkpoint_alone();
                    continue;
                }
            };
            let mut group = vec![first];
            let mut records = group[0].entries.len();
            while records < MAX_GROUP {
                match queue.try_recv() {
                    Ok(Message::Append(job)) => {
                        records += job.entries.len();
                        group.push(job);
                    }
                    Ok(Message::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
        let queued: Vec<Job> = queue
            .try_iter()
            .filter_map(|m| match m {
                Message::Append(job) => Some(job),
                Message::Close => None,
            })
            .collect();
        if !queued.is_empty() {
            self.commit(queued);
        }
        self.checkpoint_alone();
    }

    /// Appends every job of `group` in one transaction, then acks each.
    fn commit(&mut self, group: Vec<Job>) {
        let started = Instant::now();
        let before = self.head;
        let mut lasts = Vec::with_capacity(group.len());
        let mut jobs = Vec::with_capacity(group.len());
        let mut entries_of = Vec::with_capacity(group.len());
        for job in group {
            entries_of.push(job.entries);
            jobs.push(job.done);
        }
        let outcome = (|| -> Result<Option<Checkpoint>> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let time = clock::now();
            for entries in entries_of {
                for entry in entries {
                    let record =
                        AuditRecord::chain(self.head.0 + 1, time.clone(), entry, self.head.1);
                    store::insert(&tx, &record)?;
                    self.head = (record.seq, record.hash);
                }
                lasts.push(self.head.0);
            }
            let checkpoint = (self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
                .then(|| sign(&self.key, self.head, &time));
            if let Some(c) = &checkpoint {
                store::insert_checkpoint(&tx, c)?;
            }
            tx.commit()?;
            Ok(checkpoint)
        })();
        match outcome {
            Ok(checkpoint) => {
                metrics::histogram!(AUDIT_COMMIT).record(started.elapsed().as_secs_f64());
                metrics::counter!(AUDIT_RECORDS).increment(self.head.0 - before.0);
                if let Some(c) = checkpoint {
                    self.checkpointed = c.seq;
                    self.last_checkpoint = Instant::now();
                }
                for (done, last) in jobs.into_iter().zip(lasts) {
                    let _ = done.send(Ok(last));
                }
            }
            Err(e) => {
                self.head = before;
                tracing::error!(error = %e, "audit append failed; the requests are not answered");
                for done in jobs {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }

    /// Signs a checkpoint for records not yet covered, on its own.
    fn checkpoint_alone(&mut self) {
        if self.head.0 == self.checkpointed {
            return;
        }
        let c = sign(&self.key, self.head, &clock::now());
        match store::insert_checkpoint(&self.conn, &c) {
            Ok(()) => {
                tracing::debug!(seq = c.seq, "audit checkpoint signed");
                self.checkpointed = c.seq;
                self.last_checkpoint = Instant::now();
            }
            Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
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
