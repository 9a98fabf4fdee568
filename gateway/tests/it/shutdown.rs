//! A graceful stop under load: SIGTERM while eight writers keep the gateway
//! busy. Every write it acknowledged has its event published and its audit
//! record signed before the process exits, and nothing is left half-done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lienthong_gateway::audit::records;
use lienthong_proto::citizen::LifeStatus;
use lienthong_proto::population::Population;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use rusqlite::{Connection, OpenFlags};

use crate::amqp::{BROKER, EventTap, unique};
use crate::registry::move_to;
use crate::support::{BIN, connect_as, spawn_serve, wait_for};

/// Runs a `lienthong` subcommand on `data`: success and standard output.
fn lienthong(args: &[&str], data: &str) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .args(["--data-dir", data])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn sigterm_under_load_publishes_every_acknowledged_event_and_closes_the_audit() {
    let _shared = BROKER.read().await;
    let exchange = unique("lienthong.events.test");
    let tap = EventTap::start(&exchange).await;
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let args = [
        "serve",
        "--data-dir",
        data_s,
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "2000",
        "--seed",
        "6",
        "--events-exchange",
        &exchange,
    ];
    let (mut child, addr) = spawn_serve(&args).await;
    let people: Arc<Vec<u64>> = Arc::new(
        Population::new(6, 2_000)
            .unwrap()
            .iter()
            .filter(|c| c.life_status() != LifeStatus::Deceased)
            .map(|c| c.pid)
            .collect(),
    );
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8_u64 {
        let channel = connect_as(addr, &pki, "residence-police").await;
        let (people, acked) = (people.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut client = RegistryServiceClient::new(channel);
            let mut i = w;
            loop {
                let pid = people[(i as usize) % people.len()];
                match client
                    .change_residence(move_to(format!("t-{i}"), pid, i))
                    .await
                {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push(r.into_inner().receipt.unwrap().event_id),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    // Refused or cut off by the stop: the write may or may
                    // not have happened, and the client was not told it did.
                    Err(_) => return,
                }
                i += 8;
            }
        }));
    }
    wait_for(Duration::from_secs(60), "500 acknowledged writes", || {
        acked.lock().unwrap().len() >= 500
    })
    .await;
    // The gateway stops within its grace period.
    let status = crate::support::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    for w in writers {
        w.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();

    // Every acknowledged write's event reached the broker before the exit:
    // no restart is needed to deliver them.
    tap.wait_until(
        Duration::from_secs(10),
        "every acknowledged write's event",
        |r| {
            let got: BTreeSet<&str> = r.iter().filter_map(|m| m.message_id.as_deref()).collect();
            acked.iter().all(|id| got.contains(id.as_str()))
        },
    )
    .await;
    // Nothing half-done: every committed event is marked published, and
    // every committed write has its audit record, all signed.
    let (ok, outbox) = lienthong(&["outbox"], data_s);
    assert!(ok && outbox.contains("waiting for broker  0\n"), "{outbox}");
    let registry = data.path().join("registry.db");
    let committed = count(&registry, "SELECT count(*) FROM outbox");
    assert!(committed >= acked.len() as i64);
    let log = records(&data.path().join("audit")).unwrap();
    let written = log
        .iter()
        .filter(|r| r.entry.operation == "change_residence" && r.entry.outcome == "OK")
        .count();
    assert_eq!(
        written as i64, committed,
        "one audit record per committed write"
    );
    let (ok, verified) = lienthong(&["audit", "verify"], data_s);
    assert!(ok, "{verified}");
    assert!(
        verified.contains(&format!(
            "the last checkpoint covers record {}\n",
            log.len()
        )),
        "the stop signed the last checkpoint: {verified}"
    );
    tap.delete().await;
}

#[tokio::test]
async fn a_stream_still_open_is_cut_after_the_grace_period_and_the_audit_closes() {
    let data = tempfile::tempdir().unwrap();
    let data_s = data.path().to_str().unwrap();
    let (mut child, addr, log) = crate::support::spawn_serve_logged(&[
        "serve",
        "--data-dir",
        data_s,
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "2000",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "--shutdown-grace-ms",
        "500",
    ])
    .await;
    let sample = std::fs::read_to_string(data.path().join("sample.jsonl")).unwrap();
    let person: serde_json::Value = serde_json::from_str(sample.lines().next().unwrap()).unwrap();
    let pki = lienthong_gateway::tls::PkiLayout::under(data.path());
    let mut telco = lienthong_proto::v1::exchange_service_client::ExchangeServiceClient::new(
        connect_as(addr, &pki, "viettel").await,
    );
    // A verification job's stream: one batch answered, and it stays open.
    let (send, batches) = tokio::sync::mpsc::channel(1);
    send.send(lienthong_proto::v1::VerifyBatchRequest {
        batch_id: "b".into(),
        purpose: "SUBSCRIBER_VERIFICATION".into(),
        claims: vec![lienthong_proto::v1::IdentityClaim {
            reference: "r".into(),
            pid: person["pid"].as_str().unwrap().into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answers = telco
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(batches))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());

    // The open stream does not hold the gateway past its grace period.
    let status = crate::support::terminate(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("grace period is over")),
        "{:#?}",
        log.lock().unwrap()
    );
    drop(send);
    let recorded = records(&data.path().join("audit")).unwrap().len();
    assert_eq!(recorded, 1, "the stream's one claim");
    let (ok, verified) = lienthong(&["audit", "verify"], data_s);
    assert!(ok, "{verified}");
    assert!(
        verified.contains("the last checkpoint covers record 1\n"),
        "closed with a signed checkpoint although a handle was still held: {verified}"
    );
}
