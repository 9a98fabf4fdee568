//! ExchangeService throughput and latency over mTLS on loopback, each beside
//! a bare tonic echo service (same messages, same certificates, behind the
//! same TLS acceptor) measured in the same run.
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench exchange -- [--citizens N] [--seconds S] [--phase unary|batch|all]
//!     [--in-flight N] [--channels N] [--rounds N] [--names registered|written]
//!     [--store postgres://…]
//! ```
//!
//! Phases: VerifyIdentity (requests/s, p50, p99) with 64 calls in flight
//! spread over `--channels` client connections to each server (1 by
//! default; in production each agency opens its own), measured in 2 s
//! slices that take turns (echo, unaudited, audited, echo, …: S seconds of
//! each, in whole slices); VerifyBatch with batches of 10,000 claims over 2
//! streams, 2 batches in flight on each (records/s, S seconds of each
//! server, one after the other). Each VerifyIdentity line also says how
//! busy the machine's cores were (the whole bench process, client
//! included): below about 95%, that server's rate was not bound by CPU.
//! `--names written` sends names as an operator's list holds them (a third
//! as registered, a third in capitals, a third in capitals without
//! accents, as `sim-verify` does) and batches match them PARTIAL at 90;
//! by default names are sent as registered and batches match EXACT.
//! The registry is seeded once per size under `target/bench-data/` and
//! reused.
//!
//! The gateway audits every request into a fresh, durable audit log (as
//! `serve` does); a second gateway with the audit off (`NoAudit`, which keeps no record) over
//! the same registry measures what the audit costs. With `--store`, a
//! fourth server — a replica on that PostgreSQL database (in schema
//! `lienthong_bench_<citizens>`, seeded once by `COPY` and reused), its
//! registry and its audit log there (emptied at start) — takes its turns
//! too: what the shared audit costs beside the embedded log and beside no
//! audit, in the same run. Verification reads the projection, not the
//! store, so for VerifyIdentity the difference is the audit. Its server CPU
//! is the gateway's; PostgreSQL's own is not counted.

#[path = "support/args.rs"]
mod args;
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/echo.rs"]
mod echo;
#[path = "support/no_audit.rs"]
mod no_audit;
#[path = "support/options.rs"]
mod options;
#[path = "support/shared_store.rs"]
mod shared_store;

use cpu::{cores, meter, runtime};
use echo::Echo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lienthong_gateway::api::Services;
use lienthong_gateway::audit::{AuditLog, SharedAudit};
use lienthong_gateway::policy::{LivePolicy, Policy};
use lienthong_gateway::registry::{PopulationStore, SqliteRegistry, seed};
use lienthong_gateway::signing::SigningKey;
use lienthong_gateway::tls::{PkiLayout, ensure_pki, server_config};
use lienthong_proto::population::Population;
use lienthong_proto::v1;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::exchange_service_server::ExchangeServiceServer;
use lienthong_proto::{Citizen, Pid};
use no_audit::NoAudit;
use options::{median, options};
use shared_store::shared_store;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server};

/// The allocator the `lienthong` binary serves with: the servers here, the
/// echo included, run on what `serve` runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POLICY: &str = r#"
[agencies.bench]
name = "Benchmark client"
roles = ["consumer"]
[[agencies.bench.grants]]
purpose = "BENCH"
operations = ["verify_identity", "verify_batch"]
"#;
const BATCH: usize = 10_000;
const BATCHES_IN_FLIGHT: usize = 2;
/// Concurrent VerifyBatch streams (as a verification job runs them).
const STREAMS: usize = 2;

fn claim(c: &Citizen, reference: usize, written: bool) -> v1::IdentityClaim {
    let dob = c.date_of_birth().expect("seeded dates are valid");
    let full_name = match reference % 3 {
        _ if !written => c.full_name.clone(),
        0 => c.full_name.clone(),
        1 => c.full_name.to_uppercase(),
        _ => lienthong_proto::name::fold_diacritics(&c.full_name).to_uppercase(),
    };
    v1::IdentityClaim {
        reference: reference.to_string(),
        pid: Pid::from_u64(c.pid)
            .expect("seeded Pids are valid")
            .to_string(),
        full_name: Some(full_name),
        date_of_birth: Some(v1::Date {
            year: dob.year(),
            month: dob.month() as i32,
            day: dob.day() as i32,
        }),
        sex: if c.female {
            v1::Sex::Female
        } else {
            v1::Sex::Male
        } as i32,
        ..Default::default()
    }
}

/// `channels` client connections to the server at `addr`, each its own
/// TLS session and HTTP/2 connection.
async fn clients(
    addr: std::net::SocketAddr,
    pki: &PkiLayout,
    channels: usize,
) -> Vec<ExchangeServiceClient<Channel>> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.ca_cert()).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(pki.agency_cert("bench")).unwrap(),
            std::fs::read(pki.agency_key("bench")).unwrap(),
        ))
        .domain_name("localhost");
    let mut out = Vec::new();
    for _ in 0..channels {
        let channel = Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        out.push(
            ExchangeServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    }
    out
}

/// VerifyIdentity through one server, over all its slices of a round.
struct Unary {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// Server CPU seconds per request.
    cpu_per_item: f64,
    /// The share of the machine's cores the whole process (client
    /// included) used.
    busy: f64,
}

impl Unary {
    /// The figures of `slices`, each [`SLICE`] long.
    fn of(slices: Vec<Slice>) -> Self {
        let run = SLICE.as_secs_f64() * slices.len() as f64;
        let cpu: f64 = slices.iter().map(|s| s.cpu).sum();
        let busy = slices.iter().map(|s| s.process_cpu).sum::<f64>() / (run * cores());
        let mut all: Vec<Duration> = slices.into_iter().flat_map(|s| s.latencies).collect();
        all.sort();
        Self {
            cpu_per_item: cpu / all.len() as f64,
            busy,
            rps: all.len() as f64 / run,
            p50: all[all.len() / 2],
            p99: all[all.len() * 99 / 100],
        }
    }
}

/// One slice of VerifyIdentity calls through one server: each call's
/// latency, and the server's CPU seconds.
struct Slice {
    latencies: Vec<Duration>,
    cpu: f64,
    /// The whole process's CPU seconds.
    process_cpu: f64,
}

/// Measured time of one slice. A round runs the servers' slices in turn
/// (echo, unaudited, audited, echo, …), so that a change in what the
/// machine gives the bench (its cores are shared) falls on all three alike.
const SLICE: Duration = Duration::from_secs(2);
/// Calls before a slice is measured: the pipeline fills up again.
const SLICE_WARMUP: Duration = Duration::from_millis(500);

async fn unary(
    clients: &[ExchangeServiceClient<Channel>],
    claims: Arc<Vec<v1::IdentityClaim>>,
    in_flight: usize,
    server: &'static str,
) -> Slice {
    let warmup = Instant::now() + SLICE_WARMUP;
    let deadline = warmup + SLICE;
    let cpu = meter(server, warmup, deadline);
    let process_cpu = meter("", warmup, deadline);
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let mut client = clients[t % clients.len()].clone();
            let claims = claims.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = t;
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        return latencies;
                    }
                    let req = v1::VerifyIdentityRequest {
                        purpose: "BENCH".into(),
                        r#match: None,
                        claim: Some(claims[i % claims.len()].clone()),
                    };
                    let v = client.verify_identity(req).await.expect("answered");
                    assert_eq!(
                        v.into_inner().verification.map(|v| v.verdict()),
                        Some(v1::Verdict::Match)
                    );
                    if start >= warmup {
                        latencies.push(start.elapsed());
                    }
                    i += in_flight;
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Slice {
        latencies,
        cpu: cpu.await.unwrap(),
        process_cpu: process_cpu.await.unwrap(),
    }
}

/// Records/s over STREAMS concurrent streams, and the server's CPU seconds
/// per record.
async fn batch(
    clients: &[ExchangeServiceClient<Channel>],
    claims: Arc<Vec<v1::IdentityClaim>>,
    how: v1::MatchOptions,
    run: Duration,
    server: &'static str,
) -> (f64, f64) {
    let start = Instant::now() + Duration::from_secs(1);
    let cpu = meter(server, start, start + run);
    let streams: Vec<_> = (0..STREAMS)
        .map(|s| {
            let client = clients[s % clients.len()].clone();
            let claims = claims.clone();
            tokio::spawn(async move { one_stream(client, claims, how, s, run).await })
        })
        .collect();
    let mut total = 0.0;
    for s in streams {
        total += s.await.unwrap();
    }
    (total, cpu.await.unwrap() / (total * run.as_secs_f64()))
}

/// Records/s over one stream.
async fn one_stream(
    mut client: ExchangeServiceClient<Channel>,
    claims: Arc<Vec<v1::IdentityClaim>>,
    how: v1::MatchOptions,
    offset: usize,
    run: Duration,
) -> f64 {
    let batches: Vec<v1::VerifyBatchRequest> = claims
        .chunks(BATCH)
        .enumerate()
        .map(|(i, chunk)| v1::VerifyBatchRequest {
            batch_id: i.to_string(),
            purpose: "BENCH".into(),
            r#match: Some(how),
            claims: chunk.to_vec(),
        })
        .filter(|b| b.claims.len() == BATCH)
        .collect();
    assert!(!batches.is_empty(), "need at least {BATCH} claims");
    // Requests are produced as answers come back: BATCHES_IN_FLIGHT outstanding.
    let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
    for b in batches.iter().cycle().take(BATCHES_IN_FLIGHT) {
        tx.send(b.clone()).await.unwrap();
    }
    let mut answers = client
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let warmup = Instant::now() + Duration::from_secs(1);
    let mut next = BATCHES_IN_FLIGHT + offset;
    let mut records = 0usize;
    let mut started = None;
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("batch answered");
        assert_eq!(answer.results.len(), BATCH);
        let now = Instant::now();
        match started {
            None if now >= warmup => started = Some(now),
            Some(s) if now - s >= run => return records as f64 / (now - s).as_secs_f64(),
            Some(_) => records += answer.results.len(),
            None => {}
        }
        tx.send(batches[next % batches.len()].clone())
            .await
            .unwrap();
        next += 1;
    }
    panic!("the batch stream ended early");
}

fn main() {
    let o = options();
    let run = Duration::from_secs(o.seconds);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("{}-1", o.citizens));
    std::fs::create_dir_all(&data).unwrap();
    let pki = PkiLayout::under(&data);
    ensure_pki(&pki, ["bench"]).unwrap();
    let store = SqliteRegistry::open(data.join("registry.db")).unwrap();
    let population = Population::new(1, o.citizens).unwrap();
    if store.count().unwrap() != o.citizens {
        assert_eq!(
            store.count().unwrap(),
            0,
            "remove {} and rerun",
            data.display()
        );
        let started = Instant::now();
        seed(&store, &population, None, |_| {}).unwrap();
        eprintln!(
            "seeded {} citizens in {:.1} s",
            o.citizens,
            started.elapsed().as_secs_f64()
        );
    }
    let how = match o.written_names {
        false => v1::MatchOptions {
            strategy: v1::MatchStrategy::Exact as i32,
            threshold: 0,
        },
        true => v1::MatchOptions {
            strategy: v1::MatchStrategy::Partial as i32,
            threshold: 90,
        },
    };
    // Claims about citizens spread over the whole registry.
    let step = (o.citizens / 40_000).max(1);
    let claims: Arc<Vec<v1::IdentityClaim>> = Arc::new(
        (0..40_000u64)
            .map(|i| (i * step) % o.citizens)
            .enumerate()
            .map(|(r, i)| claim(&population.citizen(i), r, o.written_names))
            .collect(),
    );

    // Three runtimes of two workers each — the client, the gateway, the
    // echo — with named threads, so each server's CPU time can be read from
    // /proc and divided by the work it did.
    let client_rt = runtime("bench-client");
    let gateway_rt = runtime("gw-server");
    let echo_rt = runtime("echo-server");
    let unaudited_rt = runtime("gw-unaudited");

    let store = Arc::new(store);
    // The verification projection each gateway builds at start: its time
    // and size.
    {
        let started = Instant::now();
        let projection = lienthong_gateway::projection::Projection::build(&*store).unwrap();
        let f = projection.footprint();
        eprintln!(
            "projection of {} citizens built in {:.2} s: {} MiB, {:.0} B a citizen",
            f.citizens,
            started.elapsed().as_secs_f64(),
            f.bytes >> 20,
            f.bytes as f64 / f.citizens.max(1) as f64
        );
    }
    let policy = LivePolicy::new(Policy::parse(POLICY).unwrap());
    let key = Arc::new(SigningKey::ephemeral());
    let audit_path = data.join("audit-bench");
    let _ = std::fs::remove_dir_all(&audit_path);
    let (audit, _writer) = AuditLog::open(&audit_path, key.clone()).unwrap();
    let services = Services::new(
        policy.clone(),
        store.clone(),
        audit,
        &audit_path,
        key.clone(),
    )
    .unwrap();
    let unaudited = Services::new(policy, store, NoAudit, &audit_path, key).unwrap();
    let start_gateway = |rt: &tokio::runtime::Runtime, services: Services| {
        let tls = server_config(&pki).unwrap();
        rt.block_on(async {
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
    let gateway_addr = start_gateway(&gateway_rt, services);
    let unaudited_addr = start_gateway(&unaudited_rt, unaudited);
    // The same gateway, audited, over the shared store.
    let postgres_rt = o.store.as_ref().map(|_| runtime("gw-postgres"));
    let postgres = o
        .store
        .as_deref()
        .zip(postgres_rt.as_ref())
        .map(|(url, rt)| {
            let (registry, schema_url) = shared_store(url, &population);
            let key = Arc::new(SigningKey::ephemeral());
            // Audited into PostgreSQL too, as a replica on the shared store.
            let (audit, writer, _) = SharedAudit::open(&schema_url, "bench", key.clone()).unwrap();
            let policy = LivePolicy::new(Policy::parse(POLICY).unwrap());
            let services = Services::new(policy, registry, audit, &audit_path, key).unwrap();
            (start_gateway(rt, services), writer)
        });
    let postgres_addr = postgres.as_ref().map(|(addr, _)| *addr);
    // The baseline runs behind the very same TLS acceptor and certificates,
    // so the difference is the gateway's own work.
    let echo_tls = server_config(&pki).unwrap();
    let echo_addr = echo_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .add_service(
                    ExchangeServiceServer::new(Echo)
                        .max_decoding_message_size(64 << 20)
                        .max_encoding_message_size(64 << 20),
                )
                .serve_with_incoming(lienthong_gateway::tls::incoming(
                    listener,
                    echo_tls,
                    lienthong_gateway::tls::ConnectionLimits {
                        handshake_timeout: Duration::from_secs(3),
                        // The echo counts no calls: never closed for idling.
                        idle: Duration::ZERO,
                        per_agency: 1_000,
                    },
                    std::future::pending(),
                )),
        );
        addr
    });

    client_rt.block_on(async move {
        let gw = clients(gateway_addr, &pki, o.channels).await;
        let gw_unaudited = clients(unaudited_addr, &pki, o.channels).await;
        let echo = clients(echo_addr, &pki, o.channels).await;
        let gw_postgres = match postgres_addr {
            Some(addr) => Some(clients(addr, &pki, o.channels).await),
            None => None,
        };
        // Each server's VerifyIdentity slices per round.
        let turns = (run.as_secs() / SLICE.as_secs()).max(1);
        println!(
            "registry: {} citizens; {} s of each server per phase (VerifyIdentity in {} s slices \
             taking turns, each after {} s of warm-up; VerifyBatch after 1 s); loopback, mTLS \
             (TLS 1.3), {} client connection(s) to each server; client, gateway and echo share the machine's {} cores",
            o.citizens,
            turns * SLICE.as_secs(),
            SLICE.as_secs(),
            SLICE_WARMUP.as_secs_f64(),
            o.channels,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut unary_ratios = Vec::new();
        let mut batch_ratios = Vec::new();
        for round in 1..=o.rounds {
            if o.rounds > 1 {
                println!("round {round} of {}", o.rounds);
            }
            if o.phase != "batch" {
                let k = o.in_flight;
                let mut servers = vec![
                    (&echo, "echo-server"),
                    (&gw_unaudited, "gw-unaudited"),
                    (&gw, "gw-server"),
                ];
                servers.extend(gw_postgres.as_ref().map(|c| (c, "gw-postgres")));
                let mut slices: Vec<Vec<Slice>> = servers.iter().map(|_| Vec::new()).collect();
                for _ in 0..turns {
                    for ((clients, server), slices) in servers.iter().zip(&mut slices) {
                        slices.push(unary(clients, claims.clone(), k, server).await);
                    }
                }
                let measured: Vec<Unary> = slices.into_iter().map(Unary::of).collect();
                let (e, n, g) = (&measured[0], &measured[1], &measured[2]);
                println!("VerifyIdentity, {k} in flight over {} connection(s):", o.channels);
                let names = ["echo", "no audit", "gateway", "postgres"];
                for (name, u) in names.iter().zip(&measured) {
                    println!(
                        "  {name:<8} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  server CPU {:>5.1} µs/req  machine busy {:>3.0}%",
                        u.rps,
                        u.p50.as_secs_f64() * 1e3,
                        u.p99.as_secs_f64() * 1e3,
                        u.cpu_per_item * 1e6,
                        u.busy * 100.0,
                    );
                }
                println!("  ratio    {:.2} of the echo's rate", g.rps / e.rps);
                println!(
                    "  audit    {:.2} of the rate with the audit off, {:+.1} µs of server CPU a request \
                     (the gateway's server CPU includes the audit threads); p50 {:+.2} ms, p99 {:+.2} ms",
                    g.rps / n.rps,
                    (g.cpu_per_item - n.cpu_per_item) * 1e6,
                    (g.p50.as_secs_f64() - n.p50.as_secs_f64()) * 1e3,
                    (g.p99.as_secs_f64() - n.p99.as_secs_f64()) * 1e3,
                );
                if let Some(p) = measured.get(3) {
                    println!(
                        "  postgres audit and store: {:.2} of the embedded gateway's rate; server CPU {:+.1} µs a request \
                         over the embedded, {:+.1} over no audit; p50 {:+.2} ms, p99 {:+.2} ms over no audit",
                        p.rps / g.rps,
                        (p.cpu_per_item - g.cpu_per_item) * 1e6,
                        (p.cpu_per_item - n.cpu_per_item) * 1e6,
                        (p.p50.as_secs_f64() - n.p50.as_secs_f64()) * 1e3,
                        (p.p99.as_secs_f64() - n.p99.as_secs_f64()) * 1e3,
                    );
                }
                unary_ratios.push((g.rps / e.rps, g.rps / n.rps));
            }
            if o.phase == "unary" {
                continue;
            }
            let eb = batch(&echo, claims.clone(), how, run, "echo-server").await;
            let nb = batch(&gw_unaudited, claims.clone(), how, run, "gw-unaudited").await;
            let gb = batch(&gw, claims.clone(), how, run, "gw-server").await;
            let pb = match &gw_postgres {
                Some(c) => Some(batch(c, claims.clone(), how, run, "gw-postgres").await),
                None => None,
            };
            println!(
                "VerifyBatch, {BATCH} claims a batch, {STREAMS} streams, {BATCHES_IN_FLIGHT} batches in flight each:"
            );
            let measured = [("echo", eb), ("no audit", nb), ("gateway", gb)]
                .into_iter()
                .chain(pb.map(|p| ("postgres", p)));
            for (name, (rate, cpu)) in measured {
                println!(
                    "  {name:<8} {rate:>9.0} records/s  server CPU {:>5.2} µs/record \
                     (→ {:.0} records/s on {} dedicated cores)",
                    cpu * 1e6,
                    cores() / cpu,
                    cores()
                );
            }
            println!("  ratio    {:.2} of the echo's rate", gb.0 / eb.0);
            println!("  audit    {:.2} of the rate with the audit off", gb.0 / nb.0);
            if let Some(p) = pb {
                println!(
                    "  postgres audit and store: {:.2} of the embedded gateway's rate, {:+.2} µs of server CPU a record",
                    p.0 / gb.0,
                    (p.1 - gb.1) * 1e6
                );
            }
            batch_ratios.push((gb.0 / eb.0, gb.0 / nb.0));
        }
        if o.rounds > 1 {
            for (what, ratios) in [("VerifyIdentity", unary_ratios), ("VerifyBatch", batch_ratios)] {
                if ratios.is_empty() {
                    continue;
                }
                let (mut echo, mut audit): (Vec<f64>, Vec<f64>) = ratios.into_iter().unzip();
                println!(
                    "{what}, median of {} rounds: {:.2} of the echo's rate, {:.2} of the rate with the audit off",
                    o.rounds,
                    median(&mut echo),
                    median(&mut audit)
                );
            }
        }
    });
}
