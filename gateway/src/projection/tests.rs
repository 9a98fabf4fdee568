//! The projection against a real SQLite registry: it holds what the store
//! holds, answers claims as the store's records do, follows every write made
//! through the projected store, and is rebuilt the same from the store.

use std::sync::Arc;

use lienthong_proto::citizen::RecordView;
use lienthong_proto::name::NameMatch;
use lienthong_proto::population::Population;
use lienthong_proto::{Citizen, Date, Pid};

use super::*;
use crate::policy::{LivePolicy, Policy};
use crate::registration::{CardIssue, Death, Marriage, NameChange, Registrar, WriteRequest};
use crate::registry::Outbox;
use crate::registry::{PostgresRegistry, SqliteRegistry, seed};
use crate::verify::{Claim, Predicate, ResidenceClaim, verify};

const POLICY: &str = r#"
[agencies.civil]
name = "Civil registry"
roles = ["civil_registry"]
[agencies.police]
name = "Residence police"
roles = ["residence_registry", "card_issuer"]
"#;

fn registry(dir: &tempfile::TempDir) -> (Arc<SqliteRegistry>, Population) {
    let store = Arc::new(SqliteRegistry::open(dir.path().join("registry.db")).unwrap());
    let population = Population::new(11, 3_000).unwrap();
    seed(&store, &population, None, |_| {}).unwrap();
    (store, population)
}

/// Every citizen's facts in `projection` are those of its stored record,
/// and no other Pid is found.
fn holds_the_store(projection: &Projection, store: &dyn PopulationStore) {
    let mut stored = Vec::new();
    store
        .visit_all(RecordView::Full, &mut |c| stored.push(c))
        .unwrap();
    assert_eq!(projection.footprint().citizens, stored.len());
    let pids = stored.iter().map(|c| Pid::from_u64(c.pid).unwrap());
    projection.visit(pids, |i, facts| {
        let facts = facts.unwrap();
        let folded = lienthong_proto::name::fold_diacritics(&stored[i].full_name);
        assert_eq!(facts.folded_name, Some(&*folded));
        let held = facts.with_folded_name(None);
        assert_eq!(held, Facts::from(&stored[i]), "{}", stored[i].pid);
    });
}

/// Claims of every kind about `c`: right, wrong, partial, with predicates.
fn claims_about(c: &Citizen) -> Vec<Claim> {
    let pid = Pid::from_u64(c.pid).unwrap();
    let base = Claim::pid_only(pid);
    let province = c.permanent.as_ref().map_or(1, |a| a.province as u16);
    vec![
        Claim {
            full_name: Some(c.full_name.to_uppercase()),
            date_of_birth: c.date_of_birth(),
            sex: Some(c.sex()),
            ..base.clone()
        },
        Claim {
            full_name: Some(format!("{}x", c.full_name)),
            old_id_number: Some(c.old_id_number.clone()),
            ..base.clone()
        },
        Claim {
            permanent_residence: Some(ResidenceClaim {
                province,
                line: c.permanent.as_ref().map(|a| a.line.clone()),
            }),
            predicates: vec![
                Predicate::Alive,
                Predicate::AgeAtLeast(18),
                Predicate::PermanentResidentOf(province),
            ],
            ..base.clone()
        },
        base,
    ]
}

#[test]
fn the_projection_answers_every_claim_as_the_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let (store, population) = registry(&dir);
    let projection = Projection::build(&*store).unwrap();
    holds_the_store(&projection, &*store);
    // A mixed batch: claims of every kind about every tenth citizen, and
    // Pids no one has.
    let today = Date::today();
    let mut claims: Vec<Claim> = population
        .iter()
        .step_by(10)
        .flat_map(|c| claims_about(&c))
        .collect();
    claims.push(Claim::pid_only(Pid::from_u64(1_089_999_999).unwrap()));
    let pids: Vec<Pid> = claims.iter().map(|c| c.pid).collect();
    let records = store.get_many(&pids).unwrap();
    for how in [NameMatch::Exact, NameMatch::Partial { threshold: 85 }] {
        let mut answered = 0;
        projection.visit(pids.iter().copied(), |i, facts| {
            let from_store = records[i].as_ref().map(Facts::from);
            assert_eq!(
                verify(&claims[i], facts.as_ref(), how, today),
                verify(&claims[i], from_store.as_ref(), how, today),
                "claim {i}"
            );
            answered += 1;
        });
        assert_eq!(answered, claims.len());
    }
}

#[tokio::test]
async fn every_write_through_the_projected_store_is_applied_and_a_rebuild_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (store, population) = registry(&dir);
    let projection = Arc::new(Projection::build(&*store).unwrap());
    let projected: Arc<dyn PopulationStore> =
        Arc::new(ProjectedStore::new(store.clone(), projection.clone()));
    let registrar = Registrar::new(LivePolicy::new(Policy::parse(POLICY).unwrap()), projected);
    let living = population
        .iter()
        .find(|c| {
            c.life_status() == lienthong_proto::citizen::LifeStatus::Alive
                && c.date_of_birth().unwrap().year() < 1990
        })
        .unwrap();
    let pid = Pid::from_u64(living.pid).unwrap();
    let request = |n: u8| WriteRequest {
        request_id: format!("w-{n}"),
        fingerprint: [n; 32],
    };
    let before = projection.applied_seq();
    registrar
        .record(
            "civil",
            request(1),
            NameChange {
                pid,
                full_name: "Đỗ Văn Mới".into(),
            },
        )
        .await
        .unwrap();
    registrar
        .record(
            "police",
            request(2),
            CardIssue {
                pid,
                issued_on: Date::new(2026, 1, 2).unwrap(),
            },
        )
        .await
        .unwrap();
    let died = registrar
        .record(
            "civil",
            request(3),
            Death {
                pid,
                died_on: Date::new(2026, 2, 3).unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(projection.applied_seq(), died.receipt().seq);
    assert_eq!(died.receipt().seq, before + 3);
    // A replay changes nothing and applies nothing.
    registrar
        .record(
            "civil",
            request(3),
            Death {
                pid,
                died_on: Date::new(2026, 2, 3).unwrap(),
            },
        )
        .await
        .unwrap();
    assert_eq!(projection.applied_seq(), died.receipt().seq);
    holds_the_store(&projection, &*store);
    projection.visit(std::iter::once(pid), |_, facts| {
        let facts = facts.unwrap();
        assert_eq!(facts.full_name, "Đỗ Văn Mới");
        assert_eq!(facts.status, 1);
        assert_eq!(facts.card_issued_on, 20260102);
    });
    assert!(projection.footprint().stale > 0, "the old name's bytes");
    // A restart: built again from the store, the same, at the same seq.
    let rebuilt = Projection::build(&*store).unwrap();
    assert_eq!(rebuilt.applied_seq(), projection.applied_seq());
    holds_the_store(&rebuilt, &*store);
    assert_eq!(rebuilt.footprint().stale, 0);
}

/// Another gateway over the same store writes; this projection learns of
/// it from the outbox only: every record a write stored (both of a
/// marriage), in order, a seq the store has not committed refused, and a
/// stretch purged before it was read rebuilt from the store, not skipped.
///
/// On both backends; the store is called from plain threads (a PostgreSQL
/// client blocks), the registrar from a runtime, as the gateway runs them.
fn writes_of_another_writer_are_followed_through_the_outbox<S>(
    store: Arc<S>,
    population: Population,
) where
    S: PopulationStore + Outbox,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let projection = Projection::build(&*store).unwrap();
    // The other gateway: its writes reach the store, not this projection.
    let other = Registrar::new(
        LivePolicy::new(Policy::parse(POLICY).unwrap()),
        store.clone(),
    );
    let today = Date::today();
    let single_adults: Vec<Citizen> = population
        .iter()
        .filter(|c| {
            c.life_status() == lienthong_proto::citizen::LifeStatus::Alive
                && c.marital_status() == lienthong_proto::citizen::Marital::Single
                && c.date_of_birth().is_some_and(|d| d.age_on(today) >= 25)
        })
        .collect();
    let man = single_adults.iter().find(|c| !c.female).unwrap();
    let woman = single_adults.iter().find(|c| c.female).unwrap();
    let (man_pid, woman_pid) = (
        Pid::from_u64(man.pid).unwrap(),
        Pid::from_u64(woman.pid).unwrap(),
    );
    let request = |n: u8| WriteRequest {
        request_id: format!("o-{n}"),
        fingerprint: [n; 32],
    };
    let before = projection.applied_seq();
    runtime
        .block_on(other.record(
            "civil",
            request(1),
            Marriage {
                pid: man_pid,
                spouse: woman_pid,
                married_on: Date::new(2025, 5, 1).unwrap(),
            },
        ))
        .unwrap();
    let renamed = runtime
        .block_on(other.record(
            "civil",
            request(2),
            NameChange {
                pid: man_pid,
                full_name: "Võ Văn Theo".into(),
            },
        ))
        .unwrap();
    let changes = store.changes_after(before, 10).unwrap();
    assert_eq!(changes.last_seq, before + 2);
    let pids: Vec<Vec<Pid>> = changes.writes.iter().map(|c| c.pids.clone()).collect();
    assert_eq!(pids, [vec![man_pid, woman_pid], vec![man_pid]]);
    // Not applied until followed.
    assert_eq!(projection.applied_seq(), before);
    projection.visit(std::iter::once(man_pid), |_, facts| {
        assert_eq!(facts.unwrap().full_name, man.full_name);
    });
    assert!(projection.at_least(&*store, before + 3).is_err());
    assert_eq!(
        projection.at_least(&*store, before + 2).unwrap(),
        before + 2
    );
    assert_eq!(renamed.receipt().seq, before + 2);
    holds_the_store(&projection, &*store);

    // A write, published and purged before this projection read it.
    runtime
        .block_on(other.record(
            "civil",
            request(3),
            NameChange {
                pid: woman_pid,
                full_name: "Hồ Thị Sau".into(),
            },
        ))
        .unwrap();
    store
        .mark_published(1, before + 3, "2026-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(store.purge_published("9999-12-31T00:00:00Z").unwrap(), 3);
    assert_eq!(projection.catch_up(&*store).unwrap(), before + 3);
    projection.visit(std::iter::once(woman_pid), |_, facts| {
        assert_eq!(facts.unwrap().full_name, "Hồ Thị Sau");
    });
    holds_the_store(&projection, &*store);
}

#[test]
fn writes_of_another_writer_are_followed_through_the_outbox_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, population) = registry(&dir);
    writes_of_another_writer_are_followed_through_the_outbox(store, population);
}

#[test]
fn writes_of_another_writer_are_followed_through_the_outbox_on_postgres() {
    let schema = crate::registry::TestSchema::new();
    let store = Arc::new(PostgresRegistry::open(&schema.url()).unwrap());
    let population = Population::new(11, 3_000).unwrap();
    assert_eq!(store.seed(&population, |_| {}).unwrap(), 3_000);
    assert_eq!(store.seeded_with().unwrap(), Some((11, 3_000)));
    writes_of_another_writer_are_followed_through_the_outbox(store, population);
}
