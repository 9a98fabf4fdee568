//! Work that may wait on a disk or a network — the store, the consent book,
//! the audit index — runs on tokio's blocking threads, never on a runtime
//! worker: a slow store then delays its own callers, not every connection
//! the worker serves. The embedded store reads a local file; a shared one
//! (PostgreSQL) waits on the network.

use crate::error::{Error, Result};

/// Runs `work` on a blocking thread, and gives its result.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Task)?
}
