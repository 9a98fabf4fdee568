//! The real `lienthong` binary, scripted as users and tools will: `certs`,
//! `seed --sample-out`, `serve`, then a query with a sample record.

use std::path::Path;
use std::time::Duration;

use lienthong_proto::v1::{self, exchange_service_client::ExchangeServiceClient};

use lienthong_gateway::tls::PkiLayout;

use crate::support::{
    connect_as, run, run_bin, serve_args, spawn_serve, spawn_serve_logged, text, wait_for,
};

/// Help text with its line wrapping undone.
fn unwrapped(b: &[u8]) -> String {
    text(b).split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_lists_the_commands_and_defaults() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["serve", "seed", "certs"] {
        assert!(help.contains(word), "{help}");
    }
    let seed = unwrapped(&run(&["seed", "--help"]).stdout);
    for flag in [
        "--data-dir",
        "--citizens",
        "--seed",
        "--sample-out",
        "[default: 1000000]",
    ] {
        assert!(seed.contains(flag), "{seed}");
    }
    let serve = unwrapped(&run(&["serve", "--help"]).stdout);
    assert!(serve.contains("[default: 127.0.0.1:50051]"), "{serve}");
}

#[tokio::test]
async fn certs_seed_serve_and_query_a_sample_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    let out = run(&["certs", "--data-dir", data_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pki = data.join("pki");
    for f in [
        "ca.pem",
        "gateway.pem",
        "gateway.key",
        "agencies/vietcombank.pem",
        "agencies/vietcombank.key",
        "agencies/viettel.pem",
        "agencies/vneid.key",
    ] {
        assert!(pki.join(f).is_file(), "{f}");
    }
    let again = run(&["certs", "--data-dir", data_s]);
    assert!(
        text(&again.stdout).contains("complete"),
        "a second run keeps what exists"
    );

    let sample = dir.path().join("sample.jsonl");
    let out = run(&[
        "seed",
        "--data-dir",
        data_s,
        "--citizens",
        "5000",
        "--seed",
        "7",
        "--sample-out",
        sample.to_str().unwrap(),
        "--sample-size",
        "1500",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("seeded 5000 citizens"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1500, "exactly the sample size asked for");
    for l in &lines {
        assert_eq!(l["pid"].as_str().unwrap().len(), 12);
        assert!(!l["full_name"].as_str().unwrap().is_empty());
        assert_eq!(l["date_of_birth"].as_str().unwrap().len(), 10);
        assert!(["male", "female"].contains(&l["sex"].as_str().unwrap()));
        assert!(["alive", "deceased", "missing"].contains(&l["status"].as_str().unwrap()));
        assert_eq!(l["permanent_province"].as_str().unwrap().len(), 3);
    }

    // Seeding a registry that already holds citizens is refused, clearly.
    let out = run(&["seed", "--data-dir", data_s, "--citizens", "10"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already holds 5000 citizens"),
        "{}",
        text(&out.stderr)
    );

    // Serve on an ephemeral port; the log line names the address.
    let (mut child, addr) =
        spawn_serve(&["serve", "--data-dir", data_s, "--listen", "127.0.0.1:0"]).await;

    let record = &lines[0];
    let channel = connect_as(
        addr,
        &PkiLayout::under(pki.parent().unwrap()),
        "vietcombank",
    )
    .await;
    let dob: Vec<i32> = record["date_of_birth"]
        .as_str()
        .unwrap()
        .split('-')
        .map(|p| p.parse().unwrap())
        .collect();
    let claim = v1::IdentityClaim {
        reference: "sample-0".into(),
        pid: record["pid"].as_str().unwrap().into(),
        full_name: Some(record["full_name"].as_str().unwrap().into()),
        date_of_birth: Some(v1::Date {
            year: dob[0],
            month: dob[1],
            day: dob[2],
        }),
        ..Default::default()
    };
    let v = ExchangeServiceClient::new(channel)
        .verify_identity(v1::VerifyIdentityRequest {
            purpose: "KYC_ONBOARDING".into(),
            r#match: None,
            claim: Some(claim),
        })
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(v.verdict(), v1::Verdict::Match);

    // SIGTERM: a clean exit.
    let status = crate::support::terminate(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    assert!(Path::new(&data.join("registry.db")).is_file());
}

#[tokio::test]
async fn serve_alone_prepares_an_empty_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let (_serving, addr) = spawn_serve(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "3000",
    ])
    .await;
    for f in [
        "policy.toml",
        "registry.db",
        "sample.jsonl",
        "pki/ca.pem",
        "pki/agencies/vss.pem",
    ] {
        assert!(data.join(f).is_file(), "{f}");
    }
    let sample = std::fs::read_to_string(data.join("sample.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let pki = data.join("pki");
    let channel = connect_as(addr, &PkiLayout::under(pki.parent().unwrap()), "viettel").await;
    let mut answers = ExchangeServiceClient::new(channel)
        .verify_batch(tokio_stream::iter(vec![v1::VerifyBatchRequest {
            batch_id: "first".into(),
            purpose: "SUBSCRIBER_VERIFICATION".into(),
            r#match: None,
            claims: vec![v1::IdentityClaim {
                reference: "0".into(),
                pid: first["pid"].as_str().unwrap().into(),
                full_name: Some(first["full_name"].as_str().unwrap().into()),
                ..Default::default()
            }],
        }]))
        .await
        .unwrap()
        .into_inner();
    use tokio_stream::StreamExt;
    let answer = answers.next().await.unwrap().unwrap();
    let Some(v1::claim_result::Outcome::Verification(v)) = &answer.results[0].outcome else {
        panic!("a verification")
    };
    assert_eq!(v.verdict(), v1::Verdict::Match);

    // What holds personal data or accesses, and the keys, are this user's
    // alone: files 0600 (a database's -wal too), directories 0700.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for d in ["", "audit", "keys", "pki"] {
        assert_eq!(mode(d), 0o700, "{d:?}");
    }
    let mut files = vec![
        "registry.db".to_owned(),
        "sample.jsonl".into(),
        "audit/index.db".into(),
        "audit/00000001.seg".into(),
        "keys/signing.pk8".into(),
    ];
    if data.join("registry.db-wal").exists() {
        files.push("registry.db-wal".into());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{f}");
    }
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_a_bad_file_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_s = dir.path().to_str().unwrap();
    let (child, addr, log) = spawn_serve_logged(&serve_args(
        data_s,
        &["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    ))
    .await;
    let pki = dir.path().join("pki");
    let channel = connect_as(
        addr,
        &PkiLayout::under(pki.parent().unwrap()),
        "vietcombank",
    )
    .await;
    let mut client = ExchangeServiceClient::new(channel);
    let pid = std::fs::read_to_string(dir.path().join("sample.jsonl")).unwrap()[8..20].to_owned();
    let ask = |purpose: &str| v1::VerifyIdentityRequest {
        purpose: purpose.into(),
        claim: Some(v1::IdentityClaim {
            pid: pid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = client
        .verify_identity(ask("AML_SCREENING"))
        .await
        .unwrap_err();
    assert_eq!(crate::support::reason(&err), "PURPOSE_NOT_PERMITTED");

    let hangup = || crate::support::signal(&child, "-HUP");
    let logged = |what: &str| log.lock().unwrap().iter().any(|l| l.contains(what));
    let policy_path = dir.path().join("policy.toml");
    let policy = std::fs::read_to_string(&policy_path).unwrap();
    let kyc = "purpose = \"KYC_ONBOARDING\"\noperations = [\"verify_identity\", \"verify_batch\", \"query_sector\"]\nsector_queries = [\"banking.kyc_status\"]\n";
    assert!(policy.contains(kyc));
    let granted = policy.replace(
        kyc,
        &format!("{kyc}\n[[agencies.vietcombank.grants]]\npurpose = \"AML_SCREENING\"\noperations = [\"verify_identity\"]\n"),
    );
    std::fs::write(&policy_path, granted).unwrap();
    hangup();
    // The same connection gets the new grant once the reload is done.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.verify_identity(ask("AML_SCREENING")).await.is_err() {
        assert!(
            tokio::time::Instant::now() < until,
            "the reload takes effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged("policy reloaded"));

    std::fs::write(
        &policy_path,
        "[agencies.vietcombank]\nname = \"V\"\nrolez = []\n",
    )
    .unwrap();
    hangup();
    wait_for(Duration::from_secs(30), "the refusal logged", || {
        logged("policy reload refused")
    })
    .await;
    let refusal = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("policy reload refused"))
        .cloned()
        .unwrap();
    assert!(refusal.contains("line 3"), "{refusal}");
    client
        .verify_identity(ask("AML_SCREENING"))
        .await
        .expect("the previous policy stays in force");
}

#[tokio::test]
async fn health_probes_a_running_gateway_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (_serving, addr) = spawn_serve(&[
        "serve",
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "1000",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
    ])
    .await;
    let addr = addr.to_string();
    for service in ["", "lienthong.v1.ExchangeService"] {
        let out = run(&[
            "health",
            "--data-dir",
            data,
            "--addr",
            &addr,
            "--service",
            service,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // A fresh register: no write yet, the projection at seq 0.
        assert_eq!(text(&out.stdout), "SERVING\nprojection_seq 0\n");
    }
    // Nothing listens there.
    let out = run(&["health", "--data-dir", data, "--addr", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach 127.0.0.1:1"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_data_directory_that_has_served_is_never_refilled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let no_broker = ["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"];
    let (mut serving, _) = spawn_serve(&serve_args(data, &no_broker)).await;
    let status = crate::support::terminate(&mut serving, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let mut args = serve_args(data, &no_broker);
    args.extend(["--metrics-listen", "off"]);
    for file in ["registry.db", "policy.toml", "keys/signing.pk8"] {
        let path = dir.path().join(file);
        let kept = dir.path().join("kept");
        std::fs::rename(&path, &kept).unwrap();
        let (ok, said) = run_bin(&args, Duration::from_secs(120));
        assert!(!ok, "served without {file}: {said}");
        assert!(
            said.contains(file) && said.contains("restore it from a backup"),
            "{file}: {said}"
        );
        assert!(!path.exists(), "{file} was re-created");
        std::fs::rename(&kept, &path).unwrap();
    }
    // An emptied registry is not seeded again either.
    let registry = rusqlite::Connection::open(dir.path().join("registry.db")).unwrap();
    registry.execute("DELETE FROM citizen", []).unwrap();
    drop(registry);
    let (ok, said) = run_bin(&args, Duration::from_secs(120));
    assert!(!ok && said.contains("population"), "{said}");
}

#[tokio::test]
async fn serve_never_reads_the_ca_key_and_check_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(run(&["certs", "--data-dir", data]).status.success());
    // The CA's key beside the gateway is worth a warning, not a failure.
    let out = run(&["check", "--data-dir", data]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("warning  pki/ca.key: the CA's private key"),
        "{}",
        text(&out.stdout)
    );
    // Kept offline, as a deployment would: serve runs without it and keeps
    // the CA it has.
    let ca = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();
    std::fs::rename(
        dir.path().join("pki/ca.key"),
        dir.path().join("ca.key.offline"),
    )
    .unwrap();
    let (mut serving, addr) = spawn_serve(&serve_args(
        data,
        &["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    ))
    .await;
    let pki = PkiLayout::under(dir.path());
    ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await)
        .verify_identity(v1::VerifyIdentityRequest {
            purpose: "KYC_ONBOARDING".into(),
            claim: Some(v1::IdentityClaim {
                pid: "001085000123".into(),
                ..Default::default()
            }),
            r#match: None,
        })
        .await
        .unwrap();
    assert!(!dir.path().join("pki/ca.key").exists(), "no new CA key");
    assert_eq!(std::fs::read(dir.path().join("pki/ca.pem")).unwrap(), ca);
    let status = crate::support::terminate(&mut serving, Duration::from_secs(30)).await;
    assert!(status.success());

    // A served directory is checked whole: the registry page by page, the
    // audit chain record by record.
    let out = run(&["check", "--data-dir", data]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("ok       registry.db: integrity check passed"),
        "{said}"
    );
    assert!(
        said.contains("ok       audit/: 1 records chained"),
        "{said}"
    );
    // Bytes set aside at a start (a write cut short) fail both until they
    // are moved away.
    let torn = dir.path().join("audit/torn-00000001-4096.bin");
    std::fs::write(&torn, b"half a frame").unwrap();
    let out = run(&["check", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("set aside"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["audit", "verify", "--data-dir", data]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("set aside"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&torn).unwrap();
    // A flipped stretch in the middle of the registry is found.
    let registry = dir.path().join("registry.db");
    let mut bytes = std::fs::read(&registry).unwrap();
    let middle = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[middle..middle + 16 * 4096] {
        *b ^= 0x5A;
    }
    std::fs::write(&registry, bytes).unwrap();
    let out = run(&["check", "--data-dir", data]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{said}");
    assert!(said.contains("problem  registry.db:"), "{said}");
}
