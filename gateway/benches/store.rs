//! The registry's two backends side by side: seeding the synthetic
//! population, and registry writes from one and from three writers at once
//! (as one and three replicas would send them), each write a real plan:
//! the citizen read inside the write's transaction, a changed record, its
//! event and receipt.
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench store -- [--citizens N] [--seconds S]
//!     [--postgres URL]
//! ```
//!
//! SQLite is a fresh file under `target/bench-data/store/`; PostgreSQL a
//! fresh schema of `--postgres` (by default the local
//! `postgres://postgres@127.0.0.1:5432/test`), dropped at the end. Writers
//! are threads calling the store directly (the gateway's blocking threads
//! do the same), so the figures are the stores', not gRPC's.

#[path = "support/args.rs"]
mod args;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lienthong_gateway::registry::{
    OutboxEvent, Planned, PopulationStore, PostgresRegistry, RequestKey, SqliteRegistry, seed,
};
use lienthong_proto::population::Population;

struct Options {
    citizens: u64,
    seconds: u64,
    postgres: String,
}

fn options() -> Options {
    let mut o = Options {
        citizens: 1_000_000,
        seconds: 5,
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
    };
    if let Some(n) = args::value("--citizens") {
        o.citizens = n.parse().expect("--citizens N");
    }
    if let Some(s) = args::value("--seconds") {
        o.seconds = s.parse().expect("--seconds S");
    }
    if let Some(url) = args::value("--postgres") {
        o.postgres = url;
    }
    o
}

/// Registry writes per second by `writers` threads for `run`: each a
/// rename of a citizen spread over the register.
fn writes_per_second(
    store: Arc<dyn PopulationStore>,
    population: &Population,
    writers: u64,
    run: Duration,
    tag: &str,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
            s.spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let pid = population.pid((i * 7_919) % population.len());
                    let request_id = format!("{tag}-{w}-{i}");
                    let key = RequestKey {
                        agency: "bench",
                        request_id: &request_id,
                        operation: "change_name",
                        fingerprint: [0; 32],
                        node: "test",
                    };
                    store
                        .write(&key, &mut |scope| {
                            let mut citizen = scope.get(pid)?.expect("a seeded citizen");
                            citizen.full_name = format!("Bench {i}");
                            Ok(Planned {
                                records: vec![citizen],
                                event: OutboxEvent {
                                    id: uuid::Uuid::now_v7().to_string(),
                                    kind: "citizen.name_changed".into(),
                                    pid,
                                    occurred_at: "2026-12-03T00:00:00.000000Z".into(),
                                    data: "{}".into(),
                                },
                            })
                        })
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += writers;
                }
            });
        }
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let o = options();
    let population = Population::new(1, o.citizens).unwrap();
    let run = Duration::from_secs(o.seconds);
    println!(
        "{} citizens; writes for {} s each; writers are threads on this machine's 2 cores, beside the database",
        o.citizens, o.seconds
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let sqlite = Arc::new(SqliteRegistry::open(dir.join("registry.db")).unwrap());
    seed(&sqlite, &population, None, |_| {}).unwrap();
    println!(
        "SQLite      seeded in {:6.1} s",
        started.elapsed().as_secs_f64()
    );

    let schema = format!("lienthong_bench_{}", uuid::Uuid::now_v7().simple());
    let mut admin = postgres::Client::connect(&o.postgres, postgres::NoTls)
        .expect("a PostgreSQL to bench against (--postgres URL)");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let url = PostgresRegistry::in_schema(&o.postgres, &schema);
    let started = Instant::now();
    let pg = Arc::new(PostgresRegistry::open(&url).unwrap());
    pg.seed(&population, |_| {}).unwrap();
    println!(
        "PostgreSQL  seeded in {:6.1} s (binary COPY)",
        started.elapsed().as_secs_f64()
    );

    for writers in [1, 3] {
        let s = writes_per_second(
            sqlite.clone(),
            &population,
            writers,
            run,
            &format!("s{writers}"),
        );
        let p = writes_per_second(
            pg.clone(),
            &population,
            writers,
            run,
            &format!("p{writers}"),
        );
        println!("registry writes, {writers} writer(s): SQLite {s:8.0}/s   PostgreSQL {p:8.0}/s");
    }
    drop(pg);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
