//! The SIM job's outcome equals the injected truth for every subscriber, and
//! a run killed with SIGKILL and resumed reports what an uninterrupted run
//! reports.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lienthong_adapters::sim_job::generate::{BaseOptions, Rates, generate};
use lienthong_adapters::sim_job::sim_verify::{JobObserver, JobOptions, Summary, run};
use lienthong_adapters::sim_job::subscriber::{Format, LineError};
use lienthong_gateway::api::Services;
use lienthong_gateway::policy::{LivePolicy, Policy};
use lienthong_gateway::registry::{SqliteRegistry, seed};
use lienthong_gateway::tls::{PkiLayout, ensure_pki, server_config};
use lienthong_proto::population::Population;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const POLICY: &str = r#"
[agencies.telco]
name = "A telecom operator"
roles = ["consumer"]
[[agencies.telco.grants]]
purpose = "SUBSCRIBER_VERIFICATION"
operations = ["verify_batch"]
"#;
const CITIZENS: u64 = 100_000;
const SUBSCRIBERS: u64 = 100_000;
const SEED: u64 = 5;

/// A gateway serving a seeded registry, and the PKI to reach it.
async fn gateway(dir: &Path) -> (std::net::SocketAddr, PkiLayout) {
    let policy = Policy::parse(POLICY).unwrap();
    let pki = PkiLayout::under(dir);
    ensure_pki(&pki, ["telco"]).unwrap();
    let store = SqliteRegistry::open(dir.join("registry.db")).unwrap();
    seed(
        &store,
        &Population::new(SEED, CITIZENS).unwrap(),
        None,
        |_| {},
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_config(&pki).unwrap();
    let (services, _audit) = Services::open(
        LivePolicy::new(policy),
        Arc::new(store),
        &dir.join("audit"),
        &dir.join("keys/signing.pk8"),
    )
    .unwrap();
    tokio::spawn(lienthong_gateway::api::serve(
        listener,
        tls,
        services,
        std::future::pending(),
    ));
    (addr, pki)
}

async fn channel(addr: std::net::SocketAddr, pki: &PkiLayout) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.ca_cert()).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(pki.agency_cert("telco")).unwrap(),
            std::fs::read(pki.agency_key("telco")).unwrap(),
        ));
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Writes the base and its truth; appends one unreadable line.
fn base(dir: &Path) -> (PathBuf, BTreeMap<String, String>, u64) {
    let path = dir.join("base.csv");
    let mut base = Vec::new();
    let mut truth = Vec::new();
    let population = Population::new(SEED, CITIZENS).unwrap();
    let opts = BaseOptions {
        population: &population,
        subscribers: SUBSCRIBERS,
        limit: 3,
        rates: Rates::default(),
        seed: 11,
        format: Format::Csv,
    };
    generate(&opts, &mut base, &mut truth, |_| {}).unwrap();
    // One line with a field missing, after the header and all subscribers.
    writeln!(
        base,
        "84999999999,001090000001,NGUYEN VAN AN,1990-01-01,male"
    )
    .unwrap();
    let bad_line = SUBSCRIBERS + 2;
    std::fs::write(&path, base).unwrap();
    let truth = String::from_utf8(truth)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (m, o) = l.split_once(',').unwrap();
            (m.to_owned(), o.to_owned())
        })
        .collect();
    (path, truth, bad_line)
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<LineError>>>);

impl JobObserver for Seen {
    fn invalid_line(&mut self, error: &LineError) {
        self.0.lock().unwrap().push(error.clone());
    }
    fn progress(&mut self, _: u64, _: u64) {}
}

/// msisdn → outcome, from junk.csv (invalid lines keyed by their line).
fn junk(out: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(out.join("junk.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let key = if f[1].is_empty() {
                format!("line {}", f[0])
            } else {
                f[1].to_owned()
            };
            (key, f[2].to_owned())
        })
        .collect()
}

fn options(input: &Path, out: &Path) -> JobOptions {
    JobOptions {
        input: input.to_path_buf(),
        out_dir: out.to_path_buf(),
        limit: 3,
        batch: 1_000,
        in_flight: 4,
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        checkpoint_every: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_equal_the_injected_truth_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, pki) = gateway(dir.path()).await;
    let (input, truth, bad_line) = base(dir.path());

    // An uninterrupted run, in process.
    let out = dir.path().join("whole");
    let seen = Seen::default();
    let summary = run(
        &options(&input, &out),
        channel(addr, &pki).await,
        seen.clone(),
    )
    .await
    .unwrap();
    let reported = seen.0.lock().unwrap().clone();
    assert_eq!(reported.len(), 1);
    assert_eq!((reported[0].line, reported[0].field), (bad_line, "line"));

    let found = junk(&out);
    let mut expected: BTreeMap<String, String> = truth
        .iter()
        .filter(|(_, o)| *o != "verified")
        .map(|(m, o)| (m.clone(), o.clone()))
        .collect();
    expected.insert(format!("line {bad_line}"), "invalid_line".into());
    // Every kind of junk is present, and the job found exactly the truth.
    for kind in [
        "malformed_pid",
        "unknown_pid",
        "deceased",
        "name_mismatch",
        "date_mismatch",
        "sex_mismatch",
        "over_limit",
    ] {
        assert!(expected.values().any(|o| o == kind), "the base has {kind}");
    }
    let missed: Vec<_> = expected
        .iter()
        .filter(|(m, o)| found.get(*m) != Some(o))
        .take(5)
        .collect();
    let false_alarms: Vec<_> = found
        .iter()
        .filter(|(m, _)| !expected.contains_key(*m))
        .take(5)
        .collect();
    assert!(missed.is_empty(), "missed or misjudged: {missed:?}");
    assert!(false_alarms.is_empty(), "false alarms: {false_alarms:?}");
    assert_eq!(summary.subscribers, SUBSCRIBERS + 1);
    assert_eq!(summary.invalid_lines, 1);
    let verified = truth.values().filter(|o| *o == "verified").count() as u64;
    assert_eq!(summary.outcomes["verified"], verified);
    assert!(summary.found_junk());

    // The binary, killed with SIGKILL mid-run, then run again.
    let resumed = dir.path().join("resumed");
    let args = |out: &Path| {
        vec![
            "sim-verify".to_owned(),
            "--input".into(),
            input.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--gateway".into(),
            format!("https://{addr}"),
            "--pki-dir".into(),
            pki.root.to_str().unwrap().into(),
            "--agency".into(),
            "telco".into(),
            "--batch".into(),
            "1000".into(),
            "--checkpoint-ms".into(),
            "0".into(),
        ]
    };
    let bin = env!("CARGO_BIN_EXE_lienthong-adapter");
    let mut child = std::process::Command::new(bin)
        .args(args(&resumed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = resumed.join("state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["lines_done"].as_u64())
            .unwrap_or(0);
        if done >= 20_000 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint past 20,000 lines");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(interrupted["complete"], false);
    assert!(interrupted["lines_done"].as_u64().unwrap() < SUBSCRIBERS);

    let mut rerun = std::process::Command::new(bin);
    rerun.args(args(&resumed));
    let rerun = crate::output_within(rerun, Duration::from_secs(600)).await;
    assert_eq!(
        rerun.status.code(),
        Some(2),
        "junk found: {}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(resumed.join("junk.csv")).unwrap(),
        std::fs::read_to_string(out.join("junk.csv")).unwrap(),
        "the resumed junk file equals the uninterrupted one"
    );
    let resumed_summary: Summary =
        serde_json::from_slice(&std::fs::read(resumed.join("summary.json")).unwrap()).unwrap();
    assert_eq!(resumed_summary.outcomes, summary.outcomes);
    assert_eq!(resumed_summary.invalid_lines, summary.invalid_lines);
    assert_eq!(
        resumed_summary.resumed_from,
        interrupted["lines_done"].as_u64().unwrap()
    );
    assert_eq!(summary.resumed_from, 0);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(
        stderr.contains(&format!(
            "skipped line {bad_line}: line: expected 6 fields, found 5"
        )),
        "{stderr}"
    );
}
