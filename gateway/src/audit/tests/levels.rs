//! The citizen index's runs merged in levels (64 records to a level-0 run
//! and 50 rows to a step in unit tests): a citizen's pages are the same
//! before, during and after every merge step; once merges have caught up,
//! each level holds fewer than `FANOUT` closed runs; `audit verify` checks
//! the merged index.

use super::*;
use crate::audit::levels::{FANOUT, compact_step};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_merge_in_levels_and_pages_stay_right_throughout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let key = Arc::new(SigningKey::ephemeral());
    let me = "001089000001";
    // 5,000 records over 79 level-0 runs; every 37th an access to `me`.
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    for group in 0..500u64 {
        let entries = (1..=10)
            .map(|i| {
                let seq = group * 10 + i;
                let pid = if seq % 37 == 0 { me } else { "001089000002" };
                entry(pid, "verify_identity", None)
            })
            .collect();
        log.append(entries).await.unwrap();
    }
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let list = idp_list(&path);
    let pid: Pid = me.parse().unwrap();
    let all_pages = || all_pages(&list, pid, 7);
    let expected: Vec<u64> = (1..=5_000u64).rev().filter(|i| i % 37 == 0).collect();
    assert_eq!(all_pages(), expected);

    // The merges the indexer had not finished, a step at a time, with the
    // pages read between steps.
    let mut conn = Connection::open(index_path(&path)).unwrap();
    let mut steps = 0;
    while compact_step(&mut conn).unwrap() {
        steps += 1;
        assert_eq!(all_pages(), expected, "after step {steps}");
    }
    let per_level: Vec<(i64, i64)> = conn
        .prepare("SELECT level, count(*) FROM audit_run WHERE state = 'live' GROUP BY level")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    // 79 runs of 64: one of level 2 (64 runs), one of level 1 (8), and six
    // closed ones of level 0 beside the open one.
    assert_eq!(per_level, [(0, 7), (1, 1), (2, 1)]);
    assert!(
        per_level
            .iter()
            .all(|&(level, n)| n < FANOUT + i64::from(level == 0))
    );
    assert_eq!(
        index_value(
            &path,
            "SELECT count(*) FROM audit_run WHERE state <> 'live'"
        ),
        0
    );
    assert_eq!(index_value(&path, "SELECT count(*) FROM audit_pid"), 5_000);
    assert_eq!(problem(&path, &key), None);
    // A run hidden from readers is an incomplete index.
    conn.execute_batch("UPDATE audit_run SET state = 'retired' WHERE level = 1")
        .unwrap();
    assert!(matches!(
        problem(&path, &key),
        Some(Problem::IndexIncomplete { .. })
    ));
}
