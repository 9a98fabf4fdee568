//! The embedded registry engines on lienthong's own schema: SQLite (the
//! backend we ship) against redb, loading the synthetic population and
//! looking citizens up the way verification does.
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench registry -- [--citizens N]...
//! ```
//!
//! Each engine stores the same prost-encoded `Citizen` under the Pid's
//! integer value. Load: the whole population in one write transaction,
//! generation included (the same for both). Batch look-up: 10,000 random Pids, sorted, in one read
//! transaction, decoded. Single look-up: one random Pid per read.

use std::path::Path;
use std::time::Instant;

use lienthong_gateway::registry::{PopulationStore, SqliteRegistry, seed};
use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Pid};
use prost::Message;
use redb::{ReadableDatabase, TableDefinition};

const CITIZENS: TableDefinition<u64, &[u8]> = TableDefinition::new("citizen");
const BATCHES: usize = 50;
const BATCH: usize = 10_000;
const SINGLES: usize = 100_000;

/// A deterministic stream of indexes into the population.
fn random_indexes(n: u64, count: usize, salt: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        })
        .collect()
}

struct Figures {
    load_s: f64,
    batch_us: f64,
    single_us: f64,
    size_mb: f64,
}

fn dir_size(path: &Path) -> f64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum::<u64>() as f64
        / 1e6
}

fn sqlite(pop: &Population, dir: &Path) -> Figures {
    let started = Instant::now();
    let store = SqliteRegistry::open(dir.join("registry.db")).unwrap();
    seed(&store, pop, None, |_| {}).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let n = pop.len();

    let started = Instant::now();
    for b in 0..BATCHES {
        let pids: Vec<Pid> = random_indexes(n, BATCH, b as u64)
            .into_iter()
            .map(|i| pop.pid(i))
            .collect();
        let found = store.get_many(&pids).unwrap();
        assert!(found.iter().all(Option::is_some));
    }
    let batch_us = started.elapsed().as_secs_f64() * 1e6 / (BATCHES * BATCH) as f64;

    let pids: Vec<Pid> = random_indexes(n, SINGLES, 99)
        .into_iter()
        .map(|i| pop.pid(i))
        .collect();
    let started = Instant::now();
    for pid in &pids {
        assert!(store.get(*pid).unwrap().is_some());
    }
    let single_us = started.elapsed().as_secs_f64() * 1e6 / SINGLES as f64;
    Figures {
        load_s,
        batch_us,
        single_us,
        size_mb: dir_size(dir),
    }
}

fn redb(pop: &Population, dir: &Path) -> Figures {
    let started = Instant::now();
    let db = redb::Database::create(dir.join("registry.redb")).unwrap();
    let n = pop.len();
    // As SQLite is loaded: one transaction, durable at its commit only.
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(CITIZENS).unwrap();
        for j in 0..n {
            let c = pop.citizen(j);
            table.insert(c.pid, c.encode_to_vec().as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
    let load_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    for b in 0..BATCHES {
        let mut keys: Vec<u64> = random_indexes(n, BATCH, b as u64)
            .into_iter()
            .map(|i| pop.pid(i).as_u64())
            .collect();
        keys.sort_unstable();
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(CITIZENS).unwrap();
        for k in keys {
            let v = table.get(k).unwrap().expect("seeded");
            let c = Citizen::decode(v.value()).unwrap();
            assert_eq!(c.pid, k);
        }
    }
    let batch_us = started.elapsed().as_secs_f64() * 1e6 / (BATCHES * BATCH) as f64;

    let keys: Vec<u64> = random_indexes(n, SINGLES, 99)
        .into_iter()
        .map(|i| pop.pid(i).as_u64())
        .collect();
    let started = Instant::now();
    for k in keys {
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(CITIZENS).unwrap();
        let v = table.get(k).unwrap().expect("seeded");
        assert_eq!(Citizen::decode(v.value()).unwrap().pid, k);
    }
    let single_us = started.elapsed().as_secs_f64() * 1e6 / SINGLES as f64;
    drop(db);
    Figures {
        load_s,
        batch_us,
        single_us,
        size_mb: dir_size(dir),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut sizes: Vec<u64> = args
        .windows(2)
        .filter(|w| w[0] == "--citizens")
        .map(|w| w[1].parse().expect("--citizens N"))
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000_000];
    }
    let engines: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--engine")
        .map(|w| w[1].clone())
        .collect();
    let wants = |e: &str| engines.is_empty() || engines.iter().any(|x| x == e);
    println!(
        "| engine | citizens | load (generation included) | batch look-up, per key | single look-up | on disk |"
    );
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let pop = Population::new(1, n).unwrap();
        let started = Instant::now();
        let mut bytes = 0usize;
        for i in 0..n.min(200_000) {
            bytes += pop.citizen(i).encode_to_vec().len();
        }
        let gen_us = started.elapsed().as_secs_f64() * 1e6 / n.min(200_000) as f64;
        eprintln!(
            "generation alone: {gen_us:.2} µs per citizen; record {} bytes on average",
            bytes / n.min(200_000) as usize
        );
        for (name, run) in [
            ("SQLite", sqlite as fn(&Population, &Path) -> Figures),
            ("redb", redb),
        ] {
            if !wants(&name.to_lowercase()) {
                continue;
            }
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let f = run(&pop, dir.path());
            println!(
                "| {name} | {n} | {:.1} s | {:.2} µs | {:.2} µs | {:.0} MB |",
                f.load_s, f.batch_us, f.single_us, f.size_mb
            );
        }
    }
}
