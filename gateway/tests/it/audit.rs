//! The audit log through the real gateway: every request — granted, refused,
//! each record of a batch — is recorded and chained; the citizen sees
//! exactly the accesses made; `lienthong audit verify` finds tampering.

use std::path::Path;
use std::time::Duration;

use lienthong_gateway::audit::verify;
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
    // A batch: three records, one about me and one malformed.
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
    let log = Connection::open(gw.audit_path()).unwrap();
    let count = |sql: &str| -> i64 { log.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM audit WHERE operation = 'verify_batch'"),
        3
    );
    assert_eq!(
        count("SELECT count(*) FROM audit WHERE agency = 'investigator' AND hidden_until > time"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM audit WHERE decision = 'refused'"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM audit WHERE operation = 'list_accesses'"),
        3
    );
    let key = SigningKey::load(&gw.audit_path().with_file_name("keys/signing.pk8")).unwrap();
    let report = verify(&gw.audit_path(), &key.verifying_key()).unwrap();
    assert_eq!(report.problem, None);
    assert!(report.records >= 11, "{report:?}");

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
    let log = Connection::open(gw.audit_path()).unwrap();
    let refusals: i64 = log
        .query_row(
            "SELECT count(*) FROM audit WHERE agency = 'rationed' AND decision = 'refused'
             AND outcome = 'QUOTA_EXCEEDED' AND operation = 'verify_identity'",
            [],
            |r| r.get(0),
        )
        .unwrap();
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
    let log = Connection::open(gw.audit_path()).unwrap();
    let outcomes: Vec<(String, String)> = log
        .prepare(
            "SELECT request_id, outcome FROM audit WHERE agency = 'rationed-batch'
             ORDER BY request_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(String, String)> = [
        ("first-0", "OK"),
        ("first-1", "OK"),
        ("first-2", "OK"),
        ("second-0", "QUOTA_EXCEEDED"),
        ("second-1", "QUOTA_EXCEEDED"),
        ("second-2", "QUOTA_EXCEEDED"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    // Two batches are verified at once, so their records may interleave.
    assert_eq!(outcomes, expected, "every claim is in the log");
}

/// Runs `lienthong audit verify` on `data`: its exit success and output.
fn audit_verify(data: &Path) -> (bool, String) {
    audit_verify_with(data, &[])
}

/// [`audit_verify`] with `extra` arguments.
fn audit_verify_with(data: &Path, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify", "--data-dir", data.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
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

    let audit = data.join("audit.db");
    let pristine = std::fs::read(&audit).unwrap();
    let tampered = |sql: &str| {
        std::fs::write(&audit, &pristine).unwrap();
        Connection::open(&audit)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        audit_verify(&data)
    };
    for (sql, expected) in [
        (
            "UPDATE audit SET agency = 'someone-else' WHERE seq = 12",
            "record 12 was edited",
        ),
        ("DELETE FROM audit WHERE seq = 20", "record 20 was removed"),
        (
            "UPDATE audit SET seq = -1 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = 6;
             UPDATE audit SET seq = 6 WHERE seq = -1;",
            "record 5 was edited or moved",
        ),
        (
            "DELETE FROM audit WHERE seq >= 29",
            "the tail was cut: record 31 was recorded (a signed checkpoint, the citizen index or the anchor covers it) but the log ends at record 28",
        ),
    ] {
        let (ok, text) = tampered(sql);
        assert!(!ok, "{sql}: {text}");
        assert!(text.contains(expected), "{sql}: {text}");
    }
    // The tail cut with its checkpoints (and the index, which would tell):
    // only what was kept off the machine finds it.
    let index = lienthong_gateway::audit::index_path(&audit);
    let pristine_index = std::fs::read(&index).unwrap();
    let (ok, text) = tampered("DELETE FROM audit WHERE seq >= 29; DELETE FROM checkpoint;");
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
    std::fs::write(&audit, &pristine).unwrap();
    std::fs::write(&index, &pristine_index).unwrap();
    let other = lienthong_gateway::signing::SigningKey::ephemeral().verifying_key();
    let (ok, text) = audit_verify_with(&data, &["--public-key", &other.to_string()]);
    assert!(
        !ok && text.contains("is not signed by this gateway's key"),
        "{text}"
    );
    std::fs::write(&audit, &pristine).unwrap();
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
