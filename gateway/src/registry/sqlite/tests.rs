//! The SQLite registry against real files: writes with their events and receipts, Pid allocation, the outbox, reopening.

use super::*;
use crate::registry::Planned;
use lienthong_proto::population::Population;

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
    }
}

#[test]
fn change_event_and_receipt_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRegistry::open(dir.path().join("registry.db")).unwrap();
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

#[test]
fn a_free_pid_is_found_even_when_the_top_serial_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRegistry::open(dir.path().join("registry.db")).unwrap();
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

#[test]
fn the_outbox_is_read_in_order_marked_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRegistry::open(dir.path().join("registry.db")).unwrap();
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

#[test]
fn reopening_keeps_schema_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let pop = Population::new(3, 100).unwrap();
    {
        let store = SqliteRegistry::open(&path).unwrap();
        crate::registry::seed(&store, &pop, None, |_| {}).unwrap();
    }
    let store = SqliteRegistry::open(&path).unwrap();
    assert_eq!(store.count().unwrap(), 100);
    let pids: Vec<Pid> = (0..100).map(|i| pop.pid(i)).collect();
    let got = store.get_many(&pids).unwrap();
    assert!(
        got.iter()
            .zip(0..)
            .all(|(c, i)| c.as_ref() == Some(&pop.citizen(i)))
    );
}
