//! Which PostgreSQL client the shared registry uses: the sync `postgres`
//! crate called off the runtime (`spawn_blocking`, as the gateway calls its
//! stores) against `tokio-postgres` awaited on the runtime. Each does N
//! times a transaction shaped like a registry write and a point read of a
//! record, one at a time over one connection; the bench prints wall time and
//! this process's CPU time (client side: the server's is PostgreSQL's).
//!
//! ```text
//! cargo bench -p lienthong-gateway --bench pg_client -- [--url postgres://…] [--ops N]
//! ```
//!
//! ```text
//! write  BEGIN; UPDATE seq … RETURNING; SELECT receipt; INSERT event;
//!        INSERT receipt; COMMIT                     (the store's round trips)
//! read   SELECT record FROM citizen WHERE pid = $1  (280-byte record)
//! ```
//!
//! In schema `lienthong_pg_client`, made afresh each run.

#[path = "support/args.rs"]
mod args;

use std::sync::{Arc, Mutex};
use std::time::Instant;

const WRITE: [&str; 4] = [
    "UPDATE seq SET last = last + 1 RETURNING last",
    "SELECT fp FROM req WHERE id = $1",
    "INSERT INTO ev (seq, body) VALUES ($1, $2)",
    "INSERT INTO req (id, fp, seq) VALUES ($1, $2, $3)",
];
const READ: &str = "SELECT record FROM citizen WHERE pid = $1";
const CITIZENS: i64 = 100_000;

/// This process's CPU time so far, in seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the name).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn report(what: &str, ops: u64, t0: Instant, c0: f64) {
    println!(
        "  {what:<40} {:>7.1} µs wall an op  {:>6.1} µs client CPU an op",
        t0.elapsed().as_secs_f64() / ops as f64 * 1e6,
        (cpu() - c0) / ops as f64 * 1e6
    );
}

fn main() {
    let arg = args::value;
    let url = arg("--url").unwrap_or_else(|| {
        std::env::var("LIENTHONG_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    });
    let ops: u64 = arg("--ops").map_or(3_000, |n| n.parse().expect("--ops N"));
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("--url: connect");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS lienthong_pg_client CASCADE;
             CREATE SCHEMA lienthong_pg_client;
             SET search_path = lienthong_pg_client;
             CREATE TABLE seq (one bool PRIMARY KEY, last bigint);
             INSERT INTO seq VALUES (true, 0);
             CREATE TABLE ev (seq bigint PRIMARY KEY, body text);
             CREATE TABLE req (id text PRIMARY KEY, fp bytea, seq bigint);
             CREATE TABLE citizen (pid bigint PRIMARY KEY, record bytea);
             INSERT INTO citizen SELECT g, decode(repeat('ab', 280), 'hex')
                 FROM generate_series(1, {CITIZENS}) g;"
        ))
        .unwrap();
    let in_schema = format!(
        "{url}{}options=-csearch_path%3Dlienthong_pg_client",
        if url.contains('?') { '&' } else { '?' }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{ops} operations each, one at a time over one connection; PostgreSQL on this machine"
    );
    for round in 1..=2 {
        println!("round {round}");
        let url = in_schema.clone();
        rt.block_on(async move {
            // The sync client, each operation on a blocking thread.
            let connect = {
                let url = url.clone();
                move || postgres::Client::connect(&url, postgres::NoTls).unwrap()
            };
            let client = Arc::new(Mutex::new(
                tokio::task::spawn_blocking(connect).await.unwrap(),
            ));
            let (t0, c0) = (Instant::now(), cpu());
            for i in 0..ops {
                let client = client.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = client.lock().unwrap();
                    let mut tx = c.transaction().unwrap();
                    let seq: i64 = tx.query_one(WRITE[0], &[]).unwrap().get(0);
                    let id = format!("s{round}-{i}");
                    tx.query_opt(WRITE[1], &[&id]).unwrap();
                    tx.execute(WRITE[2], &[&seq, &"{}"]).unwrap();
                    tx.execute(WRITE[3], &[&id, &vec![0u8; 32], &seq]).unwrap();
                    tx.commit().unwrap();
                })
                .await
                .unwrap();
            }
            report("write, postgres off the runtime", ops, t0, c0);
            let (t0, c0) = (Instant::now(), cpu());
            for i in 0..ops {
                let client = client.clone();
                let pid = (i as i64) % CITIZENS + 1;
                tokio::task::spawn_blocking(move || {
                    client.lock().unwrap().query_opt(READ, &[&pid]).unwrap();
                })
                .await
                .unwrap();
            }
            report("read, postgres off the runtime", ops, t0, c0);
            tokio::task::spawn_blocking(move || drop(client))
                .await
                .unwrap();

            // The async client, awaited on the runtime.
            let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            let (t0, c0) = (Instant::now(), cpu());
            for i in 0..ops {
                let tx = client.transaction().await.unwrap();
                let seq: i64 = tx.query_one(WRITE[0], &[]).await.unwrap().get(0);
                let id = format!("a{round}-{i}");
                tx.query_opt(WRITE[1], &[&id]).await.unwrap();
                tx.execute(WRITE[2], &[&seq, &"{}"]).await.unwrap();
                tx.execute(WRITE[3], &[&id, &vec![0u8; 32], &seq])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            report("write, tokio-postgres on the runtime", ops, t0, c0);
            let (t0, c0) = (Instant::now(), cpu());
            for i in 0..ops {
                let pid = (i as i64) % CITIZENS + 1;
                client.query_opt(READ, &[&pid]).await.unwrap();
            }
            report("read, tokio-postgres on the runtime", ops, t0, c0);
            drop(client);
            let _ = connection.await;
        });
    }
    admin
        .batch_execute("DROP SCHEMA lienthong_pg_client CASCADE")
        .unwrap();
}
