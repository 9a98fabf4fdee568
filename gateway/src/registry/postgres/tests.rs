//! What only the PostgreSQL registry does: its schema under a lock, refused
//! when newer than the binary's; replicas leasing one quota at once.

use super::*;
use crate::registry::QuotaLedger;
use crate::registry::tests::TestSchema;

#[test]
fn replicas_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let schema = TestSchema::new();
    let url = schema.url();
    // Four at once: the advisory lock lets one migrate; the others find it done.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| PostgresRegistry::open(&url).unwrap());
        }
    });
    let store = PostgresRegistry::open(&url).unwrap();
    store
        .with_client(|client| {
            let version: i64 = client
                .query_one("SELECT version FROM schema_version", &[])?
                .get(0);
            assert_eq!(version, schema::VERSION);
            client.execute("UPDATE schema_version SET version = version + 1", &[])?;
            Ok(())
        })
        .unwrap();
    let refused = PostgresRegistry::open(&url).err().unwrap();
    assert!(
        matches!(refused, Error::SchemaTooNew { found, supported } if found == supported + 1),
        "{refused}"
    );
}

/// Replicas leasing one agency's day at once, a request at a time, get
/// the quota between them exactly: never more, none lost.
#[test]
fn replicas_leasing_at_once_share_the_quota_exactly() {
    let schema = TestSchema::new();
    let url = schema.url();
    let replicas: Vec<PostgresRegistry> = (0..3)
        .map(|_| PostgresRegistry::open(&url).unwrap())
        .collect();
    let got: Vec<u64> = std::thread::scope(|s| {
        let leasing: Vec<_> = replicas
            .iter()
            .map(|r| {
                s.spawn(move || {
                    let mut got = 0;
                    while r.lease("bank", 20_000, 300, 1, 1).unwrap() == 1 {
                        got += 1;
                    }
                    got
                })
            })
            .collect();
        leasing.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(got.iter().sum::<u64>(), 300, "{got:?}");
}

#[test]
fn a_bad_url_and_an_unreachable_server_say_so_without_a_password() {
    let bad = PostgresRegistry::open("mysql://nobody:s3cret@h/db")
        .err()
        .unwrap();
    assert!(
        bad.to_string().starts_with("--store: give a postgres://"),
        "{bad}"
    );
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
    let bad = PostgresRegistry::open("postgres://nobody:s3cret@h:port/db")
        .err()
        .unwrap();
    assert!(
        bad.to_string().starts_with("--store: not a PostgreSQL URL"),
        "{bad}"
    );
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
    let unreachable = PostgresRegistry::open("postgres://someone:s3cret@127.0.0.1:1/db")
        .err()
        .unwrap();
    let said = unreachable.to_string();
    assert!(said.starts_with("registry store (PostgreSQL): "), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
}

#[test]
fn one_replica_at_a_time_leads_the_relay_and_another_takes_over_when_it_goes() {
    let schema = TestSchema::new();
    let url = schema.url();
    let (a, b) = (
        PostgresRegistry::open(&url).unwrap(),
        PostgresRegistry::open(&url).unwrap(),
    );
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap(), "a leads");
    assert!(a.try_lead().unwrap(), "a keeps leading");
    assert!(!b.try_lead().unwrap());
    // a's process ends: its session with it, and the lock.
    drop(a);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b.try_lead().unwrap() {
        assert!(std::time::Instant::now() < until, "b never took over");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn replicas_seeding_together_seed_once() {
    let schema = TestSchema::new();
    let url = schema.url();
    let population = lienthong_proto::population::Population::new(5, 2_000).unwrap();
    let seeded: Vec<Option<u64>> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let store = PostgresRegistry::open(&url).unwrap();
                    store.seed_if_empty(&population, |_| {}).unwrap()
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut seeded: Vec<_> = seeded.into_iter().flatten().collect();
    seeded.sort();
    assert_eq!(seeded, [2_000], "one seeds, the others find it done");
    let store = PostgresRegistry::open(&url).unwrap();
    assert_eq!(store.count().unwrap(), 2_000);
    assert!(
        store.seed(&population, |_| {}).is_err(),
        "seed refuses a full register"
    );
}
