//! `lienthong audit verify`: checks a data directory's audit log against the
//! gateway's signing key.

use super::DataDir;
use crate::audit::{self, Anchor, AuditReport, ChainAnchor, ChainReport};
use crate::error::Result;
use crate::signing::{SigningKey, VerifyingKey};

/// Verifies `dir`'s audit log against `public_key` (by default the public
/// half of the gateway's own key), and against `anchor` if given; also
/// returns the public key it checked against, for the operator to compare
/// with the one on record.
pub fn audit_verify(
    dir: &DataDir,
    public_key: Option<VerifyingKey>,
    anchor: Option<Anchor>,
) -> Result<(AuditReport, VerifyingKey)> {
    let key = match public_key {
        Some(key) => key,
        None => SigningKey::load(&dir.signing_key())?.verifying_key(),
    };
    Ok((audit::verify_anchored(&dir.audit(), &key, anchor)?, key))
}

/// Verifies every replica's chain in the shared store at `url` against
/// `public_key` (by default the public half of the data directory's key,
/// which a cluster's replicas share), and each of `anchors`; also returns
/// the key it checked against.
pub fn audit_verify_shared(
    dir: &DataDir,
    url: &str,
    public_key: Option<VerifyingKey>,
    anchors: &[ChainAnchor],
) -> Result<(Vec<ChainReport>, VerifyingKey)> {
    let key = match public_key {
        Some(key) => key,
        None => SigningKey::load(&dir.signing_key())?.verifying_key(),
    };
    Ok((audit::verify_shared(url, &key, anchors)?, key))
}
