//! The certificate-name rules between the gateway and the adapters, and
//! where an adapter's certificate lies in a PKI directory.
//!
//! ```text
//! PKI directory (made by the gateway: `lienthong certs`, first start, `up`)
//!   ca.pem                              the gateway's CA
//!   adapters/<sector>.pem, .key         an adapter's server certificate,
//!                                       DNS name <sector>.adapter.lienthong
//!                                       (underscores become hyphens)
//!   gateway-client.pem, .key            the gateway as a client,
//!                                       CN lienthong-gateway
//! ```
//!
//! The gateway verifies an adapter by its DNS name whatever host it dials,
//! so the same certificates serve on loopback and behind container names;
//! an adapter takes calls only from the CA's certificate with the
//! gateway's CN.

use std::path::{Path, PathBuf};

/// The subject CN of the gateway's client certificate.
pub const GATEWAY_CN: &str = "lienthong-gateway";

/// The subject CN of the health probe's client certificate: it may ask
/// health and nothing else.
pub const PROBE_CN: &str = "lienthong-health-probe";

/// Subject CNs no agency may take.
pub const RESERVED_CNS: [&str; 2] = [PROBE_CN, GATEWAY_CN];

/// The DNS name in `sector`'s server certificate.
pub fn adapter_server_name(sector: &str) -> String {
    format!("{}.adapter.lienthong", sector.replace('_', "-"))
}

/// Where an adapter's certificate is under a PKI directory.
pub fn adapter_cert(pki_dir: &Path, sector: &str) -> PathBuf {
    pki_dir.join("adapters").join(format!("{sector}.pem"))
}

/// Where an adapter's key is under a PKI directory.
pub fn adapter_key(pki_dir: &Path, sector: &str) -> PathBuf {
    pki_dir.join("adapters").join(format!("{sector}.key"))
}

/// The gateway's public signing key (64 hex digits) in a PKI directory:
/// what a consumer checks each event's signature with.
pub fn gateway_signing_key(pki_dir: &Path) -> PathBuf {
    pki_dir.join("gateway-signing.pub")
}

/// The CA's certificate in a PKI directory.
pub fn ca_cert(pki_dir: &Path) -> PathBuf {
    pki_dir.join("ca.pem")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sector_name_becomes_a_dns_label() {
        assert_eq!(
            adapter_server_name("social_insurance"),
            "social-insurance.adapter.lienthong"
        );
        assert_eq!(
            adapter_cert(Path::new("/p"), "health"),
            Path::new("/p/adapters/health.pem")
        );
    }
}
