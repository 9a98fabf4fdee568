//! The audit log on this machine's disk: the handle requests append
//! through ([`AuditLog`], an [`AuditTrail`]) and the threads behind it.
//!
//! ```text
//! request ─▶ AuditLog::append(entries) ─▶ barrier (inbox) ─▶ writer thread
//!              encodes them, awaits its ack                 group commit,
//!                                                           checkpoints
//!                                            pipe ◀──────── one pwrite +
//!                                  (segments, O_DIRECT)     fdatasync a group
//!                              index thread follows the durable end
//! ```
//!
//! A request waits for one `fdatasync` however many requests share it, so
//! the cost of durability is spread over everything in flight (group
//! commit); it never waits for the citizen index, which a thread of its
//! own ([`super::index`]) keeps up. Each caller waits for its own ack, so
//! the inbox holds at most what the server has in flight. Opening the log
//! recovers it first ([`super::recovery`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::barrier::{Acked, Inbox, Inlet, Job};
use super::index::Indexer;
use super::pipe::Tail;
use super::record::{AuditEntry, encode_entry};
use super::recovery::recover;
use super::writer::Writer;
use super::{AuditTrail, Pending};
use crate::error::{Error, Result};
use crate::signing::SigningKey;

/// The handle requests append through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    /// The last handle dropped closes the log.
    inlet: Arc<Inlet>,
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
        crate::private::create_dir(dir).map_err(Error::io(dir))?;
        let taken = take(dir)?;
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
                // Only then may another process take the log.
                drop(taken);
            }),
        )?;
        Ok((
            Self {
                inlet: Arc::new(Inlet(inbox.clone())),
            },
            AuditWriter {
                thread: writing,
                inbox,
            },
        ))
    }

    /// Appends `entries` (in order, adjacent) and returns once they are
    /// durable, with the last one's number.
    pub async fn append(&self, entries: Vec<AuditEntry>) -> Result<u64> {
        let inlet = &self.inlet;
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

impl AuditTrail for AuditLog {
    fn append(&self, entries: Vec<AuditEntry>) -> Pending<'_> {
        Box::pin(AuditLog::append(self, entries))
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

/// Takes the log in `dir` for this process: `DIR/lock`, locked exclusively
/// until the writer's thread ends. A second `serve` on the same data
/// directory then refuses to start, naming the file, rather than append to
/// the same segments (and serve verifications from a projection that
/// misses the other's writes).
pub(super) fn take(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let file = crate::private::options(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(&path)
    .map_err(Error::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Audit(format!(
            "{}: the audit log is in use by another lienthong process (one serve a data directory)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path)(e)),
    }
}
