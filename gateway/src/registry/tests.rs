//! The store tests, each run on both backends: the same function against
//! an SQLite file and against the machine's PostgreSQL (a schema of its
//! own, dropped after). `LIENTHONG_TEST_POSTGRES_URL` names the database
//! (`scripts/test.sh` sets it; by default `postgres://postgres@127.0.0.1:5432/test`).
//! A PostgreSQL that cannot be reached fails the tests: it is not a skip.

use std::sync::Arc;

use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Pid};

use super::*;
use crate::error::Error;

/// What the tests need of a store.
trait Store: PopulationStore + Outbox + ConsentBook + QuotaLedger {}
impl<T: PopulationStore + Outbox + ConsentBook + QuotaLedger> Store for T {}

/// A store for one test, and what keeps it (its directory, its schema).
struct Opened {
    store: Arc<dyn Store>,
    _kept: Box<dyn std::any::Any>,
}

fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRegistry::open(dir.path().join("registry.db")).unwrap();
    Opened {
        store: Arc::new(store),
        _kept: Box::new(dir),
    }
}

/// The test database's URL.
pub(crate) fn postgres_url() -> String {
    std::env::var("LIENTHONG_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of the test database, dropped when the test ends.
pub(crate) struct TestSchema {
    name: String,
}

impl TestSchema {
    /// A new, empty schema.
    pub(crate) fn new() -> Self {
        let name = format!("lienthong_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls)
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} is needed (scripts/test.sh starts it): {e}",
                    postgres_url()
                )
            });
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .unwrap();
        Self { name }
    }

    /// The URL of a store in this schema.
    pub(crate) fn url(&self) -> String {
        PostgresRegistry::in_schema(&postgres_url(), &self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

fn postgres() -> Opened {
    let schema = TestSchema::new();
    let store = PostgresRegistry::open(&schema.url()).unwrap();
    Opened {
        store: Arc::new(store),
        _kept: Box::new(schema),
    }
}

/// Each test function, once on each backend.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $test() { super::$test(&*super::sqlite().store) })*
        }
        mod on_postgres {
            $(#[test] fn $test() { super::$test(&*super::postgres().store) })*
        }
    };
}

on_both_backends!(
    change_event_and_receipt_commit_together,
    a_free_pid_is_found_even_when_the_top_serial_is_taken,
    the_outbox_is_read_in_order_marked_and_purged,
    writers_at_once_get_gap_free_seqs_in_commit_order,
    changes_name_every_record_a_write_stored,
    a_consent_is_revoked_once_and_stays_revoked,
    a_quota_day_is_never_leased_past_its_quota,
);

fn event(id: &str, pid: Pid, occurred_at: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.into(),
        kind: "citizen.died".into(),
        pid,
        occurred_at: occurred_at.into(),
        data: "{}".into(),
    }
}

fn key(request_id: &str) -> RequestKey<'_> {
    RequestKey {
        agency: "civil",
        request_id,
        operation: "record_death",
        fingerprint: [1; 32],
        node: "test",
    }
}

fn change_event_and_receipt_commit_together(store: &dyn Store) {
    let pop = Population::new(3, 10).unwrap();
    let mut citizen = pop.citizen(4);
    let pid = Pid::from_u64(citizen.pid).unwrap();
    assert_eq!(store.get(pid).unwrap(), None);
    citizen.status = 1;
    let first = store
        .write(&key("r1"), &mut |_| {
            Ok(Planned {
                records: vec![citizen.clone()],
                event: event("ev-1", pid, "2026-11-23T00:00:00.000000Z"),
            })
        })
        .unwrap();
    assert_eq!(first.receipt().seq, 1);
    assert_eq!(store.get(pid).unwrap(), Some(citizen.clone()));
    // A second event with the same id violates the outbox's uniqueness:
    // the whole transaction, record and receipt included, rolls back.
    let mut again = citizen.clone();
    again.status = 0;
    assert!(
        store
            .write(&key("r2"), &mut |_| Ok(Planned {
                records: vec![again.clone()],
                event: event("ev-1", pid, "2026-11-23T00:00:01.000000Z"),
            }))
            .is_err()
    );
    assert_eq!(store.get(pid).unwrap(), Some(citizen.clone()));
    // So does a plan that refuses.
    assert!(
        store
            .write(&key("r3"), &mut |_| Err(Error::CitizenNotFound))
            .is_err()
    );
    assert_eq!(store.lag().unwrap().last_seq, 1);
    // r2 was rolled back, so it can be used again; r1 replays.
    assert!(matches!(
        store.write(&key("r1"), &mut |_| unreachable!()).unwrap(),
        Written::Replayed(r) if r == *first.receipt()
    ));
}

fn a_free_pid_is_found_even_when_the_top_serial_is_taken(store: &dyn Store) {
    let pid = |serial| Pid::from_parts(1, lienthong_proto::Sex::Female, 2026, serial).unwrap();
    let (lo, hi) = (pid(0), pid(999_999));
    let free_after = |taken: &[u32], request_id: &str| {
        let mut found = None;
        let records: Vec<Citizen> = taken
            .iter()
            .map(|&s| Citizen {
                pid: pid(s).as_u64(),
                ..Citizen::default()
            })
            .collect();
        store
            .write(&key(request_id), &mut |scope| {
                found = scope.free_within(lo, hi)?;
                Ok(Planned {
                    records: records.clone(),
                    event: event(request_id, lo, "2026-11-23T00:00:00.000000Z"),
                })
            })
            .unwrap();
        found.map(|p| p.serial())
    };
    assert_eq!(
        free_after(&[5], "a"),
        Some(0),
        "an empty bucket starts at 0"
    );
    assert_eq!(free_after(&[999_999], "b"), Some(6), "after the highest");
    assert_eq!(
        free_after(&[0, 1, 2, 3, 4], "c"),
        Some(0),
        "the lowest free"
    );
    assert_eq!(free_after(&[], "d"), Some(6), "the first gap");
}

fn the_outbox_is_read_in_order_marked_and_purged(store: &dyn Store) {
    let pid = Population::new(3, 10).unwrap().pid(1);
    for i in 1..=5 {
        let stamp = format!("2026-11-2{i}T00:00:00.000000Z");
        let id = format!("r{i}");
        store
            .write(&key(&id), &mut |_| {
                Ok(Planned {
                    records: vec![],
                    event: event(&format!("ev-{i}"), pid, &stamp),
                })
            })
            .unwrap();
    }
    let seqs = |rows: Vec<OutboxRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.unpublished(0, 3).unwrap()), [1, 2, 3]);
    assert_eq!(seqs(store.unpublished(3, 10).unwrap()), [4, 5]);
    store
        .mark_published(1, 2, "2026-11-30T00:00:00.000000Z")
        .unwrap();
    assert_eq!(seqs(store.unpublished(0, 10).unwrap()), [3, 4, 5]);
    let lag = store.lag().unwrap();
    assert_eq!((lag.waiting, lag.last_seq), (3, 5));
    assert_eq!(
        lag.oldest_waiting.as_deref(),
        Some("2026-11-23T00:00:00.000000Z")
    );
    // Only published events past retention go; seq is never reused.
    assert_eq!(
        store
            .purge_published("2026-11-24T00:00:00.000000Z")
            .unwrap(),
        2
    );
    store
        .mark_published(3, 5, "2026-11-30T00:00:00.000000Z")
        .unwrap();
    assert_eq!(
        store
            .purge_published("2026-11-24T00:00:00.000000Z")
            .unwrap(),
        1
    );
    assert_eq!(
        store.lag().unwrap(),
        OutboxLag {
            waiting: 0,
            oldest_waiting: None,
            last_seq: 5
        }
    );
}

/// Four writers at once, 50 writes each: every write gets its own seq, the
/// seqs run 1..=200 with no gap, and a reader following the outbox sees
/// them in order.
fn writers_at_once_get_gap_free_seqs_in_commit_order(store: &dyn Store) {
    let pid = Population::new(3, 10).unwrap().pid(1);
    std::thread::scope(|s| {
        for w in 0..4 {
            s.spawn(move || {
                for i in 0..50 {
                    let id = format!("w{w}-{i}");
                    store
                        .write(&key(&id), &mut |_| {
                            Ok(Planned {
                                records: vec![],
                                event: event(&id, pid, "2026-11-23T00:00:00.000000Z"),
                            })
                        })
                        .unwrap();
                }
            });
        }
    });
    let changes = store.changes_after(0, 1_000).unwrap();
    assert_eq!(changes.last_seq, 200);
    let seqs: Vec<u64> = changes.writes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert_eq!(store.changes_after(150, 10).unwrap().writes[0].seq, 151);
}

/// A write of two records names both; a write of its event's citizen alone
/// names it.
fn changes_name_every_record_a_write_stored(store: &dyn Store) {
    let pop = Population::new(3, 10).unwrap();
    let (a, b) = (pop.citizen(1), pop.citizen(2));
    let (pid_a, pid_b) = (Pid::from_u64(a.pid).unwrap(), Pid::from_u64(b.pid).unwrap());
    let both = store
        .write(&key("m"), &mut |_| {
            Ok(Planned {
                records: vec![a.clone(), b.clone()],
                event: event("m", pid_a, "2026-11-23T00:00:00.000000Z"),
            })
        })
        .unwrap();
    store
        .write(&key("n"), &mut |_| {
            Ok(Planned {
                records: vec![b.clone()],
                event: event("n", pid_b, "2026-11-23T00:00:00.000000Z"),
            })
        })
        .unwrap();
    let changes = store.changes_after(0, 10).unwrap();
    let pids: Vec<Vec<Pid>> = changes.writes.iter().map(|c| c.pids.clone()).collect();
    assert_eq!(pids, [vec![pid_a, pid_b], vec![pid_b]]);
    assert_eq!(changes.writes[0].seq, both.receipt().seq);
    let mut seen = Vec::new();
    let last = store
        .visit_all(RecordView::Full, &mut |c: Citizen| seen.push(c))
        .unwrap();
    assert_eq!(last, 2);
    assert_eq!(seen, [a, b]);
}

/// A consent is found, revoked at its first revocation's time, and a
/// revocation of another citizen's consent finds nothing.
fn a_consent_is_revoked_once_and_stays_revoked(store: &dyn Store) {
    let pid = Population::new(3, 10).unwrap().pid(1);
    let other = Population::new(3, 10).unwrap().pid(2);
    let consent = StoredConsent {
        id: "c-1".into(),
        pid,
        agency: "bank".into(),
        purpose: "KYC_ONBOARDING".into(),
        fields: "full_name".into(),
        issued_at: "2026-11-23T00:00:00Z".into(),
        expires_at: "2027-11-23T00:00:00Z".into(),
    };
    store.insert(&consent).unwrap();
    assert_eq!(store.is_revoked("c-1").unwrap(), Some(false));
    assert_eq!(store.is_revoked("c-2").unwrap(), None);
    assert_eq!(
        store.revoke(other, "c-1", "2026-11-24T00:00:00Z").unwrap(),
        None
    );
    let first = store.revoke(pid, "c-1", "2026-11-24T00:00:00Z").unwrap();
    assert_eq!(first.as_deref(), Some("2026-11-24T00:00:00Z"));
    let again = store.revoke(pid, "c-1", "2026-11-25T00:00:00Z").unwrap();
    assert_eq!(again, first, "the first revocation's time stays");
    assert_eq!(store.is_revoked("c-1").unwrap(), Some(true));
    // The same id twice is refused.
    assert!(store.insert(&consent).is_err());
}

/// Leases grant what is left of the quota and no more, nothing when less
/// than the least asked for is left, per agency and day; a raised quota
/// grants again.
fn a_quota_day_is_never_leased_past_its_quota(store: &dyn Store) {
    assert_eq!(store.lease("bank", 20_000, 10, 1, 4).unwrap(), 4);
    assert_eq!(store.lease("bank", 20_000, 10, 1, 4).unwrap(), 4);
    assert_eq!(store.lease("bank", 20_000, 10, 1, 4).unwrap(), 2);
    assert_eq!(store.lease("bank", 20_000, 10, 1, 1).unwrap(), 0);
    // A batch of 5 when 4 are left gets none of them: they stay for others.
    assert_eq!(store.lease("telco", 20_000, 10, 1, 6).unwrap(), 6);
    assert_eq!(store.lease("telco", 20_000, 10, 5, 5).unwrap(), 0);
    assert_eq!(store.lease("telco", 20_000, 10, 4, 4).unwrap(), 4);
    // Another day: its own count; a raised quota grants again.
    assert_eq!(store.lease("bank", 20_001, 10, 3, 3).unwrap(), 3);
    assert_eq!(store.lease("bank", 20_000, 12, 1, 5).unwrap(), 2);
    // Counts far older than the day leased are dropped.
    assert_eq!(store.lease("bank", 20_100, 10, 1, 1).unwrap(), 1);
    assert_eq!(store.lease("bank", 20_000, 1_000, 1, 1_000).unwrap(), 1_000);
}
