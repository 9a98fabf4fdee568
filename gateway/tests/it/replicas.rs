//! Gateways sharing one store, as replicas do: each one's verification
//! projection follows the others' writes through the outbox, at once for a
//! caller that names its write's `seq` (`x-lienthong-min-seq`), within the
//! follow interval otherwise.

use std::time::Duration;

use lienthong_proto::v1;
use tokio_stream::StreamExt;
use tonic::{Code, Request};

use crate::exchange::kyc;
use crate::registry::residence;
use crate::support::{TestGateway, bad_fields, reason};

const MIN_SEQ: &str = "x-lienthong-min-seq";
const SEQ: &str = "x-lienthong-seq";

/// A claim of `name` for citizen `pid`.
fn named(pid: u64, name: &str) -> v1::IdentityClaim {
    v1::IdentityClaim {
        reference: "r".into(),
        pid: format!("{pid:012}"),
        full_name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// `message` asking for a verification no older than `seq` (as sent).
fn at_least<T>(message: T, seq: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(MIN_SEQ, seq.parse().unwrap());
    request
}

/// The `x-lienthong-seq` an answer names.
fn seq_of(metadata: &tonic::metadata::MetadataMap) -> u64 {
    metadata
        .get(SEQ)
        .expect("the answer names its seq")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A name change through `gw`'s registry service; its receipt's seq.
async fn rename(gw: &TestGateway, id: &str, pid: u64, name: &str) -> u64 {
    gw.registry("civil")
        .await
        .change_name(v1::ChangeNameRequest {
            request_id: id.into(),
            pid: format!("{pid:012}"),
            full_name: name.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .seq
}

#[tokio::test]
async fn a_write_through_one_gateway_is_seen_through_another_that_is_asked_for_its_seq() {
    let a = TestGateway::start().await;
    // b reads the outbox only when asked (or when it writes itself).
    let b = TestGateway::beside(&a, Duration::from_secs(3_600)).await;
    let person = a.find(|c| c.status == 0 && !c.female);
    let mut bank = b.client("bank").await;

    let seq = rename(&a, "n-1", person.pid, "Lê Văn Thu").await;
    // Without the header, b answers from what it holds: the old name.
    let answer = bank
        .verify_identity(kyc(named(person.pid, "Lê Văn Thu")))
        .await
        .unwrap();
    assert!(seq_of(answer.metadata()) < seq);
    let verification = answer.into_inner().verification.unwrap();
    assert_eq!(verification.verdict(), v1::Verdict::Mismatch);

    // Asked for the write's seq, b catches up first.
    let answer = bank
        .verify_identity(at_least(
            kyc(named(person.pid, "Lê Văn Thu")),
            &seq.to_string(),
        ))
        .await
        .unwrap();
    assert!(seq_of(answer.metadata()) >= seq);
    let verification = answer.into_inner().verification.unwrap();
    assert_eq!(verification.verdict(), v1::Verdict::Match);

    // A batch stream the same way: the header is the stream's.
    let seq = rename(&a, "n-2", person.pid, "Lê Văn Thuận").await;
    let batch = v1::VerifyBatchRequest {
        batch_id: "b-1".into(),
        purpose: "KYC_ONBOARDING".into(),
        r#match: None,
        claims: vec![named(person.pid, "Lê Văn Thuận")],
    };
    let answers = bank
        .verify_batch(at_least(tokio_stream::iter(vec![batch]), &seq.to_string()))
        .await
        .unwrap();
    assert!(seq_of(answers.metadata()) >= seq);
    let answer = answers.into_inner().next().await.unwrap().unwrap();
    let Some(v1::claim_result::Outcome::Verification(v)) = &answer.results[0].outcome else {
        panic!("{answer:?}");
    };
    assert_eq!(v.verdict(), v1::Verdict::Match);

    // A seq the store has not committed, or no number at all: refused,
    // naming the header.
    for bad in [(seq + 1_000).to_string(), "soon".to_owned()] {
        let refused = bank
            .verify_identity(at_least(kyc(named(person.pid, "x")), &bad))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(reason(&refused), "ARGUMENT_INVALID");
        assert_eq!(bad_fields(&refused), [MIN_SEQ]);
        let batch = v1::VerifyBatchRequest {
            batch_id: "b-2".into(),
            purpose: "KYC_ONBOARDING".into(),
            r#match: None,
            claims: vec![named(person.pid, "x")],
        };
        let refused = bank
            .verify_batch(at_least(tokio_stream::iter(vec![batch]), &bad))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "ARGUMENT_INVALID", "{bad}");
    }
}

#[tokio::test]
async fn another_gateways_writes_reach_the_projection_by_themselves() {
    let a = TestGateway::start().await;
    let b = TestGateway::beside(&a, Duration::from_millis(50)).await;
    let mover = a.find(|c| c.status == 0 && c.permanent.as_ref().is_some_and(|p| p.province != 48));
    let mut bank = b.client("bank").await;
    let lives_in_048 = v1::IdentityClaim {
        reference: "r".into(),
        pid: format!("{:012}", mover.pid),
        permanent_residence: residence("048", ""),
        ..Default::default()
    };
    let verdict =
        async |bank: &mut lienthong_proto::v1::exchange_service_client::ExchangeServiceClient<
            _,
        >| {
            bank.verify_identity(kyc(lives_in_048.clone()))
                .await
                .unwrap()
                .into_inner()
                .verification
                .unwrap()
                .verdict()
        };
    assert_eq!(verdict(&mut bank).await, v1::Verdict::Mismatch);
    a.registry("police")
        .await
        .change_residence(v1::ChangeResidenceRequest {
            request_id: "r-1".into(),
            pid: format!("{:012}", mover.pid),
            kind: v1::ResidenceKind::Permanent as i32,
            residence: residence("048", "12 Bạch Đằng, Hải Châu"),
        })
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while verdict(&mut bank).await != v1::Verdict::Match {
        assert!(
            tokio::time::Instant::now() < until,
            "the write through a never reached b"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gateways sharing a store share each agency's daily quota: two of them
/// do not give an agency twice its quota, for single calls or a batch's
/// claims.
#[tokio::test]
async fn a_daily_quota_holds_for_gateways_sharing_a_store() {
    let a = TestGateway::start().await;
    let b = TestGateway::beside(&a, Duration::from_secs(3_600)).await;
    let me = a.find(|c| c.status == 0);
    let (mut on_a, mut on_b) = (a.client("rationed").await, b.client("rationed").await);
    // Quota 2: one call through each.
    on_a.verify_identity(kyc(named(me.pid, "x"))).await.unwrap();
    on_b.verify_identity(kyc(named(me.pid, "x"))).await.unwrap();
    for (gw, client) in [("a", &mut on_a), ("b", &mut on_b)] {
        let refused = client
            .verify_identity(kyc(named(me.pid, "x")))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "QUOTA_EXCEEDED", "through {gw}");
    }
    // Quota 5: a stream and three claims through a leave one; b's stream
    // takes it, and its one claim is refused.
    let batch = |id: &str, claims: usize| v1::VerifyBatchRequest {
        batch_id: id.into(),
        purpose: "KYC_ONBOARDING".into(),
        r#match: None,
        claims: vec![named(me.pid, "x"); claims],
    };
    let first = a
        .client("rationed-batch")
        .await
        .verify_batch(tokio_stream::iter(vec![batch("a", 3)]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(
        first
            .results
            .iter()
            .all(|r| matches!(r.outcome, Some(v1::claim_result::Outcome::Verification(_))))
    );
    let refused = b
        .client("rationed-batch")
        .await
        .verify_batch(tokio_stream::iter(vec![batch("b", 1)]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
}

/// A schema of the local PostgreSQL for one test, dropped after
/// (`LIENTHONG_TEST_POSTGRES_URL`, set by `scripts/test.sh`; by default
/// `postgres://postgres@127.0.0.1:5432/test`).
pub(crate) struct Schema {
    name: String,
}

fn postgres_url() -> String {
    std::env::var("LIENTHONG_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl Schema {
    pub(crate) fn new() -> Self {
        let name = format!("lienthong_it_{}", uuid::Uuid::now_v7().simple());
        let mut admin = postgres::Client::connect(&postgres_url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed: {e}", postgres_url()));
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .unwrap();
        Self { name }
    }

    /// The `--store` URL of a registry in this schema.
    pub(crate) fn url(&self) -> String {
        lienthong_gateway::registry::PostgresRegistry::in_schema(&postgres_url(), &self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // The client blocks: off the runtime's scheduling (a multi-thread
        // runtime's worker may block in place).
        let drop_schema = || {
            if let Ok(mut admin) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(drop_schema),
            Err(_) => drop_schema(),
        }
    }
}

/// Gives the replica whose data directory is `to` the first replica's
/// policy, PKI and signing key (from `first`), as the README says.
pub(crate) fn share_first(first: &std::path::Path, to: &std::path::Path) {
    for part in ["policy.toml", "pki", "keys"] {
        let from = first.join(part);
        if from.is_dir() {
            copy_tree(&from, &to.join(part));
        } else {
            std::fs::copy(&from, to.join(part)).unwrap();
        }
    }
}

/// Copies `from` into `to`, directories included.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Grants `vietcombank` a consent of citizen `pid` through replica
/// `through[0]`, has it used through `through[2]`, revokes it through
/// `through[1]`, and asserts that `through[2]` then refuses it at once.
pub(crate) async fn consent_revoked_across(
    pki: &lienthong_gateway::tls::PkiLayout,
    pid: u64,
    through: [std::net::SocketAddr; 3],
) {
    use crate::support::connect_as;
    use lienthong_proto::v1::citizen_service_client::CitizenServiceClient;
    use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
    let [grant, revoke, check] = through;
    let consent = CitizenServiceClient::new(connect_as(grant, pki, "vneid").await)
        .grant_consent(v1::GrantConsentRequest {
            citizen_pid: format!("{pid:012}"),
            agency: "vietcombank".into(),
            purpose: "CREDIT_APPLICATION".into(),
            fields: vec![v1::CitizenField::CurrentResidence as i32],
            expires_at: crate::support::in_secs(3_600),
        })
        .await
        .unwrap()
        .into_inner();
    let ask = v1::GetCitizenRequest {
        purpose: "CREDIT_APPLICATION".into(),
        pid: format!("{pid:012}"),
        fields: vec![v1::CitizenField::CurrentResidence as i32],
        consent_token: consent.token.clone(),
    };
    let mut bank = ExchangeServiceClient::new(connect_as(check, pki, "vietcombank").await);
    bank.get_citizen(ask.clone()).await.unwrap();
    CitizenServiceClient::new(connect_as(revoke, pki, "vneid").await)
        .revoke_consent(v1::RevokeConsentRequest {
            citizen_pid: format!("{pid:012}"),
            consent_id: consent.consent_id,
        })
        .await
        .unwrap();
    let refused = bank.get_citizen(ask).await.unwrap_err();
    assert_eq!(reason(&refused), "CONSENT_REVOKED");
}

/// Two `lienthong serve --store postgres://…` replicas over one database: the
/// first seeds it and publishes the outbox, the second waits to; a write
/// through one is verified through the other (at once when its seq is asked
/// for); its retry through the other gets the same receipt; with the first
/// killed, the second goes on answering and writing, and takes over
/// publishing: a consumer receives every seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_over_one_postgres_answer_as_one_gateway() {
    use crate::amqp::{EventTap, URL, unique};
    use crate::support::{connect_as, serve_args, spawn_serve, spawn_serve_logged};
    use lienthong_gateway::tls::PkiLayout;
    use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
    use lienthong_proto::v1::registry_service_client::RegistryServiceClient;

    let schema = tokio::task::spawn_blocking(Schema::new).await.unwrap();
    let store = schema.url();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let exchange = unique("replicas");
    let tap = EventTap::start(&exchange).await;
    let broker = ["--amqp-url", URL, "--events-exchange", &exchange];
    // C03's daily quota is 3 here, to spend it through both replicas.
    let policy = lienthong_gateway::policy::DEFAULT_POLICY;
    assert!(policy.contains("daily_quota = 20000\n"));
    std::fs::write(
        a_dir.path().join("policy.toml"),
        policy.replacen("daily_quota = 20000\n", "daily_quota = 3\n", 1),
    )
    .unwrap();
    let a_data = a_dir.path().to_str().unwrap();
    let mut a_args = serve_args(a_data, &["--store", &store, "--node-name", "gw-a"]);
    a_args.extend_from_slice(&broker);
    let (mut a, a_addr) = spawn_serve(&a_args).await;
    // The second replica is given the first's policy, PKI and signing key.
    share_first(a_dir.path(), b_dir.path());
    let b_data = b_dir.path().to_str().unwrap();
    let mut b_args = serve_args(b_data, &["--store", &store, "--node-name", "gw-b"]);
    b_args.extend_from_slice(&broker);
    let (mut b, b_addr, b_log) = spawn_serve_logged(&b_args).await;

    let pki = PkiLayout::under(a_dir.path());
    let population = lienthong_proto::population::Population::new(1, 2_000).unwrap();
    let person = population.iter().find(|c| c.status == 0).unwrap();
    let rename = v1::ChangeNameRequest {
        request_id: "replica-1".into(),
        pid: format!("{:012}", person.pid),
        full_name: "Lê Văn Thu".into(),
    };
    let receipt =
        RegistryServiceClient::new(connect_as(a_addr, &pki, "civil-registry-hanoi").await)
            .change_name(rename.clone())
            .await
            .unwrap()
            .into_inner()
            .receipt
            .unwrap();
    assert_eq!(receipt.seq, 1, "the shared outbox's first write");

    let mut bank_b = ExchangeServiceClient::new(connect_as(b_addr, &pki, "vietcombank").await);
    let answer = bank_b
        .verify_identity(at_least(
            kyc(named(person.pid, "Lê Văn Thu")),
            &receipt.seq.to_string(),
        ))
        .await
        .unwrap();
    assert!(seq_of(answer.metadata()) >= receipt.seq);
    assert_eq!(
        answer.into_inner().verification.unwrap().verdict(),
        v1::Verdict::Match
    );
    // The retry through the other replica: the same receipt.
    let mut civil_b =
        RegistryServiceClient::new(connect_as(b_addr, &pki, "civil-registry-hanoi").await);
    let again = civil_b
        .change_name(rename.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.receipt.unwrap(), receipt);
    // The same id for another request: refused through either replica.
    let reused = civil_b
        .change_name(v1::ChangeNameRequest {
            full_name: "Lê Văn Thuận".into(),
            ..rename.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (reused.code(), reason(&reused).as_str()),
        (Code::AlreadyExists, "REQUEST_ID_REUSED")
    );

    // A consent granted through one replica and revoked through the other
    // is refused through the first at once: the book is the database's.
    consent_revoked_across(&pki, person.pid, [a_addr, b_addr, a_addr]).await;

    // C03's quota of 3 holds for both: spent through both, refused by both.
    let investigate = || v1::VerifyIdentityRequest {
        purpose: "CRIMINAL_INVESTIGATION".into(),
        r#match: None,
        claim: Some(named(person.pid, "x")),
    };
    let mut c03_a = ExchangeServiceClient::new(connect_as(a_addr, &pki, "c03-investigation").await);
    let mut c03_b = ExchangeServiceClient::new(connect_as(b_addr, &pki, "c03-investigation").await);
    c03_a.verify_identity(investigate()).await.unwrap();
    c03_b.verify_identity(investigate()).await.unwrap();
    c03_a.verify_identity(investigate()).await.unwrap();
    for c03 in [&mut c03_b, &mut c03_a] {
        let refused = c03.verify_identity(investigate()).await.unwrap_err();
        assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
    }

    // The first replica publishes; the second waits.
    tap.wait_until(Duration::from_secs(20), "seq 1 published", |got| {
        got.iter().any(|m| m.seq() == 1)
    })
    .await;
    let said = |what: &str| b_log.lock().unwrap().iter().any(|l| l.contains(what));
    assert!(said("another gateway publishes the outbox"));
    assert!(!said("this gateway publishes the outbox"));

    // The first replica dies; the second answers.
    a.kill().await.unwrap();
    let answer = bank_b
        .verify_identity(kyc(named(person.pid, "Lê Văn Thu")))
        .await
        .unwrap();
    assert_eq!(
        answer.into_inner().verification.unwrap().verdict(),
        v1::Verdict::Match
    );
    let moved = civil_b
        .change_name(v1::ChangeNameRequest {
            request_id: "replica-2".into(),
            full_name: "Lê Văn Thuận".into(),
            ..rename
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(moved.seq, 2, "seq goes on, gap-free, through the survivor");
    // ... and publishes: it took over.
    let got = tap
        .wait_until(Duration::from_secs(20), "seq 2 published", |got| {
            got.iter().any(|m| m.seq() == 2)
        })
        .await;
    let seqs: std::collections::BTreeSet<u64> = got.iter().map(|m| m.seq()).collect();
    assert_eq!(seqs, [1, 2].into());
    assert!(said("this gateway publishes the outbox"));
    // A replica on PostgreSQL stops cleanly: its connections close, its
    // audit log gets its last checkpoint.
    let status = crate::support::terminate(&mut b, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {:#?}", b_log.lock().unwrap());
    tap.delete().await;
    crate::amqp::delete_exchange(&exchange).await;
}

/// `lienthong seed --store` fills an empty shared store (with a sample to
/// try queries with) and refuses a filled one; `lienthong outbox --store`
/// reads its outbox and says no replica has published yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_and_outbox_work_on_the_shared_store() {
    use crate::process::{run, text};
    let schema = tokio::task::spawn_blocking(Schema::new).await.unwrap();
    let store = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let sample = dir.path().join("sample.jsonl");
    let seed = [
        "seed",
        "--data-dir",
        data,
        "--store",
        &store,
        "--citizens",
        "3000",
        "--sample-out",
        sample.to_str().unwrap(),
        "--sample-size",
        "10",
    ];
    let out = tokio::task::block_in_place(|| run(&seed));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("seeded 3000 citizens into the shared store"),
        "{}",
        text(&out.stdout)
    );
    let lines = std::fs::read_to_string(&sample).unwrap();
    assert_eq!(lines.lines().count(), 10);
    // Nothing in the data directory: the registry is the database's.
    assert!(!dir.path().join("registry.db").exists());
    let again = tokio::task::block_in_place(|| run(&seed));
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already holds citizens"),
        "{}",
        text(&again.stderr)
    );
    let out =
        tokio::task::block_in_place(|| run(&["outbox", "--data-dir", data, "--store", &store]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("last event seq      0"), "{said}");
    assert!(said.contains("publisher           none yet"), "{said}");
}
