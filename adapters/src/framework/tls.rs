//! An adapter's mutual TLS: its server certificate from the gateway's PKI
//! directory (names and places as `lienthong_proto::pki` lays them out),
//! and calls taken from a client certificate of the CA with the gateway's
//! CN, and from nobody else: agencies' certificates are refused.

use std::path::Path;

use lienthong_proto::pki::{GATEWAY_CN, adapter_cert, adapter_key, ca_cert};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::error::{Error, Result};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Tls(format!(
            "{}: {e} (the gateway creates it: lienthong certs)",
            path.display()
        ))
    })
}

/// The gateway's public signing key, from `gateway-signing.pub` in the PKI
/// directory (64 hex digits; `lienthong certs` writes it).
pub fn gateway_signing_key(pki_dir: &Path) -> Result<[u8; 32]> {
    let path = lienthong_proto::pki::gateway_signing_key(pki_dir);
    let text = read(&path)?;
    let text = text.trim();
    let bytes = (text.len() == 64 && text.is_ascii())
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .flatten()
        .ok_or_else(|| {
            Error::Tls(format!(
                "{}: not an Ed25519 public key (64 hex digits; lienthong certs writes it)",
                path.display()
            ))
        })?;
    let mut key = [0; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// The adapter's server TLS: its certificate, client certificates required
/// and verified against the CA.
pub fn server_tls(pki_dir: &Path, sector: &str) -> Result<ServerTlsConfig> {
    let identity = Identity::from_pem(
        read(&adapter_cert(pki_dir, sector))?,
        read(&adapter_key(pki_dir, sector))?,
    );
    let ca = Certificate::from_pem(read(&ca_cert(pki_dir))?);
    Ok(ServerTlsConfig::new().identity(identity).client_ca_root(ca))
}

/// Lets through calls whose client certificate is the gateway's.
pub(crate) fn only_the_gateway(request: Request<()>) -> Result<Request<()>, Status> {
    let certs = request
        .extensions()
        .get::<super::service::ConnectInfo>()
        .and_then(|info| info.peer_certs())
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
