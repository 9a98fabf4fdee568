//! The gRPC edge: tonic services that decode, call the domain and encode.
//!
//! [`serve`] runs every service on one port over mutual TLS:
//! `lienthong.v1.ExchangeService`, `lienthong.v1.RegistryService`,
//! `lienthong.v1.CitizenService`, `grpc.health.v1.Health` and server
//! reflection (v1 and v1alpha). In front of every service: the request id
//! and its timing (metrics), admission, then the rate-limit layer for the
//! lienthong services; behind
//! each of their handlers: the audit step, which also counts requests by
//! agency, operation and outcome.

mod admission;
mod audited;
mod citizen;
mod convert;
mod exchange;
mod fresh;
mod idle;
mod known_agency;
mod rate_limit;
mod registry;
mod request_id;
mod status;
mod undecodable;

pub use citizen::CitizenApi;
pub use exchange::ExchangeApi;
pub use registry::RegistryApi;
pub use status::DOMAIN;

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prost::Message;

use lienthong_proto::idle::OpenCallLayer;
use lienthong_proto::v1::citizen_service_server::CitizenServiceServer;
use lienthong_proto::v1::exchange_service_server::ExchangeServiceServer;
use lienthong_proto::v1::registry_service_server::RegistryServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::{Request, Status};
use tonic_health::ServingStatus;

use crate::audit::{AccessList, AuditLog, AuditTrail, AuditWriter};
use crate::consent::Consents;
use crate::error::{Error, Result};
use crate::exchange::Exchange;
use crate::limits::AgencyRates;
use crate::policy::LivePolicy;
use crate::projection::{FOLLOW_EVERY, ProjectedStore, Projection};
use crate::registration::Registrar;
use crate::registry::{PopulationStore, Registry};
use crate::sector::Sectors;
use crate::signing::SigningKey;
use crate::tls::{self, Peer};

/// The server's limits, each refused with its own status when exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest message received or sent, in bytes (`OUT_OF_RANGE` beyond).
    /// The default fits a full batch of 10,000 claims with long addresses.
    pub max_message_bytes: usize,
    /// lienthong calls in flight across all connections; one more is shed
    /// at once with `UNAVAILABLE` / `OVERLOADED`.
    pub max_in_flight: usize,
    /// Of those, the most one agency may hold; one more of its calls is
    /// shed the same way, so no agency can take the others' room.
    pub max_in_flight_per_agency: usize,
    /// Concurrent calls (HTTP/2 streams) one connection may open; the
    /// client waits for a free one.
    pub max_streams_per_connection: u32,
    /// Time a call has to be answered (`DEADLINE_EXCEEDED` beyond).
    pub deadline: Duration,
    /// Most claims in one `VerifyBatch` batch (`BATCH_TOO_LARGE` beyond).
    pub max_batch_claims: usize,
    /// After the shutdown signal, how long connections already open may
    /// still start calls while health answers `NOT_SERVING` and new
    /// connections are refused.
    pub drain: Duration,
    /// Time a client has to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a stream may send nothing while the gateway waits for it
    /// (`DEADLINE_EXCEEDED` / `STREAM_IDLE` beyond).
    pub stream_idle: Duration,
    /// How long a connection may carry no call before it is closed (never
    /// if zero).
    pub connection_idle: Duration,
    /// Connections one agency may hold at once; one more is closed as its
    /// handshake ends.
    pub max_connections_per_agency: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_in_flight: 2_048,
            max_in_flight_per_agency: 512,
            max_streams_per_connection: 256,
            deadline: Duration::from_secs(30),
            max_batch_claims: crate::exchange::MAX_BATCH,
            drain: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(3),
            stream_idle: Duration::from_secs(60),
            connection_idle: Duration::from_secs(300),
            max_connections_per_agency: 64,
        }
    }
}

/// The gRPC path of a method this server has (`/lienthong.v1.ExchangeService/VerifyIdentity`,
/// health, reflection), as a `'static` string; `None` for any other path.
/// Metrics label and rate-limit by these only, so that no caller can grow
/// the label set or the audit log with made-up paths. The lienthong methods
/// are read once from the contract's descriptors: a new RPC needs no entry.
pub(crate) fn known_method(path: &str) -> Option<&'static str> {
    static METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
        let mut methods: HashSet<String> = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let contract = prost_types::FileDescriptorSet::decode(lienthong_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        for file in contract.file {
            let package = file.package();
            if package != "lienthong.v1" {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                }
            }
        }
        methods
    });
    METHODS.get(path).map(String::as_str)
}

/// The authenticated caller of a request (set by the TLS acceptor on every
/// connection, so missing only if the server was wired without it).
pub(crate) fn caller<T>(request: &Request<T>) -> Result<Peer, Status> {
    Ok(request
        .extensions()
        .get::<Peer>()
        .cloned()
        .ok_or(Error::Unauthenticated)?)
}

/// The domains the gateway serves.
#[derive(Clone)]
pub struct Services {
    /// Behind `ExchangeService`.
    pub exchange: Exchange,
    /// Behind `RegistryService`.
    pub registrar: Registrar,
    /// Behind `CitizenService`'s consent calls (and checking tokens for the
    /// exchange).
    pub consents: Consents,
    /// Behind `CitizenService.ListAccesses`.
    pub accesses: AccessList,
    /// Per-agency request rates and quotas, in front of every service.
    pub rates: Arc<AgencyRates>,
    /// Message sizes, calls in flight, the deadline.
    pub limits: ServerLimits,
    /// The sector adapters `QuerySector` asks; none until connected.
    pub sectors: Sectors,
    /// How often the projection reads the writes of other gateways sharing
    /// the store ([`FOLLOW_EVERY`]).
    pub follow_every: Duration,
    /// Who may call at all, in front of every lienthong service.
    policy: LivePolicy,
    audited: audited::Audited,
    /// What verification reads, and the store it follows.
    projection: Arc<Projection>,
    registry: Arc<dyn PopulationStore>,
}

impl Services {
    /// Every service over one `registry` (citizens and consents), under one
    /// policy, auditing into `audit` (`ListAccesses` reads the log in the
    /// directory `audit_path`); `key` signs consent tokens. Verification
    /// reads the registry's [`Projection`], built here.
    pub fn new(
        policy: LivePolicy,
        registry: Arc<dyn Registry>,
        audit: impl AuditTrail,
        audit_path: &Path,
        key: Arc<SigningKey>,
    ) -> Result<Self> {
        let projection = Arc::new(Projection::build(&*registry)?);
        let store: Arc<dyn PopulationStore> =
            Arc::new(ProjectedStore::new(registry.clone(), projection.clone()));
        let consents = Consents::new(policy.clone(), registry.clone(), store.clone(), key);
        let rates = Arc::new(AgencyRates::new(policy.clone(), registry.clone()));
        Ok(Self {
            exchange: Exchange::new(
                policy.clone(),
                store.clone(),
                projection.clone(),
                consents.clone(),
                rates.clone(),
            ),
            registrar: Registrar::new(policy.clone(), store),
            consents,
            accesses: AccessList::new(policy.clone(), audit_path),
            rates,
            limits: ServerLimits::default(),
            sectors: Sectors::default(),
            follow_every: FOLLOW_EVERY,
            audited: audited::Audited::new(Arc::new(audit), policy.clone()),
            policy,
            projection,
            registry,
        })
    }

    /// [`Services::new`] with the audit log in the directory `audit_path` and the signing
    /// key at `key_path` (created if missing), as `serve` runs them. The
    /// [`AuditWriter`] signs the last checkpoint once the services are
    /// dropped.
    pub fn open(
        policy: LivePolicy,
        registry: Arc<dyn Registry>,
        audit_path: &Path,
        key_path: &Path,
    ) -> Result<(Self, AuditWriter)> {
        let key = Arc::new(SigningKey::load_or_create(key_path)?);
        let (audit, writer) = AuditLog::open(audit_path, key.clone())?;
        Ok((Self::new(policy, registry, audit, audit_path, key)?, writer))
    }
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    services: Services,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ExchangeServiceServer<ExchangeApi>>()
        .await;
    health
        .set_serving::<RegistryServiceServer<RegistryApi>>()
        .await;
    health
        .set_serving::<CitizenServiceServer<CitizenApi>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lienthong_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Server(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Server(format!("reflection: {e}")))?;
    let audited = services.audited;
    let limits = services.limits;
    // No message is decoded with more elements of a repeated field than a
    // batch may hold claims (at least 1,000: a request's other lists).
    lienthong_proto::codec::raise_max_repeated(limits.max_batch_claims.max(1_000));
    let max = limits.max_message_bytes;
    let exchange = services.exchange.with_max_batch(limits.max_batch_claims);
    let exchange = ExchangeServiceServer::new(ExchangeApi::new(
        exchange,
        services.sectors,
        audited.clone(),
        limits.stream_idle,
    ))
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let registry =
        RegistryServiceServer::new(RegistryApi::new(services.registrar, audited.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let citizen = CitizenServiceServer::new(CitizenApi::new(
        services.consents,
        services.accesses,
        audited.clone(),
    ))
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);

    // On the signal: every status, the server's as a whole ("") included,
    // turns NOT_SERVING and no new connection is accepted; open connections
    // may still start calls for `drain`, so that load balancers and clients
    // holding a channel see the change and move away; then they are told to
    // go away (GOAWAY) and the calls in flight finish.
    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = limits.drain;
    let shutdown = async move {
        shutdown.await;
        for service in [
            "",
            ExchangeServiceServer::<ExchangeApi>::NAME,
            RegistryServiceServer::<RegistryApi>::NAME,
            CitizenServiceServer::<CitizenApi>::NAME,
        ] {
            health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        let _ = stop_accepting.send(());
        tokio::time::sleep(drain).await;
    };
    let incoming = tls::incoming(
        listener,
        tls,
        tls::ConnectionLimits {
            handshake_timeout: limits.handshake_timeout,
            idle: limits.connection_idle,
            per_agency: limits.max_connections_per_agency,
        },
        async {
            let _ = accepting_stopped.await;
        },
    );
    // Writes of other gateways sharing the store reach the projection
    // while this one serves.
    let projection = services.projection;
    let follower = AbortOnDrop(tokio::spawn(crate::projection::follow(
        projection.clone(),
        services.registry,
        services.follow_every,
    )));
    let served = Server::builder()
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        // Outermost: the call is open on its connection, which is not idle
        // until it ends.
        .layer(OpenCallLayer::new(Peer::open_calls))
        // The call's id, which everything below records, and the time a
        // caller waits, refusals included.
        .layer(request_id::RequestIdLayer)
        // A certificate for no agency in the policy gets health and
        // reflection only: refused before it can take a permit.
        .layer(known_agency::KnownAgencyLayer::new(
            services.policy,
            audited.clone(),
        ))
        // What a caller it lets through gets back names the projection's
        // seq (health checks' answers included).
        .layer(fresh::stamp_every(projection))
        // Shed what is over the limit before any other work, and end what
        // runs past the deadline.
        .layer(admission::AdmissionLayer::new(
            limits.max_in_flight,
            limits.max_in_flight_per_agency,
            limits.deadline,
        ))
        // Then the agency's rate and quota, before any decoding.
        .layer(rate_limit::RateLimitLayer::new(
            services.rates,
            audited.clone(),
        ))
        // Innermost: a message that does not decode is the caller's
        // mistake, answered INVALID_ARGUMENT and audited.
        .layer(undecodable::UndecodableLayer::new(audited))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(exchange)
        .add_service(registry)
        .add_service(citizen)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Server(e.to_string()));
    drop(follower);
    served
}

/// A task that ends when its owner does.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
