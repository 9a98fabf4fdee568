//! No personal field in the logs: the real binary at trace level, in both
//! log formats, a workload that carries Pids, names, dates and addresses in
//! both directions, and a search of everything it logged — its audit log
//! too. In JSON, every line parses and each call has its one line.

use std::time::Duration;

use lienthong_proto::v1::{
    self, citizen_service_client::CitizenServiceClient,
    exchange_service_client::ExchangeServiceClient, registry_service_client::RegistryServiceClient,
};

use crate::support::{LOG_END, connect_as, id_of, in_secs, serve_args, spawn_serve_with, wait_for};

/// What a workload left behind.
struct Traces {
    /// Every log line, in order.
    lines: Vec<String>,
    /// The id of every call made, as its answer carried it.
    ids: Vec<String>,
    /// The personal values the calls carried.
    secrets: Vec<String>,
    /// The Pid they were about.
    pid: String,
    /// The audit log's bytes.
    audit: String,
}

/// Runs the workload against the real binary at trace level with
/// `LIENTHONG_LOG_FORMAT=format`, stops it cleanly, and returns its traces.
async fn workload(format: &str) -> Traces {
    let dir = tempfile::tempdir().unwrap();
    let data_s = dir.path().to_str().unwrap();
    let exchange = crate::amqp::unique("lienthong.events.test");
    let (mut child, addr, log) = spawn_serve_with(
        &serve_args(data_s, &["--events-exchange", &exchange]),
        &[("LIENTHONG_LOG", "trace"), ("LIENTHONG_LOG_FORMAT", format)],
    )
    .await;
    let mut ids = Vec::new();
    // A living citizen, so that every write below is carried out.
    let sample: serde_json::Value = std::fs::read_to_string(dir.path().join("sample.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["status"] == "alive")
        .unwrap();
    let pid = sample["pid"].as_str().unwrap().to_owned();
    let name = sample["full_name"].as_str().unwrap().to_owned();
    let dob = sample["date_of_birth"].as_str().unwrap().to_owned();
    let d: Vec<i32> = dob.split('-').map(|p| p.parse().unwrap()).collect();
    let pki = lienthong_gateway::tls::PkiLayout::under(dir.path());
    let channel = |agency: &'static str| connect_as(addr, &pki, agency);
    let new_name = "Lê Thị Bảo Mật";
    let address = "99 Đường Riêng Tư, Phường Kín";
    let wrong_name = "Nguyễn Văn Saitên";

    let mut bank = ExchangeServiceClient::new(channel("vietcombank").await);
    for claimed in [name.as_str(), wrong_name] {
        let answer = bank
            .verify_identity(v1::VerifyIdentityRequest {
                purpose: "KYC_ONBOARDING".into(),
                claim: Some(v1::IdentityClaim {
                    pid: pid.clone(),
                    full_name: Some(claimed.into()),
                    date_of_birth: Some(v1::Date {
                        year: d[0],
                        month: d[1],
                        day: d[2],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(id_of(answer.metadata()));
    }
    let mut clinic = ExchangeServiceClient::new(channel("clinic-bach-mai").await);
    let answer = clinic
        .get_citizen(v1::GetCitizenRequest {
            purpose: "HEALTH_INSURANCE_CHECK".into(),
            pid: pid.clone(),
            fields: vec![
                v1::CitizenField::FullName as i32,
                v1::CitizenField::DateOfBirth as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    ids.push(id_of(answer.metadata()));
    // Refused: a field not granted.
    let refused = clinic
        .get_citizen(v1::GetCitizenRequest {
            purpose: "HEALTH_INSURANCE_CHECK".into(),
            pid: pid.clone(),
            fields: vec![v1::CitizenField::PermanentResidence as i32],
            ..Default::default()
        })
        .await
        .unwrap_err();
    ids.push(id_of(refused.metadata()));
    let mut police = RegistryServiceClient::new(channel("residence-police").await);
    let answer = police
        .change_residence(crate::registry::move_to(
            "p-1".into(),
            pid.parse().unwrap(),
            99,
        ))
        .await
        .unwrap();
    ids.push(id_of(answer.metadata()));
    let answer = police
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "p-2".into(),
            pid: pid.clone(),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: crate::registry::residence("001", address),
        })
        .await
        .unwrap();
    ids.push(id_of(answer.metadata()));
    let mut civil = RegistryServiceClient::new(channel("civil-registry-hanoi").await);
    let answer = civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-1".into(),
            pid: pid.clone(),
            full_name: new_name.into(),
        })
        .await
        .unwrap();
    ids.push(id_of(answer.metadata()));
    // A request that fails validation with personal data in it.
    let refused = civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-2".into(),
            pid: "0010".into(),
            full_name: new_name.into(),
        })
        .await
        .unwrap_err();
    ids.push(id_of(refused.metadata()));

    // Consent: granted through the identity provider, used, listed.
    let mut idp = CitizenServiceClient::new(channel("vneid").await);
    let granted = idp
        .grant_consent(v1::GrantConsentRequest {
            citizen_pid: pid.clone(),
            agency: "vietcombank".into(),
            purpose: "CREDIT_APPLICATION".into(),
            fields: vec![v1::CitizenField::CurrentResidence as i32],
            expires_at: in_secs(30 * 86_400),
        })
        .await
        .unwrap();
    ids.push(id_of(granted.metadata()));
    let token = granted.into_inner().token;
    let answer = bank
        .get_citizen(v1::GetCitizenRequest {
            purpose: "CREDIT_APPLICATION".into(),
            pid: pid.clone(),
            fields: vec![
                v1::CitizenField::FullName as i32,
                v1::CitizenField::DateOfBirth as i32,
                v1::CitizenField::CurrentResidence as i32,
            ],
            consent_token: token,
        })
        .await
        .unwrap();
    ids.push(id_of(answer.metadata()));
    let listed = idp
        .list_accesses(v1::ListAccessesRequest {
            citizen_pid: pid.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    ids.push(id_of(listed.metadata()));
    let accesses = listed.into_inner().accesses;
    assert!(accesses.len() >= 8, "{accesses:?}");

    // Stop cleanly so the shutdown path logs too.
    crate::support::terminate(&mut child, Duration::from_secs(30)).await;
    // Everything it wrote, up to the end of its log.
    wait_for(Duration::from_secs(30), "the end of the log", || {
        log.lock().unwrap().last().map(String::as_str) == Some(LOG_END)
    })
    .await;
    let lines = log.lock().unwrap().clone();
    assert!(
        lines.len() > 20,
        "trace logging is on: {} lines",
        lines.len()
    );
    let mut audit = Vec::new();
    for file in std::fs::read_dir(dir.path().join("audit")).unwrap() {
        audit.extend(std::fs::read(file.unwrap().path()).unwrap());
    }
    crate::amqp::delete_exchange(&exchange).await;
    Traces {
        lines,
        ids,
        secrets: [
            name,
            wrong_name.into(),
            new_name.into(),
            address.into(),
            dob,
        ]
        .into_iter()
        .collect(),
        pid,
        audit: String::from_utf8_lossy(&audit).into_owned(),
    }
}

/// Asserts that no log line holds the workload's Pid or any of its
/// personal values (with or without diacritics), and that the audit log
/// names the citizen by Pid and holds none of the values.
fn assert_private(traces: &Traces) {
    let folded = |s: &str| lienthong_proto::name::fold_diacritics(s);
    // The Pid as text and as the number it is (no leading zeros); each date
    // also as the yyyymmdd number the record stores.
    let number = traces.pid.trim_start_matches('0').to_owned();
    let compact: Vec<String> = traces
        .secrets
        .iter()
        .filter(|s| s.len() == 10 && s.as_bytes()[4] == b'-')
        .map(|d| d.replace('-', ""))
        .collect();
    assert!(!compact.is_empty(), "the workload carries a date of birth");
    for line in &traces.lines {
        assert!(
            !line.contains(&traces.pid) && !line.contains(&number),
            "the Pid is in the log: {line}"
        );
        for date in &compact {
            assert!(
                !line.contains(date.as_str()),
                "{date} is in the log: {line}"
            );
        }
        for secret in &traces.secrets {
            assert!(
                !line.contains(secret.as_str()),
                "{secret:?} is in the log: {line}"
            );
            assert!(
                !folded(line).contains(&folded(secret)),
                "{secret:?} (without diacritics) is in the log: {line}"
            );
        }
    }
    assert!(
        traces.audit.contains(&traces.pid),
        "the audit names the citizen by Pid"
    );
    for secret in &traces.secrets {
        assert!(
            !traces.audit.contains(secret.as_str()),
            "{secret:?} is in the audit log"
        );
    }
}

#[tokio::test]
async fn a_workload_logs_no_pid_name_date_or_address() {
    let traces = workload("text").await;
    assert!(
        traces.lines.iter().any(|l| l.contains("listen=")),
        "the text format"
    );
    assert_private(&traces);
}

#[tokio::test]
async fn in_json_every_line_parses_each_call_has_one_line_and_nothing_personal() {
    let traces = workload("json").await;
    assert_private(&traces);
    let mut per_call = std::collections::BTreeMap::<String, Vec<serde_json::Value>>::new();
    for line in traces.lines.iter().filter(|l| *l != LOG_END) {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            json["level"].is_string() && json["timestamp"].is_string(),
            "{line}"
        );
        if let Some(id) = json["fields"]["request_id"].as_str() {
            per_call
                .entry(id.to_owned())
                .or_default()
                .push(json["fields"].clone());
        }
    }
    assert_eq!(traces.ids.len(), 11, "the workload's calls");
    for id in &traces.ids {
        let lines = per_call.get(id).map_or(&[][..], Vec::as_slice);
        assert_eq!(lines.len(), 1, "call {id}: {lines:#?}");
        let fields = &lines[0];
        for key in ["agency", "operation", "outcome"] {
            assert!(
                fields[key].as_str().is_some_and(|v| !v.is_empty()),
                "call {id} has no {key}: {fields}"
            );
        }
        assert!(
            fields["ms"].is_f64(),
            "call {id} has no milliseconds: {fields}"
        );
        assert_eq!(fields["message"], "request", "{fields}");
    }
    // The refusals are logged with their reasons.
    let outcomes: Vec<&str> = traces
        .ids
        .iter()
        .map(|id| per_call[id][0]["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"FIELD_NOT_PERMITTED"), "{outcomes:?}");
    assert!(outcomes.contains(&"PID_MALFORMED"), "{outcomes:?}");
}
