//! `lienthong health`: asks a running gateway's `grpc.health.v1.Health`
//! whether it serves — the container's health check — and how far its
//! verification projection has followed the outbox.
//!
//! The gateway admits mutual TLS only; the probe presents the probe
//! certificate from the data directory (`pki/probe.pem`, issued by the same
//! CA to no agency), so it needs no agency's key and can do nothing else.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::DataDir;
use crate::error::{Error, Result};
use crate::projection::SEQ_HEADER;

/// How long the probe may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a gateway answered a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The status of the service asked about.
    pub status: ServingStatus,
    /// The outbox `seq` its verification projection has applied, when the
    /// answer names it.
    pub projection_seq: Option<u64>,
}

/// The status `service` (empty: the gateway as a whole) reports at `addr`.
pub async fn health(dir: &DataDir, addr: SocketAddr, service: &str) -> Result<Health> {
    let pki = dir.pki();
    let read = |path: std::path::PathBuf| std::fs::read(&path).map_err(Error::io(path));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(pki.ca_cert())?))
        .identity(Identity::from_pem(
            read(pki.probe_cert())?,
            read(pki.probe_key())?,
        ))
        .domain_name("localhost");
    let probe = async {
        let channel = Channel::from_shared(format!("https://{addr}"))
            .map_err(|e| Error::Server(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| Error::Tls(e.to_string()))?
            .connect()
            .await
            .map_err(|e| Error::Server(format!("cannot reach {addr}: {e}")))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| Error::Server(format!("health check failed: {}", s.message())))?;
        let projection_seq = answer
            .metadata()
            .get(SEQ_HEADER)
            .and_then(|seq| seq.to_str().ok()?.parse().ok());
        Ok(Health {
            status: answer.into_inner().status(),
            projection_seq,
        })
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| Error::Server(format!("no answer from {addr} within 5 s")))?
}
