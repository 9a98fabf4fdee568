//! The audit log: every request to `ExchangeService`, `RegistryService` and
//! `CitizenService` — granted or refused, each record of a batch — as an
//! append-only, hash-chained record, durable before the answer leaves.
//!
//! - [`record`]: what a record holds and how it is chained.
//! - [`log`]: the writer ([`AuditLog`]): group commit and signed checkpoints.
//! - [`store`]: the SQLite file beside the registry.
//! - [`index`]: which records concern which citizen, kept up to date off
//!   the request path.
//! - [`verify()`]: the chain and checkpoint walk behind `lienthong audit verify`.
//! - [`AccessList`]: a citizen's view, behind `CitizenService.ListAccesses`.
//!
//! The log holds Pids, agencies, purposes, field names and outcomes — never a
//! name, a date of birth or an address.

mod index;
mod log;
mod record;
mod store;
mod verify;

pub use index::index_path;
pub use log::{AuditLog, AuditWriter, CHECKPOINT_EVERY};
pub use record::{AuditEntry, AuditRecord, Decision, Hash};
pub use store::{Checkpoint, StoredAccess};
pub use verify::{Anchor, AuditReport, Problem, verify, verify_anchored};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lienthong_proto::Pid;
use rusqlite::Connection;

use crate::clock;
use crate::error::{Error, Result};
use crate::policy::{LivePolicy, Role};

/// `CitizenService` operations: granted, they are the citizen's own acts
/// through the identity provider, not accesses by others, so `ListAccesses`
/// leaves them out; refused, they are someone else trying, and are shown.
pub const CITIZEN_OPERATIONS: [&str; 3] = ["grant_consent", "revoke_consent", "list_accesses"];

/// Accesses per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most accesses per page.
pub const MAX_PAGE: usize = 500;

/// One page of a citizen's accesses, newest first.
#[derive(Debug, Clone)]
pub struct AccessPage {
    /// Each access with the agency's display name.
    pub accesses: Vec<(StoredAccess, String)>,
    /// Where the next page starts, if there is one.
    pub next: Option<u64>,
}

/// The domain behind `ListAccesses`: a citizen's accesses, read from the log.
#[derive(Clone)]
pub struct AccessList {
    policy: LivePolicy,
    path: PathBuf,
    reader: Arc<Mutex<Option<Connection>>>,
}

impl AccessList {
    /// Reads the log at `path`.
    pub fn new(policy: LivePolicy, path: &Path) -> Self {
        Self {
            policy,
            path: path.to_path_buf(),
            reader: Arc::new(Mutex::new(None)),
        }
    }

    /// [`AccessList::list`] on the blocking pool: the read may wait for the
    /// disk, and must not hold up the runtime's workers.
    pub async fn list_off_runtime(
        &self,
        caller: &str,
        citizen: Pid,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<AccessPage> {
        let list = self.clone();
        let caller = caller.to_owned();
        tokio::task::spawn_blocking(move || list.list(&caller, citizen, page_size, before))
            .await
            .map_err(|_| Error::Task)?
    }

    /// Up to `page_size` accesses to `citizen`'s data before record `before`
    /// (the previous page's `next`), for the identity provider `caller`.
    /// Confidential accesses appear once their hidden-until time has passed.
    pub fn list(
        &self,
        caller: &str,
        citizen: Pid,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<AccessPage> {
        let policy = self.policy.current();
        policy.authorize_role(caller, Role::IdentityProvider, "list_accesses")?;
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => {
                return Err(Error::invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE}"),
                ));
            }
        };
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if reader.is_none() {
            *reader = Some(index::open_reader(&self.path)?);
        }
        let conn = reader.as_ref().ok_or(Error::Task)?;
        let mut rows = store::accesses(
            conn,
            citizen,
            before.unwrap_or(u64::MAX),
            limit + 1,
            &CITIZEN_OPERATIONS,
            &clock::now(),
        )?;
        let next = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map_or(0, |a| a.seq)
        });
        Ok(AccessPage {
            accesses: rows
                .into_iter()
                .map(|a| {
                    let name = policy.agency_name(&a.agency).unwrap_or("").to_owned();
                    (a, name)
                })
                .collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests;
