//! What the log does at start and when it cannot go on: a cut end is set
//! aside, damage or an edit before whole records (or after the last
//! checkpoint, in any segment) stops the start with the log left as found,
//! a failing disk refuses later records and keeps the earlier ones, and a
//! log in use is refused to a second opener.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_short_is_set_aside_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 20).await;
    let whole = frames(&path);
    // A crash in the middle of a group: the frame's first bytes on disk,
    // the rest still zeros.
    let mut next = whole.clone();
    let mut cut = encoded(&AuditRecord::chain(
        21,
        "t".into(),
        entry("001089000001", "verify_identity", None),
        [0; 32],
    ));
    cut.truncate(cut.len() / 2);
    next.push(cut.clone());
    rewrite(&path, &next);
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let last = log
        .append(vec![entry("001089000002", "get_citizen", None)])
        .await
        .unwrap();
    assert_eq!(last, 21, "the chain goes on after the last whole record");
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let report = verify(&path, &key.verifying_key()).unwrap();
    assert_eq!((report.problem.clone(), report.records), (None, 21));
    assert_eq!(report.set_aside.len(), 1, "{report:?}");
    assert_eq!(std::fs::read(&report.set_aside[0]).unwrap(), cut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_go_on_refuses_every_later_record_and_keeps_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    std::fs::create_dir_all(&path).unwrap();
    // Segment 2 cannot be prepared, ahead or when it is needed.
    std::fs::create_dir(segment::segment_path(&path, 2).with_extension("seg.tmp")).unwrap();
    let key = Arc::new(SigningKey::ephemeral());
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let batch = |n: u64| -> Vec<AuditEntry> {
        (0..100u64)
            .map(|i| {
                let mut e = entry(
                    &format!("{:012}", 1_089_000_000 + n * 100 + i),
                    "verify_batch",
                    None,
                );
                e.request_id = "x".repeat(300);
                e
            })
            .collect()
    };
    // Batches of ~40 KiB fill the first segment (1 MiB) within 30.
    let mut appended = 0u64;
    let failed = loop {
        assert!(appended < 30 * 100, "the first segment never filled");
        match log.append(batch(appended / 100)).await {
            Ok(last) => appended = last,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&failed, Error::Audit(m) if m.contains("00000002.seg.tmp")),
        "{failed}"
    );
    // Every later record is refused, saying why.
    let later = log.append(batch(99)).await.unwrap_err();
    assert!(
        matches!(&later, Error::Audit(m) if m.contains("stopped after a failed write")),
        "{later}"
    );
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    // What was acked is there and verifies, and nothing of the refused
    // batch (its first records would have fitted in segment 1).
    let report = verify(&path, &key.verifying_key()).unwrap();
    assert_eq!((report.problem, report.records), (None, appended));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_or_an_edit_before_whole_records_stops_the_start_and_is_left_as_found() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 20).await;
    let pristine = frames(&path);
    let segment = segment::segment_path(&path, 1);
    let index_of = |seq: u64| {
        pristine
            .iter()
            .position(|f| record_of(f).is_some_and(|r| r.seq == seq))
            .unwrap()
    };
    let refuses = |what: &str| {
        let found = std::fs::read(&segment).unwrap();
        let e = match AuditLog::open(&path, key.clone()) {
            Ok(_) => panic!("{what}: the log opened"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            std::fs::read(&segment).unwrap(),
            found,
            "{what}: left as found"
        );
        let aside = std::fs::read_dir(&path)
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("torn-")
            })
            .count();
        assert_eq!(aside, 0, "{what}: nothing set aside");
        e
    };

    // A flipped byte in record 10, with whole records after it.
    let mut damaged = pristine.clone();
    let f = &mut damaged[index_of(10)];
    let middle = f.len() / 2;
    f[middle] ^= 0x40;
    rewrite(&path, &damaged);
    let e = refuses("a damaged record");
    assert!(
        e.contains("does not read, yet a whole record follows"),
        "{e}"
    );

    // Record 15 replaced by one whose own hash is right but which does not
    // follow record 14.
    let mut edited = pristine.clone();
    let r = record_of(&edited[index_of(15)]).unwrap();
    edited[index_of(15)] = encoded(&AuditRecord::chain(15, r.time, r.entry, [7; 32]));
    rewrite(&path, &edited);
    let e = refuses("an edited record");
    assert!(
        e.contains("record 15") && e.contains("does not follow record 14"),
        "{e}"
    );

    // Put back, the log opens and goes on.
    rewrite(&path, &pristine);
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_after_the_last_checkpoint_stops_the_start_though_a_newer_segment_began() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = written_log(dir.path(), 20).await;
    // Segment 1 holds records 1–20 and no checkpoint (the gateway stopped
    // before signing one); segment 2 goes on from record 20 with 21–25, no
    // checkpoint either: the last checkpoint is none, so the chain is
    // checked from the start, not only in the newest segment.
    let records: Vec<AuditRecord> = frames(&path).iter().filter_map(|f| record_of(f)).collect();
    assert_eq!(records.len(), 20);
    let pristine: Vec<Vec<u8>> = records.iter().map(encoded).collect();
    let mut prev = records[19].hash;
    let mut next = Vec::new();
    for seq in 21..=25 {
        let r = AuditRecord::chain(
            seq,
            records[19].time.clone(),
            entry("001089000099", "verify_identity", None),
            prev,
        );
        prev = r.hash;
        next.extend(encoded(&r));
    }
    next.resize(segment::segment_size(2) as usize, 0);
    std::fs::write(segment::segment_path(&path, 2), &next).unwrap();
    let first = segment::segment_path(&path, 1);
    let refuses = |what: &str| {
        let found = std::fs::read(&first).unwrap();
        let e = match AuditLog::open(&path, key.clone()) {
            Ok(_) => panic!("{what}: the log opened"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            std::fs::read(&first).unwrap(),
            found,
            "{what}: left as found"
        );
        e
    };

    // Record 18 replaced by one whose own hash is right but which does not
    // follow record 17.
    let mut edited = pristine.clone();
    let r = &records[17];
    edited[17] = encoded(&AuditRecord::chain(
        18,
        r.time.clone(),
        r.entry.clone(),
        [7; 32],
    ));
    rewrite(&path, &edited);
    let e = refuses("an edited record in an earlier segment");
    assert!(
        e.contains("record 18") && e.contains("does not follow record 17"),
        "{e}"
    );

    // A flipped byte in record 19.
    let mut damaged = pristine.clone();
    let middle = damaged[18].len() / 2;
    damaged[18][middle] ^= 0x40;
    rewrite(&path, &damaged);
    let e = refuses("a damaged record in an earlier segment");
    assert!(
        e.contains("00000001.seg") && e.contains("the log goes on in a later segment"),
        "{e}"
    );

    // Put back, the log opens and goes on after record 25.
    rewrite(&path, &pristine);
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let seq = log
        .append(vec![entry("001089000100", "verify_identity", None)])
        .await
        .unwrap();
    assert_eq!(seq, 26);
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_use_is_refused_to_a_second_opener_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit");
    let key = Arc::new(SigningKey::ephemeral());
    let (log, writer) = AuditLog::open(&path, key.clone()).unwrap();
    let e = match AuditLog::open(&path, key.clone()) {
        Ok(_) => panic!("a second opener took the log"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("lock") && e.contains("in use"), "{e}");
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
    let (log, writer) = AuditLog::open(&path, key).unwrap();
    drop(log);
    assert!(writer.close(Duration::from_secs(10)).await);
}
