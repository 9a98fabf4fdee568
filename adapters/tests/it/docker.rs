//! The adapters' services in the compose file run commands the real
//! `lienthong-adapter` binary accepts, with variables it reads.

use std::time::Duration;

use serde_norway::Value;

const COMPOSE: &str = include_str!("../../../docker/compose.yaml");
const BIN: &str = env!("CARGO_BIN_EXE_lienthong-adapter");

#[tokio::test]
async fn every_sector_runs_in_compose_with_arguments_the_binary_accepts() {
    let compose: Value = serde_norway::from_str(COMPOSE).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let mut help = std::process::Command::new(BIN);
    help.arg("--help");
    let help = crate::output_within(help, Duration::from_secs(60)).await;
    let help: String = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect();
    let mut sectors = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if !name.starts_with("adapter-") {
            continue;
        }
        assert_eq!(service["entrypoint"][0].as_str(), Some("lienthong-adapter"));
        let args: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let sector = args[args.iter().position(|a| *a == "--sector").unwrap() + 1];
        sectors.push(sector.to_owned());
        // The same arguments with the container's directories swapped for
        // an empty one of this test: parsed, then stopped for want of the
        // certificates (exit 1, not the usage error 2) before binding.
        let scratch = tempfile::tempdir().unwrap();
        let scratch = scratch.path().to_str().unwrap().to_owned();
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if a.starts_with("/var/lib/") {
                    scratch.as_str()
                } else {
                    a
                }
            })
            .collect();
        let mut run = std::process::Command::new(BIN);
        run.args(&args)
            .env("LIENTHONG_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
        let out = crate::output_within(run, Duration::from_secs(60)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains("lienthong certs"), "{name}: {stderr}");
        for (var, _) in service["environment"].as_mapping().unwrap() {
            let var = var.as_str().unwrap();
            assert!(help.contains(&format!("[env:{var}")), "{var} is not read");
        }
    }
    sectors.sort();
    let mut all: Vec<String> = lienthong_adapters::sectors::names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    all.sort();
    assert_eq!(sectors, all, "one service per sector");
}
