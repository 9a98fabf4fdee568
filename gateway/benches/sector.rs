//! QuerySector over mTLS on loopback: the gateway asking the health adapter,
//! beside the same look-up sent to the adapter directly (the baseline,
//! measured in the same run), so the ratio is what the gateway adds —
//! policy, the registry check, the audit, a second mTLS hop.
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench sector -- [--citizens N] [--seconds S]
//!     [--in-flight N] [--rounds N]
//! ```
//!
//! Three closed loops with N calls in flight on one channel each: the
//! adapter's `Lookup` (as the gateway, with its client certificate);
//! `QuerySector` through a gateway with the audit off; `QuerySector` through
//! the audited gateway (a fresh, durable audit log, as `serve` runs it). The
//! registry is the one `--bench exchange` seeds under `target/bench-data/`.

#[path = "support/no_audit.rs"]
mod no_audit;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_adapters::framework::{self, AdapterOptions, Base, ConsumerConfig};
use lienthong_gateway::api::Services;
use lienthong_gateway::audit::AuditLog;
use lienthong_gateway::policy::{LivePolicy, Policy};
use lienthong_gateway::registry::{PopulationStore, SqliteRegistry, seed};
use lienthong_gateway::sector::{SectorEndpoint, SectorOptions, Sectors};
use lienthong_gateway::signing::SigningKey;
use lienthong_gateway::tls::{PkiLayout, ensure_pki, server_config};
use lienthong_proto::Pid;
use lienthong_proto::adapter::v1::LookupRequest;
use lienthong_proto::adapter::v1::sector_adapter_service_client::SectorAdapterServiceClient;
use lienthong_proto::population::Population;
use lienthong_proto::v1::QuerySectorRequest;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use no_audit::NoAudit;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const POLICY: &str = r#"
[agencies.bench]
name = "Benchmark client"
roles = ["consumer"]
[[agencies.bench.grants]]
purpose = "BENCH"
operations = ["query_sector"]
sector_queries = ["health.insurance_card"]
"#;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(
    url: String,
    pki: &PkiLayout,
    cert: PathBuf,
    key: PathBuf,
    name: String,
) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.ca_cert()).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ))
        .domain_name(name);
    Channel::from_shared(url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Calls per second and p50/p99 of `call` with `in_flight` loops for `run`
/// after a second of warm-up.
async fn closed_loop<F, Fut>(in_flight: usize, run: Duration, call: F) -> (f64, Duration, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let warmup = Instant::now() + Duration::from_secs(1);
    let deadline = warmup + run;
    let loops: Vec<_> = (0..in_flight)
        .map(|t| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = t;
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        return latencies;
                    }
                    call(i).await;
                    if start >= warmup {
                        latencies.push(start.elapsed());
                    }
                    i += in_flight;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for l in loops {
        all.extend(l.await.unwrap());
    }
    all.sort();
    (
        all.len() as f64 / run.as_secs_f64(),
        all[all.len() / 2],
        all[all.len() * 99 / 100],
    )
}

fn main() {
    let citizens = arg("--citizens", 1_000_000);
    let run = Duration::from_secs(arg("--seconds", 8));
    let in_flight = arg("--in-flight", 64) as usize;
    let rounds = arg("--rounds", 1);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("{citizens}-1"));
    std::fs::create_dir_all(&data).unwrap();
    let pki = PkiLayout::under(&data);
    ensure_pki(&pki, ["bench"]).unwrap();
    // The adapter checks events with the gateway's public key (this bench
    // publishes none).
    lienthong_gateway::tls::publish_signing_key(&pki, &SigningKey::ephemeral().verifying_key())
        .unwrap();
    let store = Arc::new(SqliteRegistry::open(data.join("registry.db")).unwrap());
    let population = Population::new(1, citizens).unwrap();
    if store.count().unwrap() != citizens {
        assert_eq!(
            store.count().unwrap(),
            0,
            "remove {} and rerun",
            data.display()
        );
        seed(&store, &population, None, |_| {}).unwrap();
    }
    // People with a health card, spread over the registry.
    let health = lienthong_adapters::sectors::by_name("health").unwrap();
    let base = Base {
        seed: 1,
        today: population.reference_date(),
    };
    let step = (citizens / 50_000).max(1);
    let pids: Arc<Vec<String>> = Arc::new(
        (0..citizens)
            .step_by(step as usize)
            .map(|i| population.citizen(i))
            .filter(|c| health.derive("insurance_card", c, &base).is_some())
            .map(|c| Pid::from_u64(c.pid).unwrap().to_string())
            .collect(),
    );

    let adapter_rt = runtime("adapter");
    let gateway_rt = runtime("gw-server");
    let unaudited_rt = runtime("gw-unaudited");
    let client_rt = runtime("bench-client");

    let adapter_dir = data.join("adapters-bench");
    let _ = std::fs::remove_dir_all(&adapter_dir);
    let opts = AdapterOptions {
        sector: lienthong_adapters::sectors::by_name("health").unwrap(),
        data_dir: adapter_dir,
        pki_dir: pki.root.clone(),
        seed: 1,
        citizens,
        // No broker: the adapter only answers look-ups here.
        events: ConsumerConfig {
            url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            exchange: "lienthong-bench".into(),
            prefetch: 1,
            queue_type: Default::default(),
        },
        connection_idle: std::time::Duration::from_secs(300),
    };
    let (adapter, port) = framework::open(&opts).unwrap();
    let adapter_addr = adapter_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(framework::run(
            adapter,
            listener,
            port,
            opts.events,
            std::future::pending(),
        ));
        addr
    });
    let sectors = SectorOptions {
        endpoints: vec![SectorEndpoint {
            sector: "health".into(),
            url: format!("https://{adapter_addr}"),
        }],
        max_in_flight: 4 * in_flight,
        ..SectorOptions::default()
    };

    let policy = LivePolicy::new(Policy::parse(POLICY).unwrap());
    let key = Arc::new(SigningKey::ephemeral());
    let audit_path = data.join("audit-sector-bench");
    let _ = std::fs::remove_dir_all(&audit_path);
    let (audit, _writer) = AuditLog::open(&audit_path, key.clone()).unwrap();
    let start_gateway = |rt: &tokio::runtime::Runtime, mut services: Services| {
        let tls = server_config(&pki).unwrap();
        let sectors = &sectors;
        let pki = &pki;
        rt.block_on(async move {
            services.sectors = Sectors::connect(pki, sectors).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(lienthong_gateway::api::serve(
                listener,
                tls,
                services,
                std::future::pending(),
            ));
            addr
        })
    };
    let audited = start_gateway(
        &gateway_rt,
        Services::new(
            policy.clone(),
            store.clone(),
            audit,
            &audit_path,
            key.clone(),
        )
        .unwrap(),
    );
    let unaudited = start_gateway(
        &unaudited_rt,
        Services::new(policy, store, NoAudit, &audit_path, key).unwrap(),
    );

    client_rt.block_on(async move {
        let direct = SectorAdapterServiceClient::new(
            channel(
                format!("https://{adapter_addr}"),
                &pki,
                pki.gateway_client_cert(),
                pki.gateway_client_key(),
                lienthong_proto::pki::adapter_server_name("health"),
            )
            .await,
        );
        let gateway = |addr| {
            let pki = pki.clone();
            async move {
                ExchangeServiceClient::new(
                    channel(
                        format!("https://{addr}"),
                        &pki,
                        pki.agency_cert("bench"),
                        pki.agency_key("bench"),
                        "localhost".into(),
                    )
                    .await,
                )
            }
        };
        let (audited, unaudited) = (gateway(audited).await, gateway(unaudited).await);
        println!(
            "registry: {citizens} citizens; {} people with a health card asked in turn; {in_flight} in flight; \
             {} s per phase after 1 s warm-up; loopback, mTLS; client, gateways and adapter share {} cores",
            pids.len(),
            run.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut ratios = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            if rounds > 1 {
                println!("round {round} of {rounds}");
            }
            let lookup = {
                let (direct, pids) = (direct.clone(), pids.clone());
                move |i: usize| {
                    let (mut direct, pid) = (direct.clone(), pids[i % pids.len()].clone());
                    async move {
                        let req = LookupRequest {
                            pid,
                            query: "insurance_card".into(),
                            ..Default::default()
                        };
                        direct.lookup(req).await.expect("the adapter answers");
                    }
                }
            };
            let query = |client: ExchangeServiceClient<Channel>| {
                let pids = pids.clone();
                move |i: usize| {
                    let (mut client, pid) = (client.clone(), pids[i % pids.len()].clone());
                    async move {
                        let req = QuerySectorRequest {
                            purpose: "BENCH".into(),
                            pid,
                            sector: "health".into(),
                            query: "insurance_card".into(),
                        };
                        client.query_sector(req).await.expect("the gateway answers");
                    }
                }
            };
            let d = closed_loop(in_flight, run, lookup).await;
            let n = closed_loop(in_flight, run, query(unaudited.clone())).await;
            let g = closed_loop(in_flight, run, query(audited.clone())).await;
            for (name, (rate, p50, p99)) in
                [("adapter", d), ("no audit", n), ("gateway", g)]
            {
                println!(
                    "  {name:<8} {rate:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
            println!(
                "  ratio    {:.2} (audited) and {:.2} (audit off) of the adapter's own rate",
                g.0 / d.0,
                n.0 / d.0
            );
            ratios.0.push(g.0 / d.0);
            ratios.1.push(n.0 / d.0);
        }
        if rounds > 1 {
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "QuerySector, median of {rounds} rounds: {:.2} (audited), {:.2} (audit off) of the adapter's own rate",
                median(&mut ratios.0),
                median(&mut ratios.1)
            );
        }
    });
}
