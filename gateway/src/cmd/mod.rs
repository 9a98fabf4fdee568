//! The `lienthong` commands, as library functions: `main` parses arguments
//! and calls these.
//!
//! A data directory holds everything one gateway needs:
//!
//! ```text
//! DIR/policy.toml     who may do what (the shipped default on first use)
//! DIR/registry.db     the population registry, its outbox and the
//!                     registry writes' receipts (SQLite)
//! DIR/audit/          the audit log: hash-chained records and signed
//!                     checkpoints in segments (NNNNNNNN.seg), and
//!                     index.db, which records concern which citizen (derived)
//! DIR/keys/signing.pk8  the gateway's Ed25519 key: consent tokens and
//!                     audit checkpoints (created on first start, 0600)
//! DIR/pki/            development CA, gateway, agency and adapter certificates
//! DIR/adapters/       the sector adapters' stores, under `lienthong up`
//! ```

mod audit;
mod certs;
mod check;
mod health;
mod outbox;
mod seed;
mod serve;
mod up;

pub use audit::{audit_verify, audit_verify_shared};
pub use certs::certs;
pub use check::{Finding, check};
pub use health::{Health, health};
pub use outbox::{OutboxReport, outbox};
pub use seed::{SeedOptions, seed};
pub use serve::{ServeOptions, StoreChoice, serve};
pub use up::up;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::policy::{DEFAULT_POLICY, Policy};
use crate::tls::PkiLayout;

/// The files of a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registry database.
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.db")
    }

    /// The audit log's directory.
    pub fn audit(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// The gateway's signing key.
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("keys").join("signing.pk8")
    }

    /// The policy file.
    pub fn policy(&self) -> PathBuf {
        self.root.join("policy.toml")
    }

    /// The development PKI.
    pub fn pki(&self) -> PkiLayout {
        PkiLayout::under(&self.root)
    }

    /// Whether a gateway has served from this directory: it holds an audit
    /// log. From then on nothing the directory holds is re-created.
    pub fn has_served(&self) -> bool {
        self.audit().is_dir()
    }

    /// Creates the directory and, when it has none, the default policy;
    /// returns the (validated) policy.
    pub fn prepare(&self) -> Result<Policy> {
        crate::private::create_dir(&self.root).map_err(Error::io(&self.root))?;
        let policy = self.policy();
        if !policy.exists() {
            std::fs::write(&policy, DEFAULT_POLICY).map_err(Error::io(&policy))?;
            tracing::info!(path = %policy.display(), "wrote the default policy");
        }
        Policy::load(&policy)
    }
}
