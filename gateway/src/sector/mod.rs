//! The sector adapters as the gateway reaches them for `QuerySector`.
//!
//! ```text
//! QuerySector ─▶ policy (grant names sector.query) ─▶ registry (Pid known)
//!             ─▶ Sectors::lookup ─▶ SectorLink: breaker ─▶ permit ─▶ mTLS call
//!                                      │ open: refused   │ none: refused
//!                                      ▼                 ▼ deadline: refused
//!                               UNAVAILABLE / SECTOR_UNAVAILABLE + RetryInfo
//! ```
//!
//! Each adapter has its own channel (lazily connected, HTTP/2), its own
//! bound on calls in flight and its own breaker, so a slow or dead adapter
//! costs the others — and the gateway's other work — nothing. The gateway
//! presents `pki/gateway-client.pem` and checks the adapter's certificate
//! for `<sector>.adapter.lienthong`, whatever host it dials.

mod breaker;
mod link;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lienthong_proto::Pid;
use lienthong_proto::pki::adapter_server_name;
use lienthong_proto::sector::{self, query_name};
use lienthong_proto::v1::SectorAnswer;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use self::link::SectorLink;
use crate::error::{Error, Result};
use crate::tls::PkiLayout;

/// Where one sector's adapter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorEndpoint {
    /// The sector, e.g. `health`.
    pub sector: String,
    /// Its URL, e.g. `https://127.0.0.1:50062`.
    pub url: String,
}

/// The adapters' endpoints as `sector=URL,…`: every sector on 127.0.0.1 at
/// its default port.
pub static DEFAULT_ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    sector::ALL
        .iter()
        .map(|s| format!("{}=https://127.0.0.1:{}", s.name, s.default_port))
        .collect::<Vec<_>>()
        .join(",")
});

/// Reads `sector=URL,sector=URL,…`; every name must be a sector.
pub fn parse_endpoints(text: &str) -> Result<Vec<SectorEndpoint>, String> {
    let names = sector::names();
    let mut out: Vec<SectorEndpoint> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (sector, url) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not sector=URL"))?;
        if !names.contains(&sector) {
            return Err(format!(
                "{sector:?} is not a sector; the sectors are {}",
                names.join(", ")
            ));
        }
        if !url.starts_with("https://") {
            return Err(format!(
                "{sector}: {url:?} must be an https:// URL (mutual TLS)"
            ));
        }
        if out.iter().any(|e| e.sector == sector) {
            return Err(format!("{sector} is named twice"));
        }
        out.push(SectorEndpoint {
            sector: sector.to_owned(),
            url: url.to_owned(),
        });
    }
    Ok(out)
}

/// How the gateway calls the adapters.
#[derive(Debug, Clone)]
pub struct SectorOptions {
    /// The adapters.
    pub endpoints: Vec<SectorEndpoint>,
    /// Time an adapter has to answer one look-up.
    pub deadline: Duration,
    /// Look-ups in flight to one adapter; more are refused at once
    /// (`serve` sets an eighth of `--max-in-flight`).
    pub max_in_flight: usize,
    /// The registry's synthetic population (seed, citizens), sent with
    /// every look-up: an adapter serving another one refuses it.
    pub population: Option<(u64, u64)>,
}

impl Default for SectorOptions {
    fn default() -> Self {
        Self {
            endpoints: parse_endpoints(&DEFAULT_ENDPOINTS).unwrap_or_default(),
            deadline: Duration::from_secs(2),
            max_in_flight: 256,
            population: None,
        }
    }
}

/// Every configured sector adapter.
#[derive(Clone, Default)]
pub struct Sectors {
    links: Arc<BTreeMap<&'static str, SectorLink>>,
}

impl Sectors {
    /// Channels to every adapter in `opts`, with the gateway's client
    /// certificate from `pki`. Nothing is dialled until the first query.
    pub fn connect(pki: &PkiLayout, opts: &SectorOptions) -> Result<Self> {
        let read = |p: std::path::PathBuf| {
            std::fs::read(&p).map_err(|e| Error::Tls(format!("{}: {e}", p.display())))
        };
        let ca = Certificate::from_pem(read(pki.ca_cert())?);
        let identity = Identity::from_pem(
            read(pki.gateway_client_cert())?,
            read(pki.gateway_client_key())?,
        );
        let mut links = BTreeMap::new();
        for endpoint in &opts.endpoints {
            let sector = sector::by_name(&endpoint.sector)
                .ok_or_else(|| Error::Tls(format!("no sector {:?}", endpoint.sector)))?
                .name;
            let tls = ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .identity(identity.clone())
                .domain_name(adapter_server_name(sector));
            let channel = Endpoint::from_shared(endpoint.url.clone())
                .map_err(|e| Error::Server(format!("{sector} adapter {}: {e}", endpoint.url)))?
                .tls_config(tls)
                .map_err(|e| Error::Tls(format!("{sector} adapter: {e}")))?
                .connect_timeout(opts.deadline)
                .connect_lazy();
            links.insert(sector, SectorLink::new(sector, channel, opts));
        }
        Ok(Self {
            links: Arc::new(links),
        })
    }

    /// Asks `sector`'s adapter `query` about `pid`.
    pub async fn lookup(&self, sector: &str, query: &str, pid: Pid) -> Result<SectorAnswer> {
        match self.links.get(sector) {
            Some(link) => link.lookup(query, pid).await,
            None => Err(Error::SectorUnavailable {
                sector: query_name(sector, query)
                    .and_then(|n| n.split_once('.'))
                    .map_or("unknown", |(s, _)| s),
                why: "no adapter is configured for it".into(),
                retry_after: Duration::from_secs(60),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_bad_ones_are_named() {
        let all = parse_endpoints(&DEFAULT_ENDPOINTS).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[1].url, "https://127.0.0.1:50062");
        assert!(
            parse_endpoints("dentistry=https://x:1")
                .unwrap_err()
                .contains("not a sector")
        );
        assert!(
            parse_endpoints("health=http://x:1")
                .unwrap_err()
                .contains("https://")
        );
        assert!(
            parse_endpoints("health")
                .unwrap_err()
                .contains("sector=URL")
        );
        assert!(
            parse_endpoints("health=https://a:1,health=https://b:1")
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(parse_endpoints("").unwrap(), vec![]);
        assert_eq!(
            query_name("health", "vaccinations"),
            Some("health.vaccinations")
        );
        assert_eq!(query_name("health", "x"), None);
    }
}
