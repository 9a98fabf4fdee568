//! The shared audit log against the local PostgreSQL: chains of several
//! replicas side by side, one process a node name, a restart that
//! continues the chain, `ListAccesses` across chains, and each kind of
//! tampering found by `verify_shared`.

use std::sync::Arc;

use lienthong_proto::Pid;

use super::*;
use crate::audit::AccessList;
use crate::audit::tests::entry;
use crate::audit::verify::Problem;
use crate::policy::{LivePolicy, Policy};
use crate::registry::PostgresRegistry;
use crate::registry::tests::TestSchema;

const ALICE: &str = "001089000001";
const BOB: &str = "001089000002";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// [`SharedAudit::open`], which blocks on the network, from a runtime's
/// worker.
fn open(
    url: &str,
    node: &str,
    key: Arc<SigningKey>,
) -> Result<(SharedAudit, SharedAuditWriter, SharedAccesses)> {
    tokio::task::block_in_place(|| SharedAudit::open(url, node, key))
}

/// A schema with the registry's tables (the audit's among them), its URL
/// and a signing key.
fn fresh() -> (TestSchema, String, Arc<SigningKey>) {
    let schema = TestSchema::new();
    let url = schema.url();
    drop(PostgresRegistry::open(&url).unwrap());
    (schema, url, Arc::new(SigningKey::ephemeral()))
}

fn sql(url: &str, statements: &str) {
    let pool = Pool::from_url(url, 1).unwrap();
    pool.with_client(|c| Ok(c.batch_execute(statements)?))
        .unwrap();
}

/// Chains `gw-a` and `gw-b` of 40 records each, appended at once, then
/// closed; the schema, the URL and the key.
fn two_chains() -> (TestSchema, String, Arc<SigningKey>) {
    let (schema, url, key) = fresh();
    let rt = runtime();
    rt.block_on(async {
        let chains: Vec<_> = ["gw-a", "gw-b"]
            .iter()
            .map(|node| open(&url, node, key.clone()).unwrap())
            .collect();
        let mut tasks = Vec::new();
        for (audit, _, _) in &chains {
            for i in 0..4 {
                let audit = audit.clone();
                tasks.push(tokio::spawn(async move {
                    for j in 0..10 {
                        let pids = if (i + j) % 2 == 0 { ALICE } else { BOB };
                        audit
                            .append(vec![entry(pids, "verify_identity", None)])
                            .await
                            .unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        for (audit, writer, _) in chains {
            drop(audit);
            assert!(writer.close(std::time::Duration::from_secs(5)).await);
        }
    });
    (schema, url, key)
}

fn verified(url: &str, key: &SigningKey, anchors: &[ChainAnchor]) -> Vec<ChainReport> {
    verify_shared(url, &key.verifying_key(), anchors).unwrap()
}

fn problem_of(reports: &[ChainReport], node: &str) -> Option<Problem> {
    reports
        .iter()
        .find(|r| r.node == node)
        .unwrap()
        .problem
        .clone()
}

#[test]
fn replicas_chain_side_by_side_and_verify() {
    let (_schema, url, key) = two_chains();
    let reports = verified(&url, &key, &[]);
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(
            (r.records, r.first, r.problem.clone()),
            (40, 1, None),
            "{r}"
        );
    }
}

#[test]
fn a_node_name_in_use_is_refused_and_a_restart_continues_the_chain() {
    let (_schema, url, key) = fresh();
    let rt = runtime();
    rt.block_on(async {
        let (audit, writer, _) = open(&url, "gw-a", key.clone()).unwrap();
        assert_eq!(
            audit.append(vec![entry(ALICE, "x", None)]).await.unwrap(),
            1
        );
        let refused = open(&url, "gw-a", key.clone()).err().unwrap();
        assert!(matches!(refused, Error::AuditNodeTaken { .. }), "{refused}");
        assert!(refused.to_string().contains("--node-name"), "{refused}");
        // Another name is another chain.
        let (other, other_writer, _) = open(&url, "gw-b", key.clone()).unwrap();
        assert_eq!(other.append(vec![entry(BOB, "x", None)]).await.unwrap(), 1);
        drop((audit, other));
        assert!(writer.close(std::time::Duration::from_secs(5)).await);
        assert!(other_writer.close(std::time::Duration::from_secs(5)).await);
        // Once the first process is gone, the name is free; the chain goes on.
        let (audit, writer, _) = open(&url, "gw-a", key.clone()).unwrap();
        let two = vec![entry(ALICE, "x", None), entry(BOB, "y", None)];
        assert_eq!(audit.append(two).await.unwrap(), 3);
        drop(audit);
        assert!(writer.close(std::time::Duration::from_secs(5)).await);
    });
    let reports = verified(&url, &key, &[]);
    assert_eq!(problem_of(&reports, "gw-a"), None);
    assert_eq!(reports.iter().map(|r| r.records).sum::<u64>(), 4);
    // The closes signed a last checkpoint of each chain.
    assert_eq!(reports[0].checkpointed, 3);
    assert_eq!(reports[1].checkpointed, 1);
}

#[test]
fn list_accesses_pages_through_every_chain_newest_first() {
    let (_schema, url, key) = fresh();
    let policy = LivePolicy::new(
        Policy::parse("[agencies.idp]\nname = \"IdP\"\nroles = [\"identity_provider\"]\n[agencies.bank]\nname = \"Bank\"\n")
            .unwrap(),
    );
    let rt = runtime();
    let list = rt.block_on(async {
        let (a, _aw, accesses) = open(&url, "gw-a", key.clone()).unwrap();
        let (b, _bw, _) = open(&url, "gw-b", key.clone()).unwrap();
        for i in 0..7 {
            let via = if i % 2 == 0 { &a } else { &b };
            let mut e = entry(ALICE, "verify_identity", None);
            e.request_id = format!("r{i}");
            via.append(vec![e]).await.unwrap();
        }
        // Hidden until far ahead, the citizen's own act, another citizen,
        // and a batch naming Alice among others: only the batch is shown.
        a.append(vec![entry(
            ALICE,
            "get_citizen",
            Some("9999-01-01T00:00:00Z"),
        )])
        .await
        .unwrap();
        b.append(vec![entry(ALICE, "grant_consent", None)])
            .await
            .unwrap();
        a.append(vec![entry(BOB, "verify_identity", None)])
            .await
            .unwrap();
        let mut batch = entry(&format!("{BOB} - {ALICE}"), AuditEntry::BATCH, None);
        batch.outcome = "OK PID_MALFORMED NOT_FOUND".into();
        b.append(vec![batch]).await.unwrap();
        AccessList::shared(policy, accesses)
    });
    let alice: Pid = ALICE.parse().unwrap();
    let first = list.list("idp", alice, 3, None).unwrap();
    let shown: Vec<(&str, &str)> = first
        .accesses
        .iter()
        .map(|(a, _)| (a.operation.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (AuditEntry::BATCH, "NOT_FOUND"),
            ("verify_identity", "OK"),
            ("verify_identity", "OK")
        ]
    );
    assert_eq!(first.accesses[0].0.node, "gw-b");
    assert_eq!(first.accesses[1].0.node, "gw-a");
    let mut all = first.accesses.clone();
    let mut next = first.next;
    while let Some(token) = next {
        let page = list.list("idp", alice, 3, Some(token)).unwrap();
        all.extend(page.accesses);
        next = page.next;
    }
    // The batch and the seven verifications, each once, newest first.
    assert_eq!(all.len(), 8);
    let orders: Vec<u64> = all.iter().map(|(a, _)| a.order).collect();
    assert!(orders.windows(2).all(|w| w[0] > w[1]), "{orders:?}");
    let nodes: Vec<&str> = all[1..].iter().map(|(a, _)| a.node.as_str()).collect();
    assert_eq!(
        nodes,
        ["gw-a", "gw-b", "gw-a", "gw-b", "gw-a", "gw-b", "gw-a"]
    );
    assert_eq!(all[0].1, "Bank");
    drop(rt);
}

/// Swaps the `at` of gw-a's records 9 and 10, in the log and the index
/// (undone by itself).
const SWAP_AT: &str = "CREATE TABLE swap AS
     SELECT seq, at FROM audit_record WHERE node = 'gw-a' AND seq IN (9, 10);
 UPDATE audit_record SET at = -at WHERE node = 'gw-a' AND seq IN (9, 10);
 UPDATE audit_pid SET at = -at WHERE node = 'gw-a' AND seq IN (9, 10);
 UPDATE audit_record r SET at = s.at FROM swap s
     WHERE r.node = 'gw-a' AND r.seq IN (9, 10) AND s.seq = 19 - r.seq;
 UPDATE audit_pid p SET at = s.at FROM swap s
     WHERE p.node = 'gw-a' AND p.seq IN (9, 10) AND s.seq = 19 - p.seq;
 DROP TABLE swap";

/// Swaps the seq of gw-a's records 11 and 12 (undone by itself).
const SWAP_SEQ: &str = "
 UPDATE audit_record SET seq = -1 WHERE node = 'gw-a' AND seq = 11;
 UPDATE audit_record SET seq = 11 WHERE node = 'gw-a' AND seq = 12;
 UPDATE audit_record SET seq = 12 WHERE node = 'gw-a' AND seq = -1";

#[test]
fn every_kind_of_tampering_is_found_in_its_chain() {
    let (_schema, url, key) = two_chains();
    type Case = (&'static str, &'static str, fn(&Option<Problem>) -> bool);
    let cases: [Case; 6] = [
        (
            "UPDATE audit_record SET purpose = 'x' WHERE node = 'gw-a' AND seq = 5",
            "UPDATE audit_record SET purpose = 'KYC' WHERE node = 'gw-a' AND seq = 5",
            |p| *p == Some(Problem::Edited { seq: 5 }),
        ),
        (
            "CREATE TABLE kept AS SELECT * FROM audit_record WHERE node = 'gw-a' AND seq = 7;
             DELETE FROM audit_record WHERE node = 'gw-a' AND seq = 7",
            "INSERT INTO audit_record SELECT * FROM kept; DROP TABLE kept",
            |p| {
                *p == Some(Problem::Missing {
                    expected: 7,
                    found: 8,
                })
            },
        ),
        (
            // The order ListAccesses shows: two records' `at` swapped, in
            // the index too.
            SWAP_AT,
            SWAP_AT,
            |p| *p == Some(Problem::Moved { seq: 10 }),
        ),
        (
            // Two records' places in the chain swapped.
            SWAP_SEQ,
            SWAP_SEQ,
            |p| *p == Some(Problem::Edited { seq: 11 }),
        ),
        (
            "CREATE TABLE kept AS SELECT * FROM audit_pid WHERE node = 'gw-a' AND seq = 3;
             DELETE FROM audit_pid WHERE node = 'gw-a' AND seq = 3",
            "INSERT INTO audit_pid SELECT * FROM kept; DROP TABLE kept",
            |p| matches!(p, Some(Problem::IndexIncomplete { .. })),
        ),
        (
            "UPDATE audit_pid SET pid = 1 WHERE node = 'gw-a' AND seq = 4",
            "UPDATE audit_pid SET pid = (SELECT pids::bigint FROM audit_record
                 WHERE node = 'gw-a' AND seq = 4) WHERE node = 'gw-a' AND seq = 4",
            |p| *p == Some(Problem::IndexForeign { seq: 4 }),
        ),
    ];
    for (tamper, undo, found) in cases {
        sql(&url, tamper);
        let reports = verified(&url, &key, &[]);
        let problem = problem_of(&reports, "gw-a");
        assert!(found(&problem), "{tamper}: {problem:?}");
        // The other chain is not affected.
        assert_eq!(problem_of(&reports, "gw-b"), None, "{tamper}");
        sql(&url, undo);
        assert_eq!(
            problem_of(&verified(&url, &key, &[]), "gw-a"),
            None,
            "{undo}"
        );
    }
    // The tail cut with its checkpoints: found with an anchor kept off the
    // machine, and refused by a replica restarting on that chain while a
    // checkpoint covers it.
    let reports = verified(&url, &key, &[]);
    let b = reports.iter().find(|r| r.node == "gw-b").unwrap();
    let anchor = ChainAnchor {
        node: "gw-b".into(),
        seq: b.checkpointed,
        hash: b.checkpointed_hash.unwrap(),
    };
    sql(
        &url,
        "DELETE FROM audit_record WHERE node = 'gw-b' AND seq > 30;
         DELETE FROM audit_pid WHERE node = 'gw-b' AND seq > 30;",
    );
    let refused = open(&url, "gw-b", key.clone()).err().unwrap();
    assert!(
        refused.to_string().contains("records were removed"),
        "{refused}"
    );
    sql(
        &url,
        "DELETE FROM audit_checkpoint WHERE node = 'gw-b' AND seq > 30",
    );
    assert_eq!(problem_of(&verified(&url, &key, &[]), "gw-b"), None);
    let anchored = verified(&url, &key, std::slice::from_ref(&anchor));
    assert_eq!(
        problem_of(&anchored, "gw-b"),
        Some(Problem::TailCut {
            seq: anchor.seq,
            last: 30
        })
    );
    // A checkpoint signed by another key is forged.
    let other = SigningKey::ephemeral();
    let reports = verify_shared(&url, &other.verifying_key(), &[]).unwrap();
    assert!(
        matches!(
            problem_of(&reports, "gw-a"),
            Some(Problem::CheckpointForged { .. })
        ),
        "{reports:?}"
    );
}

/// The README's way to archive a month: record what each chain's part of
/// it ended with, detach its partitions, drop them (once dumped). Each
/// chain then starts after the detached month; a replica goes on from
/// there; a removed first record after it is still found.
#[test]
fn a_detached_month_is_where_each_chain_then_starts() {
    let (_schema, url, key) = two_chains();
    let pool = Pool::from_url(&url, 1).unwrap();
    let month: String = pool
        .with_client(|c| {
            Ok(c.query_one(
                "SELECT DISTINCT to_char(period, 'YYYY_MM') FROM audit_record",
                &[],
            )?
            .get(0))
        })
        .unwrap();
    sql(
        &url,
        &format!(
            "INSERT INTO audit_detached (node, period, last_seq, last_hash)
               SELECT DISTINCT ON (node) node, period, seq, hash FROM audit_record_p{month}
               ORDER BY node, seq DESC;
             ALTER TABLE audit_record DETACH PARTITION audit_record_p{month};
             ALTER TABLE audit_pid DETACH PARTITION audit_pid_p{month};
             DROP TABLE audit_record_p{month};
             DROP TABLE audit_pid_p{month};"
        ),
    );
    for r in verified(&url, &key, &[]) {
        assert_eq!(
            (r.records, r.first, r.problem.clone()),
            (0, 41, None),
            "{r}"
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let (audit, writer, _) = open(&url, "gw-a", key.clone()).unwrap();
        let three = (0..3).map(|_| entry(ALICE, "x", None)).collect();
        assert_eq!(audit.append(three).await.unwrap(), 43);
        drop(audit);
        assert!(writer.close(std::time::Duration::from_secs(5)).await);
    });
    let reports = verified(&url, &key, &[]);
    let a = reports.iter().find(|r| r.node == "gw-a").unwrap();
    assert_eq!(
        (a.records, a.first, a.problem.clone()),
        (3, 41, None),
        "{a}"
    );
    sql(
        &url,
        "DELETE FROM audit_record WHERE node = 'gw-a' AND seq = 41",
    );
    assert_eq!(
        problem_of(&verified(&url, &key, &[]), "gw-a"),
        Some(Problem::Missing {
            expected: 41,
            found: 42
        })
    );
}
