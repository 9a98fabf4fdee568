//! The Prometheus endpoint of the real binary reports a known workload's
//! counts exactly — requests, the audit, sector calls and the outbox's lag
//! as each moves — and no personal data.

use std::net::SocketAddr;
use std::time::Duration;

use lienthong_proto::v1::{
    self, exchange_service_client::ExchangeServiceClient,
    registry_service_client::RegistryServiceClient,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{GatedAdapter, connect_as, reason, run_bin, serve_args, spawn_serve_logged};

/// `GET path` on the metrics port: the status line and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Where a spawned `lienthong` serves its metrics, as its log says.
pub(crate) fn metrics_addr(log: &[String]) -> SocketAddr {
    log.iter()
        .find_map(|l| {
            l.split("metrics=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("the metrics address is logged")
}

/// The value of the sample named `name` whose labels include every one of
/// `labels` (`key="value"`), if there is one.
pub(crate) fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let bare = series.split('{').next() == Some(name);
            bare && labels.iter().all(|want| series.contains(want))
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn claim(pid: &str, name: &str) -> v1::IdentityClaim {
    v1::IdentityClaim {
        reference: "r".into(),
        pid: pid.into(),
        full_name: Some(name.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_metrics_endpoint_counts_a_known_workload_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, out) = run_bin(&["certs", "--data-dir", data], Duration::from_secs(120));
    assert!(ok, "{out}");
    let pki = lienthong_gateway::tls::PkiLayout::under(dir.path());
    // The banking adapter answers; the health adapter is not there.
    let banking = GatedAdapter::start(&pki, "banking").await;
    banking.open();
    let endpoints = format!(
        "banking=https://{},health=https://127.0.0.1:1",
        banking.addr
    );
    let (_serving, addr, log) = spawn_serve_logged(&serve_args(
        data,
        &[
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "--sector-endpoints",
            &endpoints,
            "--node-name",
            "gw-test-1",
        ],
    ))
    .await;
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("node=gw-test-1")),
        "the serving line names the node"
    );
    let metrics = metrics_addr(&log.lock().unwrap());
    let sample_line = std::fs::read_to_string(dir.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value =
        serde_json::from_str(sample_line.lines().next().unwrap()).unwrap();
    let pid = person["pid"].as_str().unwrap();
    let name = person["full_name"].as_str().unwrap();

    let mut bank = ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await);
    for purpose in [
        "KYC_ONBOARDING",
        "KYC_ONBOARDING",
        "KYC_ONBOARDING",
        "MARKETING",
        "MARKETING",
    ] {
        let _ = bank
            .verify_identity(v1::VerifyIdentityRequest {
                purpose: purpose.into(),
                claim: Some(claim(pid, name)),
                r#match: None,
            })
            .await;
    }
    let batch = v1::VerifyBatchRequest {
        batch_id: "b".into(),
        purpose: "KYC_ONBOARDING".into(),
        claims: (0..4).map(|_| claim(pid, name)).collect(),
        ..Default::default()
    };
    let mut answers = bank
        .verify_batch(tokio_stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answers.message().await.unwrap().unwrap().results.len(), 4);

    let (status, body) = get(metrics, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    // The projection's seq is exported from the start, before any write.
    assert_eq!(sample(&body, "lienthong_projection_seq", &[]), Some(0.0));
    let requests = |operation: &str, outcome: &str| {
        sample(
            &body,
            "lienthong_requests_total",
            &[
                "agency=\"vietcombank\"",
                &format!("operation=\"{operation}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!(requests("verify_identity", "OK"), Some(3.0), "{body}");
    assert_eq!(
        requests("verify_identity", "PURPOSE_NOT_PERMITTED"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(requests("verify_batch", "OK"), Some(4.0), "{body}");
    assert_eq!(
        sample(
            &body,
            "lienthong_request_duration_seconds_count",
            &["method=\"/lienthong.v1.ExchangeService/VerifyIdentity\""]
        ),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        // Five calls, and the batch of four claims as one record.
        sample(
            &body,
            "lienthong_audit_records_total",
            &["node=\"gw-test-1\""]
        ),
        Some(6.0),
        "{body}"
    );
    assert!(
        sample(&body, "lienthong_audit_commit_seconds_count", &[]).is_some_and(|n| n >= 1.0),
        "{body}"
    );
    // Nothing was written, so nothing waits for the broker (the gauge is
    // read once a second, the first time as the gateway starts).
    assert_eq!(
        sample(&body, "lienthong_outbox_waiting", &[]),
        Some(0.0),
        "{body}"
    );
    // No personal data in any label.
    for secret in [pid, name] {
        assert!(!body.contains(secret), "{secret:?} is in the metrics");
    }

    // Sector calls, by sector and outcome: one answered, one failed.
    let ask = |purpose: &str, sector: &str, query: &str| v1::QuerySectorRequest {
        purpose: purpose.into(),
        pid: pid.into(),
        sector: sector.into(),
        query: query.into(),
    };
    bank.query_sector(ask("KYC_ONBOARDING", "banking", "kyc_status"))
        .await
        .unwrap();
    let mut clinic = ExchangeServiceClient::new(connect_as(addr, &pki, "clinic-bach-mai").await);
    let failed = clinic
        .query_sector(ask("MEDICAL_TREATMENT", "health", "vaccinations"))
        .await
        .unwrap_err();
    assert_eq!(reason(&failed), "SECTOR_UNAVAILABLE");
    let (_, body) = get(metrics, "/metrics").await;
    let sector_calls = |sector: &str, outcome: &str| {
        sample(
            &body,
            "lienthong_sector_calls_total",
            &[
                &format!("sector=\"{sector}\""),
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!(sector_calls("banking", "ok"), Some(1.0), "{body}");
    assert_eq!(sector_calls("health", "failed"), Some(1.0), "{body}");
    assert_eq!(
        sample(&body, "lienthong_sector_available", &["sector=\"banking\""]),
        Some(1.0),
        "{body}"
    );

    // A registry write with no broker to take its event: the outbox gauges
    // (read once a second) show one event waiting, and for how long.
    let mut police = RegistryServiceClient::new(connect_as(addr, &pki, "residence-police").await);
    let living: serde_json::Value = sample_line
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["status"] == "alive")
        .unwrap();
    let mover = living["pid"].as_str().unwrap().parse().unwrap();
    police
        .change_residence(crate::registry::move_to("m-1".into(), mover, 1))
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = get(metrics, "/metrics").await;
        let waiting = sample(&body, "lienthong_outbox_waiting", &[]);
        let oldest = sample(&body, "lienthong_outbox_oldest_waiting_seconds", &[]);
        // The outbox's last seq and the projection's agree; this gateway's
        // relay publishes (it leads, broker or not).
        let last = sample(&body, "lienthong_outbox_last_seq", &[]);
        let applied = sample(&body, "lienthong_projection_seq", &[]);
        let leading = sample(&body, "lienthong_relay_leading", &[]);
        if waiting == Some(1.0)
            && oldest.is_some_and(|s| s > 0.0)
            && last == Some(1.0)
            && applied == Some(1.0)
            && leading == Some(1.0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the outbox gauges did not move: waiting {waiting:?}, oldest {oldest:?}, \
             last seq {last:?}, projection {applied:?}, leading {leading:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = get(metrics, "/elsewhere").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
