//! `lienthong audit verify`: checks a data directory's audit log against the
//! gateway's signing key.

use super::DataDir;
use crate::audit::{self, AuditReport};
use crate::error::Result;
use crate::signing::{SigningKey, VerifyingKey};

/// Verifies `dir`'s audit log; also returns the public key it checked
/// against, for the operator to compare with the one on record.
pub fn audit_verify(dir: &DataDir) -> Result<(AuditReport, VerifyingKey)> {
    let key = SigningKey::load(&dir.signing_key())?.verifying_key();
    Ok((audit::verify(&dir.audit(), &key)?, key))
}
