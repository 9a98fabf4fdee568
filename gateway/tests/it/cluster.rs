//! The cluster's proof: three `lienthong serve` replicas over one
//! PostgreSQL publishing to the local RabbitMQ, 20,000 registry writes
//! from writers spread over all three, the publishing replica SIGKILLed
//! mid-stream and started again later, a verification load throughout.
//!
//! ```text
//! writers ──▶ a (publishes) ──┐                       ┌─▶ tap: every seq
//!        ──▶ b ───────────────┼─▶ PostgreSQL outbox ──┤
//!        ──▶ c ───────────────┘   (seq gap-free)      └─ relay of one replica
//!   acked 5,000: SIGKILL a; b or c takes over publishing
//!   acked 12,000: a starts again, and waits to publish
//! ```
//!
//! A write whose replica dies before answering is retried, with the same
//! request id, through the next replica: it gets the receipt of the first
//! commit if there was one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lienthong_gateway::tls::PkiLayout;
use lienthong_proto::v1;
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use lienthong_proto::v1::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;

use crate::amqp::{EventTap, URL, unique};
use crate::exchange::kyc;
use crate::process::{Log, run, serve_args, spawn_serve_logged, text};
use crate::replicas::{Schema, share_first};
use crate::support::{connect, connect_as};

/// Registry writes in all.
const WRITES: u64 = 20_000;
/// Writers at once.
const WRITERS: u64 = 12;
/// Acknowledged writes before the publisher is killed, and before it is
/// started again.
const KILL_AT: u64 = 5_000;
const RESTART_AT: u64 = 12_000;
/// Parts of the names the writes give: a citizen's `r`-th write gives the
/// `r`-th name, never the one it holds (which the registry refuses).
const FAMILY: [&str; 4] = ["Lê", "Nguyễn", "Trần", "Phạm"];
const MIDDLE: [&str; 4] = ["Văn", "Thị", "Minh", "Thu"];
const GIVEN: [&str; 4] = ["Thu", "Hoa", "Đức", "Hà"];

/// The `r`-th name (of 64).
fn name(r: usize) -> String {
    format!(
        "{} {} {}",
        FAMILY[r % 4],
        MIDDLE[r / 4 % 4],
        GIVEN[r / 16 % 4]
    )
}

/// Where each replica listens, `None` while it is down.
type Addrs = Arc<Mutex<[Option<SocketAddr>; 3]>>;

/// A caller's connections to the replicas, remade when one's address changes.
struct Links<C> {
    pki: PkiLayout,
    agency: &'static str,
    held: [Option<(SocketAddr, C)>; 3],
    make: fn(Channel) -> C,
}

impl<C: Clone> Links<C> {
    fn new(pki: &PkiLayout, agency: &'static str, make: fn(Channel) -> C) -> Self {
        Self {
            pki: pki.clone(),
            agency,
            held: [None, None, None],
            make,
        }
    }

    /// A client of replica `i`, if it is up and takes connections.
    async fn to(&mut self, i: usize, addrs: &Addrs) -> Option<C> {
        let addr = addrs.lock().unwrap()[i]?;
        if let Some((at, client)) = &self.held[i]
            && *at == addr
        {
            return Some(client.clone());
        }
        let identity = (
            self.pki.agency_cert(self.agency),
            self.pki.agency_key(self.agency),
        );
        let channel = connect(addr, &self.pki.ca_cert(), Some((&identity.0, &identity.1)))
            .await
            .ok()?;
        let client = (self.make)(channel);
        self.held[i] = Some((addr, client.clone()));
        Some(client)
    }
}

/// One acknowledged write: what was asked, what came back, through which replica.
#[derive(Clone)]
struct Acked {
    request: v1::ChangeNameRequest,
    receipt: v1::RegistryReceipt,
    through: usize,
}

/// Writes `k`, `k + WRITERS`, … through replica `k % 3` first, the next
/// ones when it is down, until each is acknowledged.
async fn writer(
    first: u64,
    addrs: Addrs,
    pki: PkiLayout,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> Result<(), String> {
    let population = lienthong_proto::population::Population::new(1, 2_000).unwrap();
    // The living: a name change of the dead is refused.
    let living: Vec<u64> = population
        .iter()
        .filter(|c| c.status == 0)
        .map(|c| c.pid)
        .collect();
    let mut links = Links::new(&pki, "civil-registry-hanoi", RegistryServiceClient::new);
    for k in (first..WRITES).step_by(WRITERS as usize) {
        let request = v1::ChangeNameRequest {
            request_id: format!("cluster-{k}"),
            pid: format!("{:012}", living[k as usize % living.len()]),
            full_name: name(k as usize / living.len()),
        };
        let until = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut at = k as usize % 3;
        let receipt = loop {
            if tokio::time::Instant::now() > until {
                return Err(format!("write {k} not acknowledged within 120 s"));
            }
            if let Some(mut client) = links.to(at, &addrs).await {
                match client.change_name(request.clone()).await {
                    Ok(answer) => break answer.into_inner().receipt.unwrap(),
                    // This agency over its rate there: the next one.
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => {}
                    // Only the replica that was killed may go away
                    // mid-call; then the next one.
                    Err(s)
                        if at == 0
                            && matches!(
                                s.code(),
                                tonic::Code::Unavailable
                                    | tonic::Code::Unknown
                                    | tonic::Code::Cancelled
                                    | tonic::Code::Internal
                            ) => {}
                    Err(s) => return Err(format!("write {k} through replica {at}: {s:?}")),
                }
            } else if at != 0 {
                return Err(format!("write {k}: replica {at} took no connection"));
            }
            at = (at + 1) % 3;
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        acked.lock().unwrap().push(Acked {
            request,
            receipt,
            through: at,
        });
    }
    Ok(())
}

/// Verification calls on each replica in turn until `stop`: (answered,
/// failed) per replica, and answered by b and c after `killed`.
async fn verifier(
    addrs: Addrs,
    pki: PkiLayout,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
) -> ([u64; 3], [u64; 3], u64) {
    let population = lienthong_proto::population::Population::new(1, 2_000).unwrap();
    let someone = population.iter().next().unwrap();
    let mut links = Links::new(&pki, "vietcombank", ExchangeServiceClient::new);
    let (mut answered, mut failed, mut after_kill) = ([0; 3], [0; 3], 0);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let at = i % 3;
        i += 1;
        let Some(mut client) = links.to(at, &addrs).await else {
            continue;
        };
        let claim = v1::IdentityClaim {
            reference: "r".into(),
            pid: format!("{:012}", someone.pid),
            full_name: Some(someone.full_name.clone()),
            ..Default::default()
        };
        let was_killed = killed.load(Ordering::Relaxed);
        match client.verify_identity(kyc(claim)).await {
            Ok(_) => {
                answered[at] += 1;
                if was_killed && at != 0 {
                    after_kill += 1;
                }
            }
            Err(_) => failed[at] += 1,
        }
    }
    (answered, failed, after_kill)
}

fn said(log: &Log, what: &str) -> bool {
    log.lock().unwrap().iter().any(|l| l.contains(what))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_no_write_when_the_publisher_is_killed() {
    let schema = tokio::task::spawn_blocking(Schema::new).await.unwrap();
    let store = schema.url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let exchange = unique("cluster");
    let tap = EventTap::start(&exchange).await;
    let data: Vec<&str> = dirs.iter().map(|d| d.path().to_str().unwrap()).collect();
    let args = |i: usize| {
        let mut args = serve_args(data[i], &["--store", &store]);
        args.extend_from_slice(&["--amqp-url", URL, "--events-exchange", &exchange]);
        args.extend_from_slice(&["--node-name", ["gw-a", "gw-b", "gw-c"][i]]);
        args
    };
    // a seeds the store and takes the relay's lock; b and c get its
    // policy, PKI and signing key.
    let (mut a, a_addr, a_log) = spawn_serve_logged(&args(0)).await;
    crate::support::wait_for(Duration::from_secs(20), "a publishes", || {
        said(&a_log, "this gateway publishes the outbox")
    })
    .await;
    for dir in &dirs[1..] {
        share_first(dirs[0].path(), dir.path());
    }
    let (_b, b_addr, b_log) = spawn_serve_logged(&args(1)).await;
    let (_c, c_addr, c_log) = spawn_serve_logged(&args(2)).await;
    let addrs: Addrs = Arc::new(Mutex::new([Some(a_addr), Some(b_addr), Some(c_addr)]));
    let pki = PkiLayout::under(dirs[0].path());

    let acked = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addrs, pki, acked, errors) =
                (addrs.clone(), pki.clone(), acked.clone(), errors.clone());
            tokio::spawn(async move {
                if let Err(e) = writer(w, addrs, pki, acked).await {
                    errors.lock().unwrap().push(e);
                }
            })
        })
        .collect();
    let (stop, killed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let verifying = tokio::spawn(verifier(
        addrs.clone(),
        pki.clone(),
        stop.clone(),
        killed.clone(),
    ));
    let count = || acked.lock().unwrap().len() as u64;
    let began = std::time::Instant::now();

    let wait_acked = async |n: u64| {
        let until = tokio::time::Instant::now() + Duration::from_secs(180);
        while count() < n {
            assert_eq!(*errors.lock().unwrap(), Vec::<String>::new());
            assert!(
                tokio::time::Instant::now() < until,
                "{} of {n} acknowledged",
                count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_acked(KILL_AT).await;
    addrs.lock().unwrap()[0] = None;
    a.kill().await.unwrap();
    let killed_at = std::time::Instant::now();
    killed.store(true, Ordering::Relaxed);
    // b or c takes over publishing.
    crate::support::wait_for(Duration::from_secs(10), "b or c publishes", || {
        said(&b_log, "this gateway publishes the outbox")
            || said(&c_log, "this gateway publishes the outbox")
    })
    .await;
    let takeover = killed_at.elapsed();
    let publisher = if said(&b_log, "this gateway publishes") {
        "gw-b"
    } else {
        "gw-c"
    };

    wait_acked(RESTART_AT).await;
    let (_a, a_addr, a_log) = spawn_serve_logged(&args(0)).await;
    addrs.lock().unwrap()[0] = Some(a_addr);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(*errors.lock().unwrap(), Vec::<String>::new());
    let writing = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (answered, failed, after_kill) = verifying.await.unwrap();
    let acked = acked.lock().unwrap().clone();

    // Every write acknowledged once, each with its own seq: 1..=WRITES.
    assert_eq!(acked.len() as u64, WRITES);
    let seqs: BTreeSet<u64> = acked.iter().map(|w| w.receipt.seq).collect();
    assert_eq!(
        seqs,
        (1..=WRITES).collect(),
        "receipts' seqs are 1..={WRITES}"
    );
    // Every replica committed some, and names itself in their receipts.
    let nodes: BTreeMap<&str, usize> = acked.iter().fold(BTreeMap::new(), |mut n, w| {
        *n.entry(w.receipt.node.as_str()).or_default() += 1;
        n
    });
    assert_eq!(
        nodes.keys().copied().collect::<Vec<_>>(),
        ["gw-a", "gw-b", "gw-c"],
        "{nodes:?}"
    );
    // The outbox holds each write once, gap-free.
    let url = store.clone();
    let (rows, lowest, highest): (i64, i64, i64) = tokio::task::spawn_blocking(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = db
            .query_one("SELECT count(*), min(seq), max(seq) FROM outbox", &[])
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    })
    .await
    .unwrap();
    assert_eq!((rows, lowest, highest), (WRITES as i64, 1, WRITES as i64));

    // Every answer a writer received has its audit record in PostgreSQL,
    // those of the SIGKILLed replica included; every chain verifies, a's
    // continued across its restart under the same node name.
    let (url, ids) = (
        store.clone(),
        acked
            .iter()
            .map(|w| w.request.request_id.clone())
            .collect::<Vec<_>>(),
    );
    let unaudited: i64 = tokio::task::spawn_blocking(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.query_one(
            "SELECT count(*) FROM unnest($1::text[]) AS w(id) WHERE NOT EXISTS (
                 SELECT 1 FROM audit_record r WHERE r.request_id = w.id
                   AND r.operation = 'change_name' AND r.outcome = 'OK')",
            &[&ids],
        )
        .unwrap()
        .get(0)
    })
    .await
    .unwrap();
    assert_eq!(unaudited, 0, "acknowledged writes without an audit record");
    let verified = run(&["audit", "verify", "--data-dir", data[0], "--store", &store]);
    assert!(
        verified.status.success(),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
    assert!(text(&verified.stdout).contains("audit log verified: 3 chains"));
    assert!(
        a_log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("chain continues") && !l.contains("seq=0")),
        "the restarted a continues its chain"
    );

    // A consumer receives every seq (duplicates allowed).
    let until = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<u64> = tap.received().iter().map(|m| m.seq()).collect();
        if got.len() as u64 == WRITES && got.first() == Some(&1) && got.last() == Some(&WRITES) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} of {WRITES} seqs received",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged write, retried through another replica: the same
    // receipt, and nothing new in the outbox.
    let retried = Arc::new(Mutex::new(0u64));
    let per = acked.len().div_ceil(WRITERS as usize);
    let retries: Vec<_> = acked
        .chunks(per)
        .map(|chunk| {
            let (chunk, addrs, pki, retried) =
                (chunk.to_vec(), addrs.clone(), pki.clone(), retried.clone());
            tokio::spawn(async move {
                let mut links =
                    Links::new(&pki, "civil-registry-hanoi", RegistryServiceClient::new);
                for w in chunk {
                    let mut client = links.to((w.through + 1) % 3, &addrs).await.unwrap();
                    // Held to the agency's rate, as a client would be.
                    let until = tokio::time::Instant::now() + Duration::from_secs(60);
                    let again = loop {
                        match client.change_name(w.request.clone()).await {
                            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                                assert!(tokio::time::Instant::now() < until, "{s:?}");
                                tokio::time::sleep(Duration::from_millis(10)).await
                            }
                            answer => break answer.unwrap(),
                        }
                    };
                    assert_eq!(again.into_inner().receipt.unwrap(), w.receipt);
                    *retried.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for r in retries {
        r.await.unwrap();
    }
    assert_eq!(*retried.lock().unwrap(), WRITES);

    // Every replica's projection has followed every write by itself (no
    // x-lienthong-min-seq: its follower read them): the last name each of
    // 50 written citizens was given is verified through each replica.
    let mut last: BTreeMap<&str, &Acked> = BTreeMap::new();
    for w in &acked {
        let at = last.entry(w.request.pid.as_str()).or_insert(w);
        if w.receipt.seq > at.receipt.seq {
            *at = w;
        }
    }
    let addresses: Vec<SocketAddr> = addrs.lock().unwrap().iter().map(|a| a.unwrap()).collect();
    for addr in addresses {
        let mut bank = ExchangeServiceClient::new(connect_as(addr, &pki, "vietcombank").await);
        for w in last.values().take(50) {
            let claim = v1::IdentityClaim {
                reference: "r".into(),
                pid: w.request.pid.clone(),
                full_name: Some(w.request.full_name.clone()),
                ..Default::default()
            };
            let until = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let verdict = match bank.verify_identity(kyc(claim.clone())).await {
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => None,
                    answer => Some(answer.unwrap().into_inner().verification.unwrap().verdict()),
                };
                if verdict == Some(v1::Verdict::Match) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < until,
                    "{} through {addr}: {verdict:?}",
                    w.request.pid
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    // A consent granted through b and revoked through c is refused through
    // the restarted a at once: every replica reads the book in the database.
    let person = lienthong_proto::population::Population::new(1, 2_000)
        .unwrap()
        .iter()
        .find(|c| c.status == 0)
        .unwrap();
    let (a_addr, b_addr, c_addr) = {
        let addrs = addrs.lock().unwrap();
        (addrs[0].unwrap(), addrs[1].unwrap(), addrs[2].unwrap())
    };
    crate::replicas::consent_revoked_across(&pki, person.pid, [b_addr, c_addr, a_addr]).await;

    // b and c answered verifications throughout, the kill included.
    assert_eq!(
        (failed[1], failed[2]),
        (0, 0),
        "answered {answered:?}, failed {failed:?}"
    );
    assert!(
        after_kill > 0,
        "answered {answered:?} ({after_kill} after the kill)"
    );
    // The restarted a waits; `lienthong outbox` names the publisher.
    assert!(said(&a_log, "another gateway publishes the outbox"));
    let out = run(&["outbox", "--data-dir", data[1], "--store", &store]);
    let said_out = text(&out.stdout);
    assert!(out.status.success(), "{said_out}{}", text(&out.stderr));
    assert!(
        said_out.contains(&format!("publisher           {publisher} (since ")),
        "{said_out}"
    );
    assert!(
        said_out.contains(&format!("last event seq      {WRITES}")),
        "{said_out}"
    );
    eprintln!(
        "cluster: {WRITES} writes in {:.1} s ({:.0}/s) by {nodes:?}; publishing taken over {} ms after the kill; verifications answered {answered:?}",
        writing.as_secs_f64(),
        WRITES as f64 / writing.as_secs_f64(),
        takeover.as_millis(),
    );
    tap.delete().await;
    crate::amqp::delete_exchange(&exchange).await;
}
