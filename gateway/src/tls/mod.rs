//! Mutual TLS: who is calling.
//!
//! The gateway accepts TLS 1.3 only, requires a client certificate issued by
//! its CA, and takes the agency id from the certificate's subject CN — once
//! per connection, in [`acceptor`]. No valid certificate, no connection.
//! The crypto provider is *ring*, named explicitly, so no process-wide
//! provider has to be installed.

mod acceptor;
mod pki;

pub use acceptor::{AuthenticatedStream, ConnectionLimits, MAX_HANDSHAKES, Peer, incoming};
pub use pki::{
    PROBE, PkiLayout, PkiReport, RESERVED_CNS, ensure_pki, issue_client, publish_signing_key,
};

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The ring crypto provider, the only one compiled in.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

/// The server's TLS configuration from the PKI under `layout`: TLS 1.3, the
/// gateway's certificate, client certificates required and verified against
/// the CA, ALPN `h2`.
pub fn server_config(layout: &PkiLayout) -> Result<Arc<ServerConfig>> {
    let mut roots = RootCertStore::empty();
    for ca in certs(&layout.ca_cert())? {
        roots
            .add(ca)
            .map_err(|e| Error::Tls(format!("{}: {e}", layout.ca_cert().display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(layout.gateway_key())
        .map_err(|e| Error::Tls(format!("{}: {e}", layout.gateway_key().display())))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&layout.gateway_cert())?, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The subject CN of a DER certificate.
pub(crate) fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
