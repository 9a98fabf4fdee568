//! The audit log against real segment files: concurrent appends chain
//! without gaps, every kind of tampering is found, a torn end is set aside,
//! and the log goes on across segments.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::policy::Policy;
use crate::signing::SigningKey;

pub(super) fn entry(pid: &str, operation: &str, hidden_until: Option<&str>) -> AuditEntry {
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
    let path = dir.join("audit");
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

/// The frames of segment 1, each whole (length prefix included).
fn frames(dir: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(segment::segment_path(dir, 1)).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if n == 0 {
            return out;
        }
        out.push(bytes[at..at + 4 + n].to_vec());
        at += 4 + n;
    }
}

/// Segment 1 rewritten to hold `frames`, then zeros as before.
fn rewrite(dir: &Path, frames: &[Vec<u8>]) {
    let path = segment::segment_path(dir, 1);
    let mut bytes = frames.concat();
    bytes.resize(std::fs::metadata(&path).unwrap().len() as usize, 0);
    std::fs::write(path, bytes).unwrap();
}

/// The record in frame `bytes`.
fn record_of(bytes: &[u8]) -> Option<AuditRecord> {
    match segment::decode(&bytes[4..]) {
        Ok(Frame::Record(r)) => Some(*r),
        _ => None,
    }
}

fn encoded(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::new();
    segment::encode_record(r, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 50).await;
    let pristine = frames(&path);
    let at = |seq: u64| {
        pristine
            .iter()
            .position(|f| record_of(f).is_some_and(|r| r.seq == seq))
            .unwrap()
    };
    let tampered = |edit: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut frames = pristine.clone();
        edit(&mut frames);
        rewrite(&path, &frames);
        problem(&path, &key)
    };
    assert_eq!(
        tampered(&|f| {
            let mut r = record_of(&f[at(17)]).unwrap();
            r.entry.outcome = "PURPOSE_NOT_PERMITTED".into();
            f[at(17)] = encoded(&r);
        }),
        Some(Problem::Edited { seq: 17 })
    );
    assert_eq!(
        tampered(&|f| {
            let frame = &mut f[at(18)];
            let i = frame.windows(7).position(|w| w == b"granted").unwrap();
            frame[i..i + 7].copy_from_slice(b"maybe!!");
        }),
        Some(Problem::Unreadable { seq: 18 })
    );
    assert_eq!(
        tampered(&|f| {
            f.remove(at(20));
        }),
        Some(Problem::Missing {
            expected: 20,
            found: 21
        })
    );
    assert_eq!(
        tampered(&|f| f.swap(at(30), at(31))),
        Some(Problem::Moved { seq: 30 })
    );
    assert_eq!(
        tampered(&|f| f.retain(|f| record_of(f).is_none_or(|r| r.seq <= 45))),
        Some(Problem::TailCut { seq: 50, last: 45 })
    );
    // A rewrite that recomputes every hash after an edit still differs
    // from the signed checkpoint.
    assert_eq!(
        tampered(&|f| {
            let mut prev = record::GENESIS;
            for frame in f.iter_mut() {
                let Some(mut r) = record_of(frame) else {
                    continue;
                };
                if r.seq == 10 {
                    r.entry.agency = "someone-else".into();
                }
                let r = AuditRecord::chain(r.seq, r.time, r.entry, prev);
                prev = r.hash;
                *frame = encoded(&r);
            }
        }),
        Some(Problem::Rewritten { seq: 50 })
    );
    // A checkpoint stored away from the record it signs still checks out
    // against that record (without the index, whose places it shifts).
    std::fs::remove_file(index_path(&path)).unwrap();
    assert_eq!(
        tampered(&|f| {
            let last = f.pop().unwrap();
            assert!(record_of(&last).is_none(), "the closing checkpoint");
            f.insert(at(10), last);
        }),
        None
    );
    rewrite(&path, &pristine);
    assert_eq!(problem(&path, &key), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_goes_on_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let key = Arc::new(SigningKey::ephemeral());
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..20u64 {
                let batch = (0..100u64)
                    .map(|i| {
                        let mut e = entry(
                            &format!("{:012}", 1_089_000_000 + t * 10_000 + b * 100 + i),
                            "verify_batch",
                            None,
                        );
                        e.request_id = format!("claim-{t}-{b}-{i}-{}", "x".repeat(200));
                        e
                    })
                    .collect();
                log.append(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(log);
    assert!(writer.close(Duration::from_secs(30)).await);
    // Begun segments (a prepared one holds only zeros).
    let begun: Vec<u32> = segment::segments(&path)
        .unwrap()
        .into_iter()
        .filter(|&n| std::fs::read(segment::segment_path(&path, n)).unwrap()[..4] != [0; 4])
        .collect();
    assert!(
        begun.len() >= 3,
        "8,000 records of ~500 bytes fill 1 + 2 MiB: {begun:?}"
    );
    let report = verify(&path, &key.verifying_key()).unwrap();
    assert_eq!((report.problem, report.records), (None, 8_000));
    assert_eq!(records(&path).unwrap().len(), 8_000);
    // A citizen whose access is in a later segment finds it through the
    // index.
    let list = idp_list(&path);
    let pid: Pid = format!("{:012}", 1_089_000_000u64 + 3 * 10_000 + 19 * 100 + 99)
        .parse()
        .unwrap();
    let page = list.list("idp", pid, 10, None).unwrap();
    assert_eq!(page.accesses.len(), 1);
    assert_eq!(page.accesses[0].0.operation, "verify_batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_sees_accesses_newest_first_and_confidential_ones_only_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
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
    assert_eq!(index_value(&path, "SELECT through FROM indexed"), 7);
    assert_eq!(pages(), expected);
    assert!(matches!(
        list.list("bank", pid, 2, None),
        Err(Error::RoleNotPermitted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_pages_through_accesses_across_index_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let key = Arc::new(SigningKey::ephemeral());
    let me = "001089000001";
    // 1,000 records over 16 runs (64 records each in unit tests); every
    // 37th is an access to `me`, so some runs hold none of them.
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    for i in 1..=1_000u64 {
        let pid = if i % 37 == 0 { me } else { "001089000002" };
        log.append(vec![entry(pid, "verify_identity", None)])
            .await
            .unwrap();
    }
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let list = idp_list(&path);
    let pid: Pid = me.parse().unwrap();
    let all_pages = || all_pages(&list, pid, 5);
    let expected: Vec<u64> = (1..=1_000u64).rev().filter(|i| i % 37 == 0).collect();
    assert_eq!(all_pages(), expected, "every access, newest first, once");
    // An index of an earlier build is rebuilt from the log at open.
    Connection::open(index_path(&path))
        .unwrap()
        .execute_batch("PRAGMA user_version = 1; DELETE FROM audit_pid;")
        .unwrap();
    let (log, writer) = AuditLog::open(&path, key).unwrap();
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    assert_eq!(index_value(&path, "PRAGMA user_version"), 3);
    assert_eq!(all_pages(), expected, "the same accesses after the rebuild");
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
    assert_eq!(index_value(&path, "SELECT count(*) FROM audit_pid"), 40);
}

/// Every access to `pid` that `list` gives, in pages of `size`: their seqs.
fn all_pages(list: &AccessList, pid: Pid, size: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut next = None;
    loop {
        let page = list.list("idp", pid, size, next).unwrap();
        seqs.extend(page.accesses.iter().map(|(a, _)| a.seq));
        match page.next {
            Some(n) => next = Some(n),
            None => return seqs,
        }
    }
}

/// `ListAccesses` over the log in `path`, for an identity provider `idp`.
fn idp_list(path: &Path) -> AccessList {
    let policy = LivePolicy::new(
        Policy::parse("[agencies.idp]\nname = \"IdP\"\nroles = [\"identity_provider\"]\n").unwrap(),
    );
    AccessList::new(policy, path)
}

/// The one value `sql` reads from the citizen index of the log in `path`.
fn index_value(path: &Path, sql: &str) -> i64 {
    Connection::open(index_path(path))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

mod levels;
mod recovery;
