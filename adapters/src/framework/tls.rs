//! Mutual TLS between the gateway and the adapters.
//!
//! ```text
//! PKI (made by the gateway: `lienthong certs`, first start, `lienthong up`)
//!   ca.pem                              the gateway's CA
//!   adapters/<sector>.pem, .key         an adapter's server certificate,
//!                                       DNS name <sector>.adapter.lienthong
//!   gateway-client.pem, .key            the gateway as a client,
//!                                       CN lienthong-gateway
//! ```
//!
//! The gateway verifies an adapter by its DNS name whatever host it dials,
//! so the same certificates serve on loopback and behind container names.
//! An adapter takes calls from a client certificate of the CA with the
//! gateway's CN, and from nobody else: agencies' certificates are refused.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// The subject CN of the gateway's client certificate.
pub const GATEWAY_CN: &str = "lienthong-gateway";

/// The DNS name in `sector`'s server certificate.
pub fn server_name(sector: &str) -> String {
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

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Tls(format!(
            "{}: {e} (the gateway creates it: lienthong certs)",
            path.display()
        ))
    })
}

/// The adapter's server TLS: its certificate, client certificates required
/// and verified against the CA.
pub fn server_tls(pki_dir: &Path, sector: &str) -> Result<ServerTlsConfig> {
    let identity = Identity::from_pem(
        read(&adapter_cert(pki_dir, sector))?,
        read(&adapter_key(pki_dir, sector))?,
    );
    let ca = Certificate::from_pem(read(&pki_dir.join("ca.pem"))?);
    Ok(ServerTlsConfig::new().identity(identity).client_ca_root(ca))
}

/// Lets through calls whose client certificate is the gateway's.
pub(crate) fn only_the_gateway(request: Request<()>) -> Result<Request<()>, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let cn = certs.first().and_then(|cert| {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let cn = parsed.subject().iter_common_name().next()?;
        cn.as_str().ok().map(str::to_owned)
    });
    match cn.as_deref() {
        Some(GATEWAY_CN) => Ok(request),
        _ => Err(Status::permission_denied(
            "only the lienthong gateway may call a sector adapter",
        )),
    }
}
