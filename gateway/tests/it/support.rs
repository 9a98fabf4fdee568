//! A gateway running in the background for a test, and clients for it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use lienthong_gateway::api::{ServerLimits, Services};
use lienthong_gateway::audit::AuditLog;
use lienthong_gateway::events::{OutboxRelay, RelayConfig, RelayStatus};
use lienthong_gateway::policy::{LivePolicy, Policy};
use lienthong_gateway::registry::{SqliteRegistry, seed};
use lienthong_gateway::signing::SigningKey;
use lienthong_gateway::tls::{PkiLayout, ensure_pki, server_config};
use lienthong_proto::population::Population;
use lienthong_proto::v1::citizen_service_client::CitizenServiceClient;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub use crate::process::*;

/// Agencies of the test policy.
pub const POLICY: &str = r#"
[agencies.bank]
name = "A bank"
roles = ["consumer"]
[[agencies.bank.grants]]
purpose = "KYC_ONBOARDING"
operations = ["verify_identity", "verify_batch"]

[agencies.clinic]
name = "A clinic"
roles = ["consumer"]
[[agencies.clinic.grants]]
purpose = "HEALTH_INSURANCE_CHECK"
operations = ["verify_identity", "get_citizen"]
fields = ["full_name", "date_of_birth", "sex", "status", "permanent_residence", "card", "father"]

[agencies.telco]
name = "A telecom operator"
roles = ["consumer"]
[[agencies.telco.grants]]
purpose = "SUBSCRIBER_VERIFICATION"
operations = ["verify_batch"]

[agencies.metered]
name = "A bank on a tight rate"
roles = ["consumer"]
rate_limit = { requests_per_second = 0.001, burst = 3 }
[[agencies.metered.grants]]
purpose = "KYC_ONBOARDING"
operations = ["verify_identity"]

[agencies.civil]
name = "A civil registry office"
roles = ["civil_registry"]

[agencies.police]
name = "The residence police"
roles = ["residence_registry", "card_issuer"]

[agencies.hospital]
name = "A hospital"
roles = ["consumer"]
[[agencies.hospital.grants]]
purpose = "MEDICAL_TREATMENT"
operations = ["get_citizen"]
fields = ["full_name", "blood_type", "spouse"]
consent_fields = ["blood_type", "spouse"]
[[agencies.hospital.grants]]
purpose = "RESEARCH"
operations = ["get_citizen"]
fields = ["blood_type"]
consent_fields = ["blood_type"]

[agencies.hospital-b]
name = "Another hospital"
roles = ["consumer"]
[[agencies.hospital-b.grants]]
purpose = "MEDICAL_TREATMENT"
operations = ["get_citizen"]
fields = ["blood_type"]
consent_fields = ["blood_type"]

[agencies.idp]
name = "The identity provider"
roles = ["identity_provider"]

[agencies.investigator]
name = "An investigation unit"
roles = ["consumer"]
[[agencies.investigator.grants]]
purpose = "CRIMINAL_INVESTIGATION"
operations = ["get_citizen"]
fields = ["full_name"]
hidden_for_days = 30

[agencies.rationed]
name = "A caller on a daily quota"
roles = ["consumer"]
daily_quota = 2
[[agencies.rationed.grants]]
purpose = "KYC_ONBOARDING"
operations = ["verify_identity"]

[agencies.rationed-batch]
name = "A batch caller on a daily quota"
roles = ["consumer"]
daily_quota = 5
[[agencies.rationed-batch.grants]]
purpose = "KYC_ONBOARDING"
operations = ["verify_batch"]
"#;

/// The population every test gateway serves.
pub const SEED: u64 = 42;
/// Its size.
pub const CITIZENS: u64 = 3_000;

/// A gateway serving in the background; stops when dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub pki: PkiLayout,
    pub population: Population,
    /// The relay's status, when the gateway publishes events.
    pub relay: Option<watch::Receiver<RelayStatus>>,
    _stop: oneshot::Sender<()>,
    dir: TempDir,
}

impl TestGateway {
    /// Seeds a registry, creates a PKI and serves on 127.0.0.1:0 (no event
    /// relay: events stay in the outbox).
    pub async fn start() -> Self {
        Self::serve(None, ServerLimits::default()).await
    }

    /// [`TestGateway::start`] with `limits`.
    pub async fn with_limits(limits: ServerLimits) -> Self {
        Self::serve(None, limits).await
    }

    /// [`TestGateway::start`], publishing events to `exchange` on the local
    /// RabbitMQ.
    pub async fn with_events(exchange: &str) -> Self {
        Self::with_events_on(crate::amqp::URL, exchange).await
    }

    /// [`TestGateway::with_events`] on the broker at `url`.
    pub async fn with_events_on(url: &str, exchange: &str) -> Self {
        Self::serve(
            Some(RelayConfig {
                url: url.to_owned(),
                exchange: exchange.to_owned(),
                ..RelayConfig::default()
            }),
            ServerLimits::default(),
        )
        .await
    }

    async fn serve(relay: Option<RelayConfig>, limits: ServerLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::parse(POLICY).unwrap();
        let pki = PkiLayout::under(dir.path());
        ensure_pki(&pki, policy.agencies.keys().map(String::as_str)).unwrap();
        let store = Arc::new(SqliteRegistry::open(dir.path().join("registry.db")).unwrap());
        let population = Population::new(SEED, CITIZENS).unwrap();
        seed(&store, &population, None, |_| {}).unwrap();
        let mut configure = |services: &mut Services| services.limits = limits;
        Self::run(dir, pki, store, population, relay, &mut configure).await
    }

    /// A second gateway over `other`'s registry (as replicas share one
    /// store), with an audit log of its own, trusting the same PKI; its
    /// projection reads the others' writes every `follow_every`.
    pub async fn beside(other: &TestGateway, follow_every: std::time::Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteRegistry::open(other.registry_path()).unwrap());
        let mut configure = |services: &mut Services| services.follow_every = follow_every;
        let (pki, population) = (other.pki.clone(), other.population.clone());
        Self::run(dir, pki, store, population, None, &mut configure).await
    }

    async fn run(
        dir: TempDir,
        pki: PkiLayout,
        store: Arc<SqliteRegistry>,
        population: Population,
        relay: Option<RelayConfig>,
        configure: &mut dyn FnMut(&mut Services),
    ) -> Self {
        let policy = LivePolicy::new(Policy::parse(POLICY).unwrap());
        let key =
            Arc::new(SigningKey::load_or_create(&dir.path().join("keys/signing.pk8")).unwrap());
        let audit_path = dir.path().join("audit");
        let (audit, _writer) = AuditLog::open(&audit_path, key.clone()).unwrap();
        let mut services =
            Services::new(policy, store.clone(), audit, &audit_path, key.clone()).unwrap();
        configure(&mut services);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = server_config(&pki).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_relay, relay_stopped) = oneshot::channel::<()>();
        let relay = relay.map(|config| {
            let relay = OutboxRelay::new(store, services.registrar.committed(), config, key);
            let status = relay.status();
            tokio::spawn(relay.run(async {
                let _ = relay_stopped.await;
            }));
            status
        });
        tokio::spawn(async move {
            lienthong_gateway::api::serve(listener, tls, services, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            let _ = stop_relay.send(());
        });
        Self {
            addr,
            pki,
            population,
            relay,
            _stop: stop,
            dir,
        }
    }

    /// The registry file.
    pub fn registry_path(&self) -> std::path::PathBuf {
        self.dir.path().join("registry.db")
    }

    /// The audit log's directory.
    pub fn audit_path(&self) -> std::path::PathBuf {
        self.dir.path().join("audit")
    }

    /// A CitizenService client authenticated as `agency`.
    pub async fn citizen(&self, agency: &str) -> CitizenServiceClient<Channel> {
        CitizenServiceClient::new(self.channel(agency).await)
    }

    /// A RegistryService client authenticated as `agency`.
    pub async fn registry(&self, agency: &str) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::new(self.channel(agency).await)
    }

    /// A channel authenticated as `agency`.
    pub async fn channel(&self, agency: &str) -> Channel {
        connect_as(self.addr, &self.pki, agency).await
    }

    /// An ExchangeService client authenticated as `agency`.
    pub async fn client(&self, agency: &str) -> ExchangeServiceClient<Channel> {
        ExchangeServiceClient::new(self.channel(agency).await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// A well-formed Pid that no citizen of the test population has.
    pub fn unknown_pid(&self) -> lienthong_proto::Pid {
        (0..)
            .map(|s| {
                lienthong_proto::Pid::from_parts(1, lienthong_proto::Sex::Male, 1990, s).unwrap()
            })
            .find(|p| !self.population.iter().any(|c| c.pid == p.as_u64()))
            .unwrap()
    }

    /// The first citizen matching `pred`.
    pub fn find(
        &self,
        pred: impl Fn(&lienthong_proto::Citizen) -> bool,
    ) -> lienthong_proto::Citizen {
        self.population
            .iter()
            .find(|c| pred(c))
            .expect("the test population has one")
    }
}

/// Connects to `addr` as `agency`, with its certificate from `pki`.
pub async fn connect_as(addr: SocketAddr, pki: &PkiLayout, agency: &str) -> Channel {
    connect(
        addr,
        &pki.ca_cert(),
        Some((&pki.agency_cert(agency), &pki.agency_key(agency))),
    )
    .await
    .expect("an agency of the policy connects")
}

/// Waits until `ok()` holds, checking every 20 ms, or panics after `deadline`.
pub async fn wait_for(deadline: std::time::Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + deadline;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < until,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Connects over TLS trusting `ca`, presenting `identity` if given.
pub async fn connect(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// An RFC 3339 time `s` seconds from now (negative: in the past).
pub fn in_secs(s: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(s))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The `ErrorInfo.reason` of a status (empty if it has none), after
/// checking that its domain is lienthong's: every test that reads a reason
/// asserts the domain too.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_details_error_info() {
        Some(info) => {
            assert_eq!(
                info.domain,
                lienthong_gateway::api::DOMAIN,
                "ErrorInfo.domain: {status:?}"
            );
            info.reason
        }
        None => String::new(),
    }
}

/// The `PreconditionFailure` violations of a status: (type, subject).
pub fn preconditions(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_precondition_failure()
        .map(|p| {
            p.violations
                .into_iter()
                .map(|v| (v.r#type, v.subject))
                .collect()
        })
        .unwrap_or_default()
}

/// The `BadRequest` field names of a status.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A sector adapter that holds every look-up until it is released: it
/// serves `SectorAdapterService` with the sector's real certificate, counts
/// the look-ups that reached it, and answers each once [`GatedAdapter::open`]
/// is called.
pub struct GatedAdapter {
    pub addr: SocketAddr,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    gate: watch::Sender<bool>,
}

impl GatedAdapter {
    /// Serves `sector`'s adapter on 127.0.0.1:0 with its certificate from `pki`.
    pub async fn start(pki: &PkiLayout, sector: &str) -> Self {
        use lienthong_proto::adapter::v1::sector_adapter_service_server::{
            SectorAdapterService, SectorAdapterServiceServer,
        };
        use lienthong_proto::adapter::v1::{
            DescribeRequest, DescribeResponse, LookupRequest, LookupResponse,
        };
        use lienthong_proto::v1::{KycStatus, SectorAnswer, sector_answer};
        use tonic::{Request, Response, Status};

        struct Gated {
            arrived: Arc<std::sync::atomic::AtomicUsize>,
            gate: watch::Receiver<bool>,
        }

        #[tonic::async_trait]
        impl SectorAdapterService for Gated {
            async fn lookup(
                &self,
                _: Request<LookupRequest>,
            ) -> Result<Response<LookupResponse>, Status> {
                self.arrived
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut gate = self.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
                Ok(Response::new(LookupResponse {
                    answer: Some(SectorAnswer {
                        answer: Some(sector_answer::Answer::KycStatus(KycStatus {
                            verified_accounts: 1,
                            ..Default::default()
                        })),
                    }),
                }))
            }

            async fn describe(
                &self,
                _: Request<DescribeRequest>,
            ) -> Result<Response<DescribeResponse>, Status> {
                Err(Status::unimplemented("a test adapter"))
            }
        }

        let tls = lienthong_adapters::framework::tls::server_tls(&pki.root, sector).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (gate, gate_rx) = watch::channel(false);
        tokio::spawn(
            tonic::transport::Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(SectorAdapterServiceServer::new(Gated {
                    arrived: arrived.clone(),
                    gate: gate_rx,
                }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Self {
            addr,
            arrived,
            gate,
        }
    }

    /// Look-ups that have reached the adapter so far.
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Answers every look-up held and every later one.
    pub fn open(&self) {
        let _ = self.gate.send(true);
    }
}

/// The errors calls met, each with when it came back: what a load test
/// checks against the moment it stopped or killed the gateway.
#[derive(Clone, Default)]
pub struct Failures(Arc<std::sync::Mutex<Vec<(std::time::Instant, tonic::Status)>>>);

impl Failures {
    /// Records `status`, now.
    pub fn record(&self, status: tonic::Status) {
        self.0
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), status));
    }

    /// Asserts that no call failed before `at` and that every later
    /// failure is `expected` (what `after` names).
    pub fn assert_only_after(
        &self,
        at: std::time::Instant,
        after: &str,
        expected: impl Fn(&tonic::Status) -> bool,
    ) {
        for (when, status) in self.0.lock().unwrap().iter() {
            assert!(
                *when >= at,
                "a call failed {:?} before {after}: {status:?}",
                at - *when
            );
            assert!(
                expected(status),
                "a call failed after {after} with {status:?}"
            );
        }
    }
}

/// The call id an answer (or a refusal) carries in `x-request-id`.
pub fn id_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .expect("every answer carries its id")
        .to_str()
        .unwrap()
        .to_owned()
}
