//! `lienthong certs`: the development PKI for the agencies in the policy.

use super::DataDir;
use crate::error::Result;
use crate::signing::SigningKey;
use crate::tls::{PkiReport, ensure_pki, publish_signing_key};

/// Creates whatever is missing of the CA, the gateway's certificate and one
/// certificate per agency in the data directory's policy, and the gateway's
/// signing key; writes its public half where the event consumers read it.
pub fn certs(dir: &DataDir) -> Result<PkiReport> {
    let policy = dir.prepare()?;
    let mut report = ensure_pki(&dir.pki(), policy.agencies.keys().map(String::as_str))?;
    let key = SigningKey::load_or_create(&dir.signing_key())?;
    report
        .created
        .extend(publish_signing_key(&dir.pki(), &key.verifying_key())?.created);
    Ok(report)
}
