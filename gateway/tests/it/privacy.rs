//! No personal field in the logs: the real binary at trace level, a workload
//! that carries names, dates and addresses in both directions, and a search
//! of everything it logged — its audit log too.

use std::time::Duration;

use lienthong_proto::v1::{
    self, citizen_service_client::CitizenServiceClient,
    exchange_service_client::ExchangeServiceClient, registry_service_client::RegistryServiceClient,
};

use crate::support::{LOG_END, connect_as, in_secs, spawn_serve_at, wait_for};

#[tokio::test]
async fn a_workload_logs_no_name_date_or_address() {
    let _shared = crate::amqp::BROKER.read().await;
    let dir = tempfile::tempdir().unwrap();
    let data_s = dir.path().to_str().unwrap();
    let exchange = crate::amqp::unique("lienthong.events.test");
    let (mut child, addr, log) = spawn_serve_at(
        &[
            "serve",
            "--data-dir",
            data_s,
            "--listen",
            "127.0.0.1:0",
            "--citizens",
            "2000",
            "--events-exchange",
            &exchange,
        ],
        "trace",
    )
    .await;
    // Trace level everywhere, dependencies included.
    assert!(log.lock().unwrap().iter().any(|l| l.contains("listen=")));
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
        bank.verify_identity(v1::VerifyIdentityRequest {
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
    }
    let mut clinic = ExchangeServiceClient::new(channel("clinic-bach-mai").await);
    clinic
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
    // Refused: a field not granted.
    assert!(
        clinic
            .get_citizen(v1::GetCitizenRequest {
                purpose: "HEALTH_INSURANCE_CHECK".into(),
                pid: pid.clone(),
                fields: vec![v1::CitizenField::PermanentResidence as i32],
                ..Default::default()
            })
            .await
            .is_err()
    );
    let mut police = RegistryServiceClient::new(channel("residence-police").await);
    police
        .change_residence(crate::registry::move_to(
            "p-1".into(),
            pid.parse().unwrap(),
            99,
        ))
        .await
        .unwrap();
    police
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "p-2".into(),
            pid: pid.clone(),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: crate::registry::residence("001", address),
        })
        .await
        .unwrap();
    let mut civil = RegistryServiceClient::new(channel("civil-registry-hanoi").await);
    civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-1".into(),
            pid: pid.clone(),
            full_name: new_name.into(),
        })
        .await
        .unwrap();
    // A request that fails validation with personal data in it.
    let _ = civil
        .change_name(v1::ChangeNameRequest {
            request_id: "n-2".into(),
            pid: "0010".into(),
            full_name: new_name.into(),
        })
        .await;

    // Consent: granted through the identity provider, used, listed.
    let mut idp = CitizenServiceClient::new(channel("vneid").await);
    let token = idp
        .grant_consent(v1::GrantConsentRequest {
            citizen_pid: pid.clone(),
            agency: "vietcombank".into(),
            purpose: "CREDIT_APPLICATION".into(),
            fields: vec![v1::CitizenField::CurrentResidence as i32],
            expires_at: in_secs(30 * 86_400),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    bank.get_citizen(v1::GetCitizenRequest {
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
    let accesses = idp
        .list_accesses(v1::ListAccessesRequest {
            citizen_pid: pid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .accesses;
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
    let folded = |s: &str| lienthong_proto::name::fold_diacritics(s);
    for secret in [name.as_str(), wrong_name, new_name, address, dob.as_str()] {
        for line in &lines {
            assert!(!line.contains(secret), "{secret:?} is in the log: {line}");
            assert!(
                !folded(line).contains(&folded(secret)),
                "{secret:?} (without diacritics) is in the log: {line}"
            );
        }
    }
    // The audit log records Pids, agencies and outcomes; never the data.
    let mut audit = Vec::new();
    for file in std::fs::read_dir(dir.path().join("audit")).unwrap() {
        audit.extend(std::fs::read(file.unwrap().path()).unwrap());
    }
    let audit = String::from_utf8_lossy(&audit);
    assert!(audit.contains(&pid), "the audit names the citizen by Pid");
    for secret in [name.as_str(), wrong_name, new_name, address, dob.as_str()] {
        assert!(!audit.contains(secret), "{secret:?} is in the audit log");
    }
    crate::amqp::delete_exchange(&exchange).await;
}
