//! The audit log against a real SQLite file: concurrent appends chain
//! without gaps, and every kind of tampering is found.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::*;
use crate::policy::Policy;
use crate::signing::SigningKey;

fn entry(pid: &str, operation: &str, hidden_until: Option<&str>) -> AuditEntry {
    AuditEntry {
        agency: "bank".into(),
        operation: operation.into(),
        purpose: "KYC".into(),
        pids: pid.into(),
        fields: String::new(),
        decision: Decision::Granted,
        outcome: "OK".into(),
        request_id: String::new(),
        trace_id: String::new(),
        request_hash: [1; 32],
        response_hash: [2; 32],
        hidden_until: hidden_until.map(str::to_owned),
    }
}

/// A log of `n` records appended by 8 concurrent tasks, closed (so its last
/// checkpoint is signed); returns its path and key.
async fn written_log(dir: &Path, n: usize) -> (PathBuf, Arc<SigningKey>) {
    let path = dir.join("audit.db");
    let key = Arc::new(SigningKey::ephemeral());
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(8) {
                let pid = format!("0010890{i:05}");
                log.append(vec![entry(&pid, "verify_identity", None)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    (path, key)
}

fn problem(path: &Path, key: &SigningKey) -> Option<Problem> {
    verify(path, &key.verifying_key()).unwrap().problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_chain_without_gaps_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 400).await;
    let report = verify(&path, &key.verifying_key()).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 400);
    assert_eq!(
        report.checkpointed, 400,
        "the last checkpoint covers the tail"
    );
    // Reopening continues the chain.
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let last = log
        .append(vec![entry("001089000001", "get_citizen", None); 3])
        .await
        .unwrap();
    assert_eq!(last, 403);
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let report = verify(&path, &key.verifying_key()).unwrap();
    assert_eq!(
        (report.problem, report.records, report.checkpointed),
        (None, 403, 403)
    );
    // Another key's checkpoints are forgeries.
    let other = SigningKey::ephemeral();
    assert!(matches!(
        problem(&path, &other),
        Some(Problem::CheckpointForged { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 50).await;
    let pristine = std::fs::read(&path).unwrap();
    let tamper = |sql: &str| {
        std::fs::write(&path, &pristine).unwrap();
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    };
    tamper("UPDATE audit SET outcome = 'PURPOSE_NOT_PERMITTED' WHERE seq = 17");
    assert_eq!(problem(&path, &key), Some(Problem::Edited { seq: 17 }));
    tamper("UPDATE audit SET decision = 'maybe' WHERE seq = 18");
    assert_eq!(
        problem(&path, &key),
        Some(Problem::Unreadable { seq: Some(18) })
    );
    tamper("DELETE FROM audit WHERE seq = 20");
    assert_eq!(
        problem(&path, &key),
        Some(Problem::Missing {
            expected: 20,
            found: 21
        })
    );
    // Reordering: records 30 and 31 swap places.
    tamper(
        "UPDATE audit SET seq = -1 WHERE seq = 30;
         UPDATE audit SET seq = 30 WHERE seq = 31;
         UPDATE audit SET seq = 31 WHERE seq = -1;",
    );
    assert_eq!(problem(&path, &key), Some(Problem::Edited { seq: 30 }));
    tamper("DELETE FROM audit WHERE seq > 45");
    assert_eq!(
        problem(&path, &key),
        Some(Problem::TailCut { seq: 50, last: 45 })
    );
    // A rewrite that recomputes every hash after an edit still differs
    // from the signed checkpoint.
    std::fs::write(&path, &pristine).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        let mut records = Vec::new();
        store::each_record(&conn, |r| {
            records.push(r.unwrap());
            true
        })
        .unwrap();
        let mut prev = record::GENESIS;
        for mut r in records {
            if r.seq == 10 {
                r.entry.agency = "someone-else".into();
            }
            let r = AuditRecord::chain(r.seq, r.time, r.entry, prev);
            conn.execute(
                "UPDATE audit SET agency = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                params![r.entry.agency, &r.prev_hash[..], &r.hash[..], r.seq as i64],
            )
            .unwrap();
            prev = r.hash;
        }
    }
    assert_eq!(problem(&path, &key), Some(Problem::Rewritten { seq: 50 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_sees_accesses_newest_first_and_confidential_ones_only_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let (log, writer) = AuditLog::open(&path, Arc::new(SigningKey::ephemeral())).unwrap();
    let me = "001089000001";
    let mut refused_listing = entry(me, "list_accesses", None);
    refused_listing.decision = Decision::Refused;
    log.append(vec![
        entry(me, "verify_identity", None),
        entry("001089000002", "verify_identity", None),
        entry(me, "get_citizen", Some("2000-01-01T00:00:00.000000Z")),
        entry(me, "get_citizen", Some("2999-01-01T00:00:00.000000Z")),
        entry(me, "list_accesses", None),
        entry(&format!("{me} 001089000002"), "record_marriage", None),
        refused_listing,
    ])
    .await
    .unwrap();
    let policy = LivePolicy::new(
        Policy::parse("[agencies.idp]\nname = \"IdP\"\nroles = [\"identity_provider\"]\n[agencies.bank]\nname = \"Bank\"\n")
            .unwrap(),
    );
    let list = AccessList::new(policy, &path);
    let pid: Pid = me.parse().unwrap();
    let pages = || {
        let page = list.list("idp", pid, 2, None).unwrap();
        let rest = list.list("idp", pid, 2, page.next).unwrap();
        assert_eq!(page.accesses[1].1, "Bank");
        let seqs = |p: &AccessPage| p.accesses.iter().map(|(a, _)| a.seq).collect::<Vec<_>>();
        (seqs(&page), seqs(&rest), rest.next)
    };
    // Just appended: found by scanning the log past the index.
    let expected = (vec![7, 6], vec![3, 1], None);
    assert_eq!(
        pages(),
        expected,
        "newest first; own acts and still-hidden ones left out, someone else's refused listing shown"
    );
    // Once the index has caught up (it does when the log closes), through it.
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let through: i64 = Connection::open(index_path(&path))
        .unwrap()
        .query_row("SELECT through FROM indexed", [], |r| r.get(0))
        .unwrap();
    assert_eq!(through, 7);
    assert_eq!(pages(), expected);
    assert!(matches!(
        list.list("bank", pid, 2, None),
        Err(Error::RoleNotPermitted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_citizen_index_that_hides_or_invents_accesses() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 40).await;
    assert_eq!(problem(&path, &key), None);
    let index = index_path(&path);
    let pristine = std::fs::read(&index).unwrap();
    let tamper = |sql: &str| {
        std::fs::write(&index, &pristine).unwrap();
        Connection::open(&index)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        problem(&path, &key)
    };
    assert_eq!(
        tamper("DELETE FROM audit_pid WHERE seq = 12"),
        Some(Problem::IndexIncomplete {
            expected: 40,
            found: 39
        })
    );
    assert_eq!(
        tamper("UPDATE audit_pid SET pid = 1089000999 WHERE seq = 13"),
        Some(Problem::IndexForeign { seq: 13 })
    );
    // A missing index is no problem of the log's: it is rebuilt, whole.
    std::fs::remove_file(&index).unwrap();
    assert_eq!(problem(&path, &key), None);
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    assert_eq!(problem(&path, &key), None);
    let entries: i64 = Connection::open(&index)
        .unwrap()
        .query_row("SELECT count(*) FROM audit_pid", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, 40);
}
