//! The audit log through the real gateway: every request — granted, refused,
//! a batch as one record naming each claim — is recorded and chained; the citizen sees
//! exactly the accesses made; `lienthong audit verify` finds tampering.

use std::path::Path;
use std::time::Duration;

use lienthong_gateway::audit::{AuditRecord, Decision, records, verify};
use lienthong_gateway::signing::SigningKey;
use lienthong_proto::v1;
use rusqlite::Connection;
use tonic::Code;

use crate::registry::move_to;
use crate::support::{BIN, LOG_END, TestGateway, reason, spawn_serve_logged, wait_for};

fn verify_request(purpose: &str, pid: &str) -> v1::VerifyIdentityRequest {
    v1::VerifyIdentityRequest {
        purpose: purpose.into(),
        claim: Some(v1::IdentityClaim {
            reference: "r".into(),
            pid: pid.into(),
            ..Default::default()
        }),
        r#match: None,
    }
}

fn get(purpose: &str, pid: &str, fields: &[v1::CitizenField]) -> v1::GetCitizenRequest {
    v1::GetCitizenRequest {
        purpose: purpose.into(),
        pid: pid.into(),
        fields: fields.iter().map(|f| *f as i32).collect(),
        consent_token: String::new(),
    }
}

/// Every access `ListAccesses` gives for `pid`, following the pages.
async fn all_accesses(gw: &TestGateway, pid: &str) -> Vec<v1::Access> {
    let mut idp = gw.citizen("idp").await;
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = idp
            .list_accesses(v1::ListAccessesRequest {
                citizen_pid: pid.into(),
                page_size: 2,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.accesses.len() <= 2);
        all.extend(page.accesses);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn every_request_is_recorded_and_the_citizen_sees_exactly_the_accesses_made() {
    use v1::CitizenField::{FullName, Religion};
    let gw = TestGateway::start().await;
    let me = format!("{:012}", gw.find(|c| c.died_on == 0).pid);
    let someone = format!(
        "{:012}",
        gw.find(|c| c.pid != me.parse::<u64>().unwrap()).pid
    );

    gw.client("bank")
        .await
        .verify_identity(verify_request("KYC_ONBOARDING", &me))
        .await
        .unwrap();
    let mut clinic = gw.client("clinic").await;
    clinic
        .get_citizen(get("HEALTH_INSURANCE_CHECK", &me, &[FullName]))
        .await
        .unwrap();
    let refused = clinic
        .get_citizen(get("HEALTH_INSURANCE_CHECK", &me, &[FullName, Religion]))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "FIELD_NOT_PERMITTED");
    // A batch: three claims, one about me and one malformed.
    let claim = |reference: &str, pid: &str| v1::IdentityClaim {
        reference: reference.into(),
        pid: pid.into(),
        ..Default::default()
    };
    use tokio_stream::StreamExt;
    let mut answers = gw
        .client("telco")
        .await
        .verify_batch(tokio_stream::iter(vec![v1::VerifyBatchRequest {
            batch_id: "b1".into(),
            purpose: "SUBSCRIBER_VERIFICATION".into(),
            r#match: None,
            claims: vec![claim("x", &someone), claim("mine", &me), claim("bad", "12")],
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.next().await.unwrap().unwrap().results.len(), 3);
    // A confidential investigation: recorded, hidden from the citizen.
    gw.client("investigator")
        .await
        .get_citizen(get("CRIMINAL_INVESTIGATION", &me, &[FullName]))
        .await
        .unwrap();
    gw.registry("police")
        .await
        .change_residence(move_to("move-1".into(), me.parse().unwrap(), 7))
        .await
        .unwrap();
    // Someone else's access, and a purpose the bank does not have.
    gw.client("bank")
        .await
        .verify_identity(verify_request("KYC_ONBOARDING", &someone))
        .await
        .unwrap();
    let s = gw
        .client("bank")
        .await
        .verify_identity(verify_request("MARKETING", &me))
        .await
        .unwrap_err();
    assert_eq!(reason(&s), "PURPOSE_NOT_PERMITTED");

    let seen: Vec<(String, String, String, i32, String)> = all_accesses(&gw, &me)
        .await
        .into_iter()
        .map(|a| (a.agency, a.operation, a.purpose, a.decision, a.outcome))
        .collect();
    let granted = v1::AccessDecision::Granted as i32;
    let refused = v1::AccessDecision::Refused as i32;
    let row = |agency: &str, op: &str, purpose: &str, decision, outcome: &str| {
        (
            agency.to_owned(),
            op.to_owned(),
            purpose.to_owned(),
            decision,
            outcome.to_owned(),
        )
    };
    assert_eq!(
        seen,
        [
            row(
                "bank",
                "verify_identity",
                "MARKETING",
                refused,
                "PURPOSE_NOT_PERMITTED"
            ),
            row("police", "change_residence", "", granted, "OK"),
            row(
                "telco",
                "verify_batch",
                "SUBSCRIBER_VERIFICATION",
                granted,
                "OK"
            ),
            row(
                "clinic",
                "get_citizen",
                "HEALTH_INSURANCE_CHECK",
                refused,
                "FIELD_NOT_PERMITTED"
            ),
            row(
                "clinic",
                "get_citizen",
                "HEALTH_INSURANCE_CHECK",
                granted,
                "OK"
            ),
            row("bank", "verify_identity", "KYC_ONBOARDING", granted, "OK"),
        ],
        "newest first, the investigation hidden, nobody else's"
    );
    // The log itself holds all of it, the hidden access and the batch's
    // malformed record too, and its chain verifies.
    let log = records(&gw.audit_path()).unwrap();
    let count = |keep: &dyn Fn(&AuditRecord) -> bool| log.iter().filter(|r| keep(r)).count();
    // The batch is one record: each claim's Pid and outcome, in order.
    let batch: Vec<&AuditRecord> = log
        .iter()
        .filter(|r| r.entry.operation == "verify_batch")
        .collect();
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].entry.claims(),
        [
            (someone.as_str(), "OK"),
            (me.as_str(), "OK"),
            ("-", "PID_MALFORMED")
        ]
    );
    assert_eq!(
        count(&|r| r.entry.agency == "investigator"
            && r.entry.hidden_until.as_ref().is_some_and(|h| *h > r.time)),
        1
    );
    assert_eq!(count(&|r| r.entry.decision == Decision::Refused), 2);
    assert_eq!(count(&|r| r.entry.operation == "list_accesses"), 3);
    let key = SigningKey::load(&gw.audit_path().with_file_name("keys/signing.pk8")).unwrap();
    let report = verify(&gw.audit_path(), &key.verifying_key()).unwrap();
    assert_eq!(report.problem, None);
    assert!(report.records >= 9, "{report:?}");

    // Only the identity provider lists accesses.
    let s = gw
        .citizen("bank")
        .await
        .list_accesses(v1::ListAccessesRequest {
            citizen_pid: me.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::PermissionDenied, "ROLE_NOT_PERMITTED")
    );
}

#[tokio::test]
async fn limits_refuse_with_their_reasons_and_the_refusals_are_audited() {
    let gw = TestGateway::start().await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let mut rationed = gw.client("rationed").await;
    for _ in 0..2 {
        rationed
            .verify_identity(verify_request("KYC_ONBOARDING", &me))
            .await
            .unwrap();
    }
    let s = rationed
        .verify_identity(verify_request("KYC_ONBOARDING", &me))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::ResourceExhausted, "QUOTA_EXCEEDED")
    );
    use tonic_types::StatusExt;
    let retry = s
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(86_400),
        "{retry:?}"
    );
    let refusals = records(&gw.audit_path())
        .unwrap()
        .into_iter()
        .filter(|r| {
            let e = &r.entry;
            e.agency == "rationed"
                && e.decision == Decision::Refused
                && e.outcome == "QUOTA_EXCEEDED"
                && e.operation == "verify_identity"
        })
        .count();
    assert_eq!(refusals, 1);
}

#[tokio::test]
async fn each_claim_of_a_batch_counts_against_the_daily_quota() {
    let gw = TestGateway::start().await;
    let me = format!("{:012}", gw.find(|_| true).pid);
    let batch = |id: &str| v1::VerifyBatchRequest {
        batch_id: id.into(),
        purpose: "KYC_ONBOARDING".into(),
        claims: (0..3)
            .map(|i| {
                verify_request("", &me)
                    .claim
                    .map(|mut c| {
                        c.reference = format!("{id}-{i}");
                        c
                    })
                    .unwrap()
            })
            .collect(),
        ..Default::default()
    };
    // Quota 5: the stream is one request, the first batch three more; the
    // second batch's three would make seven.
    let mut answers = gw
        .client("rationed-batch")
        .await
        .verify_batch(tokio_stream::iter(vec![batch("first"), batch("second")]))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert_eq!(first.results.len(), 3);
    let s = answers.message().await.unwrap_err();
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::ResourceExhausted, "QUOTA_EXCEEDED")
    );
    // One record a batch, naming each of its claims.
    let mut outcomes: Vec<(String, Vec<(String, String)>)> = records(&gw.audit_path())
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.agency == "rationed-batch")
        .map(|r| {
            let claims = r
                .entry
                .claims()
                .into_iter()
                .map(|(pid, outcome)| (pid.to_owned(), outcome.to_owned()))
                .collect();
            (r.entry.request_id, claims)
        })
        .collect();
    outcomes.sort();
    let each = |outcome: &str| vec![(me.clone(), outcome.to_owned()); 3];
    // Two batches are verified at once, so their records may come in
    // either order.
    assert_eq!(
        outcomes,
        [
            ("first".to_owned(), each("OK")),
            ("second".to_owned(), each("QUOTA_EXCEEDED"))
        ],
        "every claim is in the log"
    );
}

/// The frames of the first segment of the audit log in `dir`, each whole,
/// and the segment's size. As `audit/segment.rs` draws them:
///
/// ```text
/// frame = u32be(n) ‖ body[n]    (n = 0: no more frames)
/// body  = kind (1 record, 2 checkpoint) ‖ u64be(seq) ‖ …
/// ```
fn segment_frames(dir: &Path) -> (Vec<Vec<u8>>, usize) {
    let bytes = std::fs::read(dir.join("00000001.seg")).unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if n == 0 {
            return (frames, bytes.len());
        }
        frames.push(bytes[at..at + 4 + n].to_vec());
        at += 4 + n;
    }
}

/// The first segment rewritten to hold `frames`, then zeros up to `size`.
fn write_segment(dir: &Path, frames: &[Vec<u8>], size: usize) {
    let mut bytes = frames.concat();
    bytes.resize(size, 0);
    std::fs::write(dir.join("00000001.seg"), bytes).unwrap();
}

/// A change to a segment's frames.
type Edit<'a> = dyn Fn(&mut Vec<Vec<u8>>) + 'a;

/// A frame's kind and record number.
fn frame_of(frame: &[u8]) -> (u8, u64) {
    (
        frame[4],
        u64::from_be_bytes(frame[5..13].try_into().unwrap()),
    )
}

/// Runs `lienthong audit verify` on `data`: its exit success and output.
fn audit_verify(data: &Path) -> (bool, String) {
    audit_verify_with(data, &[])
}

/// [`audit_verify`] with `extra` arguments.
fn audit_verify_with(data: &Path, extra: &[&str]) -> (bool, String) {
    let out = crate::support::output_within(
        std::process::Command::new(BIN)
            .args(["audit", "verify", "--data-dir", data.to_str().unwrap()])
            .args(extra),
        std::time::Duration::from_secs(300),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn audit_verify_finds_an_edit_a_removal_a_reordering_and_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut serving, addr, log) = spawn_serve_logged(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "3000",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
    ])
    .await;
    let sample = std::fs::read_to_string(data.join("sample.jsonl")).unwrap();
    let pki = lienthong_gateway::tls::PkiLayout::under(&data);
    let mut bank = v1::exchange_service_client::ExchangeServiceClient::new(
        crate::support::connect_as(addr, &pki, "vietcombank").await,
    );
    for line in sample.lines().take(30) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        bank.verify_identity(verify_request(
            "KYC_ONBOARDING",
            record["pid"].as_str().unwrap(),
        ))
        .await
        .unwrap();
    }
    bank.verify_identity(verify_request("MARKETING", "001089000001"))
        .await
        .unwrap_err();
    // A graceful stop signs the last checkpoint.
    assert!(
        crate::support::terminate(&mut serving, Duration::from_secs(30))
            .await
            .success()
    );
    wait_for(Duration::from_secs(5), "the log closes", || {
        log.lock().unwrap().last().map(String::as_str) == Some(LOG_END)
    })
    .await;

    let (ok, text) = audit_verify(&data);
    assert!(ok, "{text}");
    assert!(text.contains("audit log verified: 31 records"), "{text}");
    assert!(
        text.contains("the last checkpoint covers record 31\n"),
        "{text}"
    );

    // What the operator keeps off the machine.
    let kept: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("keep off the machine: "))
        .unwrap_or_else(|| panic!("{text}"))
        .split(' ')
        .map(str::to_owned)
        .collect();
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    assert_eq!(kept[0], "--checkpoint");
    assert!(kept[1].starts_with("31:"), "{kept:?}");
    assert!(audit_verify_with(&data, &kept).0);

    let audit = data.join("audit");
    let (pristine, size) = segment_frames(&audit);
    let at = |seq: u64| {
        pristine
            .iter()
            .position(|f| frame_of(f) == (1, seq))
            .unwrap()
    };
    let tampered = |edit: &Edit<'_>| {
        let mut frames = pristine.clone();
        edit(&mut frames);
        write_segment(&audit, &frames, size);
        audit_verify(&data)
    };
    let cases: [(&str, &Edit<'_>, &str); 4] = [
        (
            "an agency's name edited in record 12",
            &|f| {
                let frame = &mut f[at(12)];
                let i = frame.windows(11).position(|w| w == b"vietcombank").unwrap();
                frame[i + 10] = b'x';
            },
            "record 12 was edited",
        ),
        (
            "record 20 removed",
            &|f| {
                f.remove(at(20));
            },
            "record 20 was removed",
        ),
        (
            "records 5 and 6 swapped",
            &|f| f.swap(at(5), at(6)),
            "record 5 was moved",
        ),
        (
            "records from 29 on removed, checkpoints kept",
            &|f| f.retain(|f| frame_of(f).0 != 1 || frame_of(f).1 < 29),
            "the tail was cut: record 31 was recorded (a signed checkpoint, the citizen index or the anchor covers it) but the log ends at record 28",
        ),
    ];
    for (what, edit, expected) in cases {
        let (ok, text) = tampered(edit);
        assert!(!ok, "{what}: {text}");
        assert!(text.contains(expected), "{what}: {text}");
    }
    // The tail cut with its checkpoints (and the index, which would tell):
    // only what was kept off the machine finds it.
    let index = lienthong_gateway::audit::index_path(&audit);
    let pristine_index = std::fs::read(&index).unwrap();
    let (ok, text) = tampered(&|f| f.truncate(at(29)));
    std::fs::remove_file(&index).unwrap();
    let (ok_without_index, _) = audit_verify(&data);
    let (ok_anchored, anchored) = audit_verify_with(&data, &kept);
    assert!(!ok, "the index covers record 31: {text}");
    assert!(ok_without_index, "nothing in the file itself tells");
    assert!(!ok_anchored, "{anchored}");
    assert!(
        anchored.contains("record 31 was recorded") && anchored.contains("ends at record 28"),
        "{anchored}"
    );
    // Checked against the public key kept, a key swapped on the machine
    // (and every checkpoint re-signed with it) is found.
    write_segment(&audit, &pristine, size);
    std::fs::write(&index, &pristine_index).unwrap();
    let other = lienthong_gateway::signing::SigningKey::ephemeral().verifying_key();
    let (ok, text) = audit_verify_with(&data, &["--public-key", &other.to_string()]);
    assert!(
        !ok && text.contains("is not signed by this gateway's key"),
        "{text}"
    );
    write_segment(&audit, &pristine, size);
    // The citizen index: an access removed from it would hide it from the
    // citizen.
    Connection::open(&index)
        .unwrap()
        .execute_batch("DELETE FROM audit_pid WHERE seq = 7")
        .unwrap();
    let (ok, text) = audit_verify(&data);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the citizen index holds 30 entries where the log implies 31"),
        "{text}"
    );
    std::fs::write(&index, &pristine_index).unwrap();
    assert!(audit_verify(&data).0, "the untouched log verifies again");
}
