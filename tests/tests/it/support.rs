//! The whole system for one test: a seeded gateway publishing to its own
//! exchange, and the five sector adapters consuming from their own queues,
//! all on 127.0.0.1:0 in this process, with the shipped default policy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use lienthong_adapters::framework::{self, AdapterOptions, Base, ConsumerConfig};
use lienthong_gateway::api::Services;
use lienthong_gateway::audit::AuditLog;
use lienthong_gateway::events::{OutboxRelay, RelayConfig};
use lienthong_gateway::policy::{DEFAULT_POLICY, LivePolicy, Policy};
use lienthong_gateway::registry::{SqliteRegistry, seed};
use lienthong_gateway::sector::{SectorEndpoint, SectorOptions, Sectors};
use lienthong_gateway::signing::SigningKey;
use lienthong_gateway::tls::{PkiLayout, ensure_pki, server_config};
use lienthong_proto::adapter::v1::sector_adapter_service_client::SectorAdapterServiceClient;
use lienthong_proto::population::Population;
use lienthong_proto::v1::citizen_service_client::CitizenServiceClient;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use lienthong_proto::v1::{QuerySectorRequest, SectorAnswer};
use lienthong_proto::{Citizen, Pid};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The broker.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The population every test system serves.
pub const SEED: u64 = 11;
/// Its size.
pub const CITIZENS: u64 = 3_000;
/// Time an adapter has to answer the gateway: long enough that work done
/// meanwhile is certainly done within it on a loaded machine.
pub const SECTOR_DEADLINE: Duration = Duration::from_secs(5);
/// Look-ups in flight to one adapter.
pub const SECTOR_IN_FLIGHT: usize = 4;

/// One running adapter, and how to stop it.
struct RunningAdapter {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// The gateway and the five adapters.
pub struct System {
    pub gateway: SocketAddr,
    pub pki: PkiLayout,
    pub population: Population,
    pub exchange: String,
    dir: TempDir,
    adapters: BTreeMap<String, RunningAdapter>,
    /// Look-ups that reached the stalled adapter, if one stands in.
    stalled_lookups: Arc<AtomicUsize>,
    _stop_gateway: oneshot::Sender<()>,
}

impl System {
    /// Starts everything and waits until every adapter consumes from its
    /// queue, so no event is published before the queues are bound.
    pub async fn start() -> Self {
        Self::start_inner(None, None).await
    }

    /// [`System::start`], with `sector`'s adapter deriving its records from
    /// another population (seed [`SEED`] + 1) than the registry's.
    pub async fn start_with_other_population(sector: &str) -> Self {
        Self::start_inner(None, Some(sector)).await
    }

    /// [`System::start`], with `sector`'s adapter replaced by a server with
    /// the adapter's certificate that takes every call and never answers.
    pub async fn start_with_stalled(sector: &str) -> Self {
        Self::start_inner(Some(sector), None).await
    }

    async fn start_inner(stalled: Option<&str>, other_population: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let exchange = format!("lienthong-e2e.{}", uuid::Uuid::now_v7());
        let policy = Policy::parse(DEFAULT_POLICY).unwrap();
        let pki = PkiLayout::under(dir.path());
        ensure_pki(&pki, policy.agencies.keys().map(String::as_str)).unwrap();
        let store = Arc::new(SqliteRegistry::open(dir.path().join("registry.db")).unwrap());
        let population = Population::new(SEED, CITIZENS).unwrap();
        seed(&store, &population, None, |_| {}).unwrap();

        // The gateway's key, whose public half the adapters check events with.
        let key =
            Arc::new(SigningKey::load_or_create(&dir.path().join("keys/signing.pk8")).unwrap());
        lienthong_gateway::tls::publish_signing_key(&pki, &key.verifying_key()).unwrap();
        let mut system_adapters = BTreeMap::new();
        for sector in lienthong_adapters::sectors::names() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let seed = if other_population == Some(sector) {
                SEED + 1
            } else {
                SEED
            };
            let running = run_adapter(dir.path(), &pki, &exchange, sector, seed, listener);
            system_adapters.insert(sector.to_owned(), running);
        }
        let mut endpoints: Vec<SectorEndpoint> = system_adapters
            .iter()
            .map(|(sector, a)| SectorEndpoint {
                sector: sector.clone(),
                url: format!("https://{}", a.addr),
            })
            .collect();
        let stalled_lookups = Arc::new(AtomicUsize::new(0));
        if let Some(sector) = stalled {
            let addr = stalled_adapter(&pki, sector, stalled_lookups.clone()).await;
            for e in endpoints.iter_mut().filter(|e| e.sector == sector) {
                e.url = format!("https://{addr}");
            }
        }

        let audit_path = dir.path().join("audit");
        let (audit, _writer) = AuditLog::open(&audit_path, key.clone()).unwrap();
        let mut services = Services::new(
            LivePolicy::new(policy),
            store.clone(),
            audit,
            &audit_path,
            key.clone(),
        )
        .unwrap();
        services.sectors = Sectors::connect(
            &pki,
            &SectorOptions {
                endpoints,
                deadline: SECTOR_DEADLINE,
                max_in_flight: SECTOR_IN_FLIGHT,
                population: Some((SEED, CITIZENS)),
            },
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        let tls = server_config(&pki).unwrap();
        let relay = OutboxRelay::new(
            store,
            services.registrar.committed(),
            RelayConfig {
                exchange: exchange.clone(),
                ..RelayConfig::default()
            },
            key,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_relay, relay_stopped) = oneshot::channel::<()>();
        tokio::spawn(relay.run(async {
            let _ = relay_stopped.await;
        }));
        tokio::spawn(async move {
            lienthong_gateway::api::serve(listener, tls, services, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            let _ = stop_relay.send(());
        });
        let system = Self {
            gateway,
            pki,
            population,
            exchange,
            dir,
            adapters: system_adapters,
            stalled_lookups,
            _stop_gateway: stop,
        };
        for sector in lienthong_adapters::sectors::names() {
            system.wait_for_consumer(&system.queue(sector)).await;
        }
        system
    }

    /// How many look-ups have reached the stalled adapter so far.
    pub fn stalled_lookups(&self) -> usize {
        self.stalled_lookups.load(Ordering::SeqCst)
    }

    /// The gateway's signature of an event `body`, as the relay sends it
    /// (the `lienthong_signature` header).
    pub fn signature(&self, body: &[u8]) -> String {
        let key = SigningKey::load(&self.dir.path().join("keys/signing.pk8")).unwrap();
        key.sign(lienthong_gateway::signing::Context::Event, body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The store file of `sector`'s adapter.
    pub fn adapter_store(&self, sector: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join("adapters")
            .join(format!("{sector}.db"))
    }

    /// The queue of `sector`'s adapter.
    pub fn queue(&self, sector: &str) -> String {
        self.consumer_config().queue(sector)
    }

    /// The dead-letter queue of `sector`'s adapter.
    pub fn dead_letter_queue(&self, sector: &str) -> String {
        self.consumer_config().dead_letter_queue(sector)
    }

    fn consumer_config(&self) -> ConsumerConfig {
        ConsumerConfig {
            url: AMQP_URL.to_owned(),
            exchange: self.exchange.clone(),
            prefetch: 32,
            queue_type: Default::default(),
        }
    }

    /// Waits until `queue` has a consumer.
    async fn wait_for_consumer(&self, queue: &str) {
        self.wait_for_consumers(queue, |n| n > 0).await;
    }

    /// Waits until `queue`'s number of consumers satisfies `ok`.
    pub async fn wait_for_consumers(&self, queue: &str, ok: impl Fn(u32) -> bool) {
        let conn = amqp().await;
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let channel = conn.create_channel().await.unwrap();
            let declared = channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            if let Ok(q) = declared
                && ok(q.consumer_count())
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{queue}: consumers not as expected within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = conn.close(200, "ok".into()).await;
    }

    /// Stops `sector`'s adapter and waits until it has stopped.
    pub async fn stop_adapter(&mut self, sector: &str) {
        let running = self.adapters.get_mut(sector).unwrap();
        let _ = running.stop.take().unwrap().send(());
        (&mut running.task).await.unwrap();
    }

    /// Starts `sector`'s adapter again on its address, with its store.
    pub async fn restart_adapter(&mut self, sector: &str) {
        let addr = self.adapters[sector].addr;
        let listener = TcpListener::bind(addr).await.unwrap();
        let running = run_adapter(
            self.dir.path(),
            &self.pki,
            &self.exchange,
            sector,
            SEED,
            listener,
        );
        self.adapters.insert(sector.to_owned(), running);
        self.wait_for_consumer(&self.queue(sector)).await;
    }

    /// The exchange client of `agency` (an agency of the default policy).
    pub async fn exchange_as(&self, agency: &str) -> ExchangeServiceClient<Channel> {
        ExchangeServiceClient::new(self.channel_as(agency).await)
    }

    /// The citizen service client of `agency`.
    pub async fn citizen_as(&self, agency: &str) -> CitizenServiceClient<Channel> {
        CitizenServiceClient::new(self.channel_as(agency).await)
    }

    /// The registry client of `agency`.
    pub async fn registry_as(&self, agency: &str) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::new(self.channel_as(agency).await)
    }

    async fn channel_as(&self, agency: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(
                std::fs::read(self.pki.ca_cert()).unwrap(),
            ))
            .identity(Identity::from_pem(
                std::fs::read(self.pki.agency_cert(agency)).unwrap(),
                std::fs::read(self.pki.agency_key(agency)).unwrap(),
            ))
            .domain_name("localhost");
        Channel::from_shared(format!("https://{}", self.gateway))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client of `sector`'s adapter presenting `cert`/`key`.
    pub async fn adapter_as(
        &self,
        sector: &str,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    ) -> SectorAdapterServiceClient<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(
                std::fs::read(self.pki.ca_cert()).unwrap(),
            ))
            .identity(Identity::from_pem(
                std::fs::read(cert).unwrap(),
                std::fs::read(key).unwrap(),
            ))
            .domain_name(lienthong_proto::pki::adapter_server_name(sector));
        let channel = Channel::from_shared(format!("https://{}", self.adapters[sector].addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        SectorAdapterServiceClient::new(channel)
    }

    /// A client of `sector`'s adapter as the gateway.
    pub async fn adapter(&self, sector: &str) -> SectorAdapterServiceClient<Channel> {
        self.adapter_as(
            sector,
            self.pki.gateway_client_cert(),
            self.pki.gateway_client_key(),
        )
        .await
    }

    /// The seeded truth: what `sector` derives for `citizen`'s `query`.
    pub fn truth(&self, sector: &str, query: &str, citizen: &Citizen) -> Option<SectorAnswer> {
        let base = Base {
            seed: SEED,
            today: self.population.reference_date(),
        };
        lienthong_adapters::sectors::by_name(sector)
            .unwrap()
            .derive(query, citizen, &base)
    }

    /// The first citizen for whom `keep` holds.
    pub fn find(&self, what: &str, keep: impl Fn(&Citizen) -> bool) -> Citizen {
        self.population
            .iter()
            .find(|c| keep(c))
            .unwrap_or_else(|| panic!("the test population has no {what}"))
    }

    /// Deletes the test's exchange and queues: best effort, and bounded, so
    /// that a broker that stops answering cannot hang the suite (once, on
    /// 2026-11-24, a test hung in its last steps, this clean-up among them,
    /// with the broker up; not reproduced since).
    pub async fn clean_up(self) {
        let deleting = async {
            let conn = amqp().await;
            let channel = conn.create_channel().await.unwrap();
            for sector in lienthong_adapters::sectors::names() {
                for queue in [self.queue(sector), self.dead_letter_queue(sector)] {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
            }
            let _ = channel
                .exchange_delete(
                    self.exchange.as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
            let _ = conn.close(200, "done".into()).await;
        };
        if tokio::time::timeout(Duration::from_secs(30), deleting)
            .await
            .is_err()
        {
            eprintln!(
                "clean-up of exchange {} did not finish in 30 s; left to the broker",
                self.exchange
            );
        }
    }
}

/// Asks `agency`'s question `sector.query` about `pid` for `purpose`.
pub async fn query(
    client: &mut ExchangeServiceClient<Channel>,
    purpose: &str,
    pid: &str,
    sector: &str,
    query: &str,
) -> Result<SectorAnswer, tonic::Status> {
    client
        .query_sector(QuerySectorRequest {
            purpose: purpose.to_owned(),
            pid: pid.to_owned(),
            sector: sector.to_owned(),
            query: query.to_owned(),
        })
        .await
        .map(|r| r.into_inner().answer.expect("an answer"))
}

/// The `ErrorInfo.reason` of a status (empty if it has none), after
/// checking that its domain is lienthong's.
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

/// Polls `check` every 50 ms until it returns `Some`, or panics after
/// `deadline` naming `what`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection to the local broker, retrying for up to a minute.
pub async fn amqp() -> Connection {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // A broker still starting may take the TCP connection and never
        // finish the handshake: each attempt gets five seconds.
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(AMQP_URL, ConnectionProperties::default()),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => return c,
            _ if tokio::time::Instant::now() > until => {
                panic!(
                    "RabbitMQ at {AMQP_URL}: no connection within a minute (scripts/test.sh starts it)"
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The Pid of a citizen, as text.
pub fn pid_of(citizen: &Citizen) -> String {
    Pid::from_u64(citizen.pid).unwrap().to_string()
}

fn run_adapter(
    dir: &std::path::Path,
    pki: &PkiLayout,
    exchange: &str,
    sector: &str,
    seed: u64,
    listener: TcpListener,
) -> RunningAdapter {
    let addr = listener.local_addr().unwrap();
    let opts = AdapterOptions {
        sector: lienthong_adapters::sectors::by_name(sector).unwrap(),
        data_dir: dir.join("adapters"),
        pki_dir: pki.root.clone(),
        seed,
        citizens: CITIZENS,
        events: ConsumerConfig {
            url: AMQP_URL.to_owned(),
            exchange: exchange.to_owned(),
            prefetch: 32,
            queue_type: Default::default(),
        },
        connection_idle: Duration::from_secs(300),
    };
    let (adapter, port) = framework::open(&opts).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        framework::run(adapter, listener, port, opts.events, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    RunningAdapter {
        addr,
        stop: Some(stop),
        task,
    }
}

/// An adapter that stalls: it serves `SectorAdapterService` with `sector`'s
/// real certificate, counts each look-up in `lookups` and holds every call
/// without answering.
async fn stalled_adapter(pki: &PkiLayout, sector: &str, lookups: Arc<AtomicUsize>) -> SocketAddr {
    use lienthong_proto::adapter::v1::sector_adapter_service_server::{
        SectorAdapterService, SectorAdapterServiceServer,
    };
    use lienthong_proto::adapter::v1::{
        DescribeRequest, DescribeResponse, LookupRequest, LookupResponse,
    };
    use tonic::{Request, Response, Status};

    struct Stalled(Arc<AtomicUsize>);

    #[tonic::async_trait]
    impl SectorAdapterService for Stalled {
        async fn lookup(
            &self,
            _: Request<LookupRequest>,
        ) -> Result<Response<LookupResponse>, Status> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        }

        async fn describe(
            &self,
            _: Request<DescribeRequest>,
        ) -> Result<Response<DescribeResponse>, Status> {
            std::future::pending().await
        }
    }

    let tls = lienthong_adapters::framework::tls::server_tls(&pki.root, sector).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(SectorAdapterServiceServer::new(Stalled(lookups)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}
