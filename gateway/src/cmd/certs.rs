//! `lienthong certs`: the development PKI for the agencies in the policy.

use super::DataDir;
use crate::error::Result;
use crate::tls::{PkiReport, ensure_pki};

/// Creates whatever is missing of the CA, the gateway's certificate and one
/// certificate per agency in the data directory's policy.
pub fn certs(dir: &DataDir) -> Result<PkiReport> {
    let policy = dir.prepare()?;
    ensure_pki(&dir.pki(), policy.agencies.keys().map(String::as_str))
}
