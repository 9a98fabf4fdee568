//! What a `ListAccesses` page costs as the audit log grows, in both modes:
//! the embedded log (segments and the citizen index in SQLite, its runs
//! merged in levels) and the shared log (PostgreSQL, every replica's chain).
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench accesses -- [--records N]
//!     [--store postgres://…] [--pages K]
//! ```
//!
//! Builds a log of N records (10^6 by default) once and reuses it: the
//! embedded one under `target/bench-data/accesses-N/`, the shared one in
//! schema `lienthong_bench_accesses_<N>` of `--store`. Each record names
//! one citizen of 10^6, drawn at random, so a citizen holds about N / 10^6
//! accesses — fewer than a page, so every page read walks the whole index
//! for that citizen (the worst case for a page). Then K first pages (1,000
//! by default) of 50 for distinct random citizens, one after another
//! through `AccessList::list` (the domain behind the RPC, without the
//! network), timed each: median, p99 and the mean, and how many index runs
//! the embedded page reads (one seek each).

#[path = "support/args.rs"]
mod args;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_gateway::audit::{
    AccessList, AuditEntry, AuditLog, Decision, SharedAudit, compact_index,
};
use lienthong_gateway::policy::{LivePolicy, Policy};
use lienthong_gateway::registry::PostgresRegistry;
use lienthong_gateway::signing::SigningKey;
use lienthong_proto::Pid;

/// Citizens the records name.
const CITIZENS: u64 = 1_000_000;
/// Records a call appends.
const GROUP: u64 = 4_096;

const POLICY: &str = "[agencies.idp]\nname = \"IdP\"\nroles = [\"identity_provider\"]\n";

/// A 64-bit mix (splitmix64): the `i`-th draw.
fn draw(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th citizen of the pool, as a Pid's 12 digits.
fn citizen(i: u64) -> String {
    format!("{:012}", 1_089_000_000 + draw(i) % CITIZENS)
}

fn entry(pid: String) -> AuditEntry {
    AuditEntry {
        agency: "bank".into(),
        operation: "verify_identity".into(),
        purpose: "KYC_ONBOARDING".into(),
        pids: pid,
        fields: String::new(),
        decision: Decision::Granted,
        outcome: "OK".into(),
        request_id: String::new(),
        trace_id: String::new(),
        request_hash: [1; 32],
        response_hash: [2; 32],
        hidden_until: None,
    }
}

/// Appends records `from..to` through `append`, 4 calls in flight, with a
/// progress line every 10 %.
async fn fill<F, Fut>(from: u64, to: u64, append: F)
where
    F: Fn(Vec<AuditEntry>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(from));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (next, append) = (next.clone(), append.clone());
            tokio::spawn(async move {
                loop {
                    let at = next.fetch_add(GROUP, std::sync::atomic::Ordering::Relaxed);
                    if at >= to {
                        return;
                    }
                    let end = (at + GROUP).min(to);
                    append((at..end).map(|i| entry(citizen(i))).collect()).await;
                    if (end - from) % ((to - from) / 10).max(GROUP) < GROUP {
                        eprintln!(
                            "  {end} of {to} records ({:.0} records/s)",
                            (end - from) as f64 / started.elapsed().as_secs_f64()
                        );
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// K first pages for distinct citizens, timed.
fn pages(list: &AccessList, k: u64) -> Vec<Duration> {
    (0..k)
        .map(|q| {
            let pid: Pid = citizen(u64::MAX / 2 + q).parse().unwrap();
            let started = Instant::now();
            let page = list.list("idp", pid, 50, None).unwrap();
            let took = started.elapsed();
            assert!(page.next.is_none(), "fewer accesses than a page");
            took
        })
        .collect()
}

fn report(mode: &str, records: u64, mut times: Vec<Duration>, runs: Option<usize>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{mode:<9} {records:>11} records  page of 50: median {:.3} ms  p99 {:.3} ms  mean {:.3} ms{}",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(mean),
        runs.map_or(String::new(), |r| format!(
            "  ({r} index runs; a bucket each 2^18 records would be {})",
            records.div_ceil(1 << 18)
        )),
    );
}

fn embedded(records: u64, k: u64, rt: &tokio::runtime::Runtime) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("accesses-{records}"));
    let path = dir.join("audit");
    let done = dir.join("built");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!(
            "building an embedded log of {records} records in {}",
            path.display()
        );
        let key = Arc::new(SigningKey::ephemeral());
        let (log, writer) = AuditLog::open(&path, key).unwrap();
        rt.block_on(async {
            fill(0, records, move |entries| {
                let log = log.clone();
                async move {
                    log.append(entries).await.unwrap();
                }
            })
            .await;
            // The index catches up as the log closes.
            assert!(writer.close(Duration::from_secs(600)).await);
        });
        let started = Instant::now();
        let runs = compact_index(&path).unwrap();
        eprintln!(
            "  merged the index's runs to {runs} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        std::fs::write(&done, b"").unwrap();
    }
    let runs = compact_index(&path).unwrap();
    let list = AccessList::new(LivePolicy::new(Policy::parse(POLICY).unwrap()), &path);
    // Once untimed, to open the reader.
    pages(&list, 1);
    report("embedded", records, pages(&list, k), Some(runs));
}

fn shared(url: &str, records: u64, k: u64, rt: &tokio::runtime::Runtime) {
    let schema = format!("lienthong_bench_accesses_{records}");
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("--store: connect");
    admin
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .unwrap();
    let schema_url = PostgresRegistry::in_schema(url, &schema);
    drop(PostgresRegistry::open(&schema_url).unwrap());
    let held: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.audit_record"), &[])
        .unwrap()
        .get(0);
    let key = Arc::new(SigningKey::ephemeral());
    let (audit, writer, accesses) = SharedAudit::open(&schema_url, "bench", key).unwrap();
    if (held as u64) < records {
        eprintln!("filling the shared log in schema {schema}: {held} of {records} records held");
        rt.block_on(fill(held as u64, records, move |entries| {
            let audit = audit.clone();
            async move {
                audit.append(entries).await.unwrap();
            }
        }));
        admin
            .batch_execute(&format!(
                "ANALYZE {schema}.audit_record, {schema}.audit_pid"
            ))
            .unwrap();
    } else {
        drop(audit);
    }
    rt.block_on(async { writer.close(Duration::from_secs(60)).await });
    let list = AccessList::shared(LivePolicy::new(Policy::parse(POLICY).unwrap()), accesses);
    pages(&list, 1);
    report("postgres", records, pages(&list, k), None);
}

fn main() {
    let records: u64 = args::value("--records").map_or(1_000_000, |v| v.parse().unwrap());
    let k: u64 = args::value("--pages").map_or(1_000, |v| v.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "ListAccesses, first page of 50 for {k} distinct citizens each holding about {} accesses:",
        records / CITIZENS
    );
    embedded(records, k, &rt);
    if let Some(url) = args::value("--store") {
        shared(&url, records, k, &rt);
    }
}
