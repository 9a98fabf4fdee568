//! The exchange bench's shared store: the registry in a schema of the
//! PostgreSQL database `--store` names, seeded once per size and reused.

use std::sync::Arc;
use std::time::Instant;

use lienthong_gateway::registry::{PopulationStore, PostgresRegistry, Registry};
use lienthong_proto::population::Population;

/// The registry in `url`'s schema `lienthong_bench_<citizens>`, seeded
/// with `population` unless it already is, with its audit log emptied (a
/// fresh log, as the embedded gateway's); and the schema's URL.
pub fn shared_store(url: &str, population: &Population) -> (Arc<dyn Registry>, String) {
    let schema = format!("lienthong_bench_{}", population.len());
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("--store: connect");
    admin
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .unwrap();
    let schema_url = PostgresRegistry::in_schema(url, &schema);
    let store = PostgresRegistry::open(&schema_url).unwrap();
    admin
        .batch_execute(&format!(
            "TRUNCATE {schema}.audit_record, {schema}.audit_pid, {schema}.audit_checkpoint"
        ))
        .unwrap();
    if store.count().unwrap() != population.len() {
        assert!(store.is_empty().unwrap(), "drop schema {schema} and rerun");
        let started = Instant::now();
        store.seed(population, |_| {}).unwrap();
        eprintln!(
            "seeded {} citizens into PostgreSQL in {:.1} s",
            population.len(),
            started.elapsed().as_secs_f64()
        );
    }
    (Arc::new(store), schema_url)
}
