//! The conformance kit on both sides: `lienthong-adapter conformance`
//! passes every shipped Rust adapter (the real binary, each sector) and the
//! Python reference adapter (`adapters/python/`, grpcio, its code generated
//! from the published protos when it starts), and fails each deliberately
//! broken variant of that adapter at the check the variant breaks.
//!
//! The Python side needs grpcio: `scripts/test.sh` installs
//! `adapters/python/requirements.txt` into `target/python-venv` and names
//! that interpreter in `LIENTHONG_TEST_PYTHON`.

use std::process::Stdio;
use std::time::Duration;

use lienthong_gateway::tls::PkiLayout;
use tokio::io::AsyncBufReadExt;

use crate::alone::{BIN, pki_under, spawn_sector};
use crate::output_within;

/// The Pids `adapters/python/records.json` holds.
const REFERENCE_PIDS: &str = "001089000001,079203123456";

/// Runs the kit against `endpoint`: (whether it passed, its report).
async fn kit(endpoint: &str, sector: &str, pki: &PkiLayout, extra: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .args([
            "conformance",
            "--endpoint",
            endpoint,
            "--sector",
            sector,
            "--pki-dir",
        ])
        .arg(&pki.root)
        .args(extra);
    let out = output_within(command, Duration::from_secs(60)).await;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), report)
}

/// Whether every line of a kit's report that names a check says pass.
fn all_pass(report: &str) -> bool {
    report
        .lines()
        .filter(|l| !l.contains(" passed, "))
        .all(|l| l.starts_with("pass  "))
        && report.contains(" 0 failed, 0 skipped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_adapter_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki_under(&dir);
    for sector in lienthong_proto::sector::names() {
        let (mut child, addr, _) = spawn_sector(sector, &dir, &pki, &[]).await;
        let population = ["--seed", "5", "--citizens", "2000"];
        let (passed, report) = kit(&format!("https://{addr}"), sector, &pki, &population).await;
        assert!(passed && all_pass(&report), "{sector}:\n{report}");
        child.kill().await.unwrap();
    }
}

/// The reference adapter, `broken` if named: the child and its address.
async fn spawn_reference(pki: &PkiLayout, broken: Option<&str>) -> (tokio::process::Child, String) {
    let python = std::env::var("LIENTHONG_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/reference_adapter.py");
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(script)
        .args(["--listen", "127.0.0.1:0", "--pki-dir"])
        .arg(&pki.root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(broken) = broken {
        command.args(["--broken", broken]);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test.sh sets LIENTHONG_TEST_PYTHON)"));
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let serving = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the reference adapter starts within 60 s")
        .unwrap();
    let Some(line) = serving else {
        let mut err = String::new();
        use tokio::io::AsyncReadExt;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        panic!(
            "the reference adapter did not start ({python}; it needs \
             adapters/python/requirements.txt, which scripts/test.sh installs): {err}"
        );
    };
    let addr = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_adapter_passes_and_each_broken_variant_fails_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki_under(&dir);
    let known = ["--pid", REFERENCE_PIDS, "--deadline-ms", "500"];
    let (mut child, addr) = spawn_reference(&pki, None).await;
    let (passed, report) = kit(&format!("https://{addr}"), "health", &pki, &known).await;
    assert!(passed && all_pass(&report), "{report}");
    child.kill().await.unwrap();

    let variants: [(&str, &[&str]); 7] = [
        (
            "no-client-auth",
            &["tls-requires-client-cert", "tls-refuses-other-ca"],
        ),
        ("any-client", &["tls-refuses-other-client"]),
        ("no-health", &["health"]),
        ("wrong-sector", &["describe"]),
        ("wrong-answer", &["lookup insurance_card"]),
        ("found-unknown", &["lookup-not-found"]),
        ("lenient-pid", &["lookup-malformed"]),
    ];
    let slow: (&str, &[&str]) = ("slow", &["deadline"]);
    for (variant, checks) in variants.into_iter().chain([slow]) {
        let (mut child, addr) = spawn_reference(&pki, Some(variant)).await;
        let (passed, report) = kit(&format!("https://{addr}"), "health", &pki, &known).await;
        assert!(!passed, "{variant} passed:\n{report}");
        for check in checks {
            let failed = format!("FAIL  {check} ");
            assert!(
                report.lines().any(|l| l.starts_with(&failed)),
                "{variant} should fail {check}:\n{report}"
            );
        }
        child.kill().await.unwrap();
    }
}
