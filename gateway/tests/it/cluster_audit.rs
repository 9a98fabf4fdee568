//! The cluster's audit log, with the real binary over the local
//! PostgreSQL: three `lienthong serve --store` replicas, a mixed workload
//! through all three (verifications, batches, refusals, registry writes),
//! `ListAccesses` through each replica listing exactly the accesses made
//! through all, `audit verify --store` passing and then finding each kind
//! of tampering, and a second replica with a node name in use refused.
//!
//! ```text
//! vietcombank, vss, civil ──▶ gw-a ─┐
//!                        ──▶ gw-b ─┼─▶ PostgreSQL: audit_record, one chain
//!                        ──▶ gw-c ─┘   a node; audit_pid; checkpoints
//! vneid ── ListAccesses ──▶ each replica: every chain's accesses
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lienthong_gateway::tls::PkiLayout;
use lienthong_proto::v1;
use lienthong_proto::v1::citizen_service_client::CitizenServiceClient;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use tokio_stream::StreamExt;

use crate::exchange::kyc;
use crate::process::{run, serve_args, spawn_serve_logged, terminate, text};
use crate::replicas::{Schema, share_first};
use crate::support::connect_as;

const NODES: [&str; 3] = ["gw-a", "gw-b", "gw-c"];

/// No broker: the events wait in the outbox, which this test does not read.
const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

/// An access as the citizen is shown it: who, what, through which replica.
type Seen = (String, String, String);

/// Every access to `pid` listed through `addr`, in pages of 4, checked to
/// be newest first.
async fn listed(addr: SocketAddr, pki: &PkiLayout, pid: &str) -> Vec<Seen> {
    let mut idp = CitizenServiceClient::new(connect_as(addr, pki, "vneid").await);
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let page = idp
            .list_accesses(v1::ListAccessesRequest {
                citizen_pid: pid.to_owned(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.accesses);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let times: Vec<&str> = all.iter().map(|a| a.time.as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    all.into_iter()
        .map(|a| (a.agency, a.operation, a.audit_node))
        .collect()
}

/// `lienthong audit verify --store` over the schema: (whether it passed,
/// stdout, stderr).
fn verify(data: &str, store: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["audit", "verify", "--data-dir", data, "--store", store];
    args.extend_from_slice(extra);
    let out = tokio::task::block_in_place(|| run(&args));
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Runs `sql` in the schema.
fn sql(store: &str, sql: &str) {
    tokio::task::block_in_place(|| {
        let mut client = postgres::Client::connect(store, postgres::NoTls).unwrap();
        client.batch_execute(sql).unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_audit_into_one_log_that_each_lists_and_verify_checks() {
    let schema = tokio::task::spawn_blocking(Schema::new).await.unwrap();
    let store = schema.url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let data: Vec<&str> = dirs.iter().map(|d| d.path().to_str().unwrap()).collect();
    let args = |i: usize| {
        let mut args = serve_args(data[i], &["--store", &store]);
        args.extend_from_slice(&["--node-name", NODES[i], "--amqp-url", NO_BROKER]);
        args
    };
    let (a, a_addr, _) = spawn_serve_logged(&args(0)).await;
    for dir in &dirs[1..] {
        share_first(dirs[0].path(), dir.path());
    }
    let (b, b_addr, _) = spawn_serve_logged(&args(1)).await;
    let (c, c_addr, _) = spawn_serve_logged(&args(2)).await;
    let mut replicas = [a, b, c];
    let addrs = [a_addr, b_addr, c_addr];
    let pki = PkiLayout::under(dirs[0].path());

    // Two replicas with one node name: the second refuses to start.
    let mut twin = serve_args(data[1], &["--store", &store]);
    twin.extend_from_slice(&["--node-name", "gw-b", "--amqp-url", NO_BROKER]);
    let refused = tokio::task::block_in_place(|| run(&twin));
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(
        said.contains("\"gw-b\"") && said.contains("--node-name"),
        "{said}"
    );

    // The workload: each citizen's accesses, as they must be listed.
    let population = lienthong_proto::population::Population::new(1, 2_000).unwrap();
    let people: Vec<String> = population
        .iter()
        .filter(|c| c.status == 0)
        .take(6)
        .map(|c| format!("{:012}", c.pid))
        .collect();
    let mut expected: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    let mut note = |pid: &str, agency: &str, operation: &str, node: usize| {
        expected.entry(pid.to_owned()).or_default().push((
            agency.to_owned(),
            operation.to_owned(),
            NODES[node].to_owned(),
        ));
    };
    for round in 0..24 {
        let i = round % 3;
        let pid = &people[round % people.len()];
        let mut bank = ExchangeServiceClient::new(connect_as(addrs[i], &pki, "vietcombank").await);
        bank.verify_identity(kyc(v1::IdentityClaim {
            reference: "r".into(),
            pid: pid.clone(),
            full_name: Some("Không Khớp".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
        note(pid, "vietcombank", "verify_identity", i);
        if round % 4 == 0 {
            // A batch naming two citizens and a malformed Pid: one record,
            // an access of each citizen.
            let other = &people[(round + 1) % people.len()];
            let claims = [pid.as_str(), "12", other.as_str()]
                .iter()
                .map(|p| v1::IdentityClaim {
                    reference: "r".into(),
                    pid: (*p).to_owned(),
                    full_name: Some("Không Khớp".into()),
                    ..Default::default()
                })
                .collect();
            let request = v1::VerifyBatchRequest {
                batch_id: format!("b-{round}"),
                purpose: "KYC_ONBOARDING".into(),
                r#match: None,
                claims,
            };
            let mut answers = bank
                .verify_batch(tokio_stream::iter(vec![request]))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answers.next().await.unwrap().unwrap().results.len(), 3);
            note(pid, "vietcombank", "verify_batch", i);
            note(other, "vietcombank", "verify_batch", i);
        }
        if round % 3 == 1 {
            // Refused: a purpose vss holds no grant for.
            let mut vss = ExchangeServiceClient::new(connect_as(addrs[i], &pki, "vss").await);
            let refused = vss
                .get_citizen(v1::GetCitizenRequest {
                    purpose: "NOT_A_PURPOSE".into(),
                    pid: pid.clone(),
                    fields: vec![v1::CitizenField::FullName as i32],
                    consent_token: String::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied);
            note(pid, "vss", "get_citizen", i);
        }
        if round % 6 == 5 {
            let mut civil = RegistryServiceClient::new(
                connect_as(addrs[i], &pki, "civil-registry-hanoi").await,
            );
            civil
                .change_name(v1::ChangeNameRequest {
                    request_id: format!("n-{round}"),
                    pid: pid.clone(),
                    full_name: format!("Lê Văn Thu{}", ["", " Hà", " Đức", " An"][round / 6]),
                })
                .await
                .unwrap();
            note(pid, "civil-registry-hanoi", "change_name", i);
        }
    }

    // Through each replica, each citizen sees exactly what was done through
    // all three, each access once, with the replica that recorded it.
    for (i, addr) in addrs.iter().enumerate() {
        for (pid, want) in &expected {
            let mut got = listed(*addr, &pki, pid).await;
            let mut want = want.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{pid} through {}", NODES[i]);
        }
    }

    // Stopped cleanly, each replica signs a last checkpoint.
    for replica in &mut replicas {
        assert!(terminate(replica, Duration::from_secs(30)).await.success());
    }
    let (ok, out, err) = verify(data[0], &store, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("audit log verified: 3 chains"), "{out}");
    let kept: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("keep off the machine: --checkpoint "))
        .collect();
    assert_eq!(kept.len(), 3, "{out}");
    // `check` on a replica's data directory walks the shared chains too.
    let checked =
        tokio::task::block_in_place(|| run(&["check", "--data-dir", data[1], "--store", &store]));
    let said = text(&checked.stdout);
    assert!(
        said.contains("audit (shared store): 3 chains"),
        "{said}{}",
        text(&checked.stderr)
    );

    // Each kind of tampering is found, in its chain; each is then undone.
    let cases = [
        (
            "UPDATE audit_record SET outcome = 'NOT_FOUND' || outcome WHERE node = 'gw-b' AND seq = 2",
            "chain gw-b: record 2 was edited",
        ),
        (
            "DELETE FROM audit_record WHERE node = 'gw-c' AND seq = 3",
            "chain gw-c: record 3 was removed",
        ),
        (
            "UPDATE audit_record SET seq = -1 WHERE node = 'gw-a' AND seq = 4;
             UPDATE audit_record SET seq = 4 WHERE node = 'gw-a' AND seq = 5;
             UPDATE audit_record SET seq = 5 WHERE node = 'gw-a' AND seq = -1",
            "chain gw-a: record 4 was edited",
        ),
    ];
    for (tamper, found) in cases {
        sql(
            &store,
            &format!("CREATE TABLE kept AS SELECT * FROM audit_record; {tamper}"),
        );
        let (ok, out, err) = verify(data[0], &store, &[]);
        assert!(!ok, "{tamper}: {out}");
        assert!(err.contains(found), "{tamper}: {err}");
        sql(
            &store,
            "TRUNCATE audit_record; INSERT INTO audit_record SELECT * FROM kept; DROP TABLE kept",
        );
        assert!(verify(data[0], &store, &[]).0, "undone: {tamper}");
    }
    // gw-c's tail cut with its checkpoints: verify alone cannot tell, the
    // checkpoint kept off the machine does.
    let anchor = kept.iter().find(|k| k.starts_with("gw-c:")).unwrap();
    let last: u64 = anchor.split(':').nth(1).unwrap().parse().unwrap();
    sql(
        &store,
        &format!(
            "DELETE FROM audit_record WHERE node = 'gw-c' AND seq > {cut};
             DELETE FROM audit_pid WHERE node = 'gw-c' AND seq > {cut};
             DELETE FROM audit_checkpoint WHERE node = 'gw-c' AND seq > {cut};",
            cut = last - 2
        ),
    );
    assert!(verify(data[0], &store, &[]).0);
    let (ok, _, err) = verify(data[0], &store, &["--checkpoint", anchor]);
    assert!(!ok);
    assert!(
        err.contains(&format!("chain gw-c: the tail was cut: record {last}")),
        "{err}"
    );
}
