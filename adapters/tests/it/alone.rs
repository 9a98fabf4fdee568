//! One adapter run alone, as deployments run it: the real
//! `lienthong-adapter --sector health` binary, with the gateway's PKI and no
//! broker. It answers the gateway's look-ups from the seeded population,
//! refuses everyone else, and stops cleanly on SIGTERM.

use std::time::Duration;

use lienthong_adapters::framework::Base;
use lienthong_gateway::tls::{PkiLayout, ensure_pki};
use lienthong_proto::Pid;
use lienthong_proto::adapter::v1::sector_adapter_service_client::SectorAdapterServiceClient;
use lienthong_proto::adapter::v1::{DescribeRequest, LookupRequest};
use lienthong_proto::pki::adapter_server_name;
use lienthong_proto::population::Population;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lienthong-adapter");

async fn client(
    addr: &str,
    pki: &PkiLayout,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) -> SectorAdapterServiceClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(pki.ca_cert()).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ))
        .domain_name(adapter_server_name("health"));
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    SectorAdapterServiceClient::new(channel)
}

/// The health adapter binary over `dir` and `pki` (2,000 citizens, seed 5,
/// no broker) with `extra` flags: the child, the address it listens on, and
/// where its metrics are served, if they are.
async fn spawn_adapter(
    dir: &tempfile::TempDir,
    pki: &PkiLayout,
    extra: &[&str],
) -> (tokio::process::Child, String, Option<String>) {
    spawn_sector("health", dir, pki, extra).await
}

/// [`spawn_adapter`] of `sector`.
pub(crate) async fn spawn_sector(
    sector: &str,
    dir: &tempfile::TempDir,
    pki: &PkiLayout,
    extra: &[&str],
) -> (tokio::process::Child, String, Option<String>) {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--sector",
            sector,
            "--listen",
            "127.0.0.1:0",
            "--citizens",
            "2000",
            "--seed",
            "5",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.path().join("adapters"))
        .arg("--pki-dir")
        .arg(&pki.root)
        // No broker: look-ups are served all the same.
        .env("LIENTHONG_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut metrics = None;
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("metrics=").nth(1) {
                metrics = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.split("listen=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the adapter exited before listening");
    })
    .await
    .expect("listens within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr, metrics)
}

/// The PKI under `dir`, with the gateway's public signing key published.
pub(crate) fn pki_under(dir: &tempfile::TempDir) -> PkiLayout {
    let pki = PkiLayout::under(dir.path());
    ensure_pki(&pki, ["vietcombank"]).unwrap();
    // The gateway's public key, which the adapter checks events with.
    let key = lienthong_gateway::signing::SigningKey::ephemeral();
    lienthong_gateway::tls::publish_signing_key(&pki, &key.verifying_key()).unwrap();
    pki
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_alone_answers_the_gateway_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki_under(&dir);
    let (mut child, addr, metrics) =
        spawn_adapter(&dir, &pki, &["--metrics-listen", "127.0.0.1:0"]).await;
    // Its metrics: the highest event seq applied, none yet.
    let metrics = metrics.expect("the metrics address is logged");
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut scrape = tokio::net::TcpStream::connect(&metrics).await.unwrap();
        scrape
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        tokio::time::timeout(Duration::from_secs(10), scrape.read_to_string(&mut body))
            .await
            .unwrap()
            .unwrap();
        if body
            .lines()
            .any(|l| l == "lienthong_adapter_applied_seq{sector=\"health\"} 0")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The port never waits on a silent client: a connection that does not
    // complete its TLS handshake is closed at the handshake deadline (3 s;
    // idle connections only after 5 min).
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let silent = tokio::spawn(closed(silent, "a connection without a handshake"));

    let mut gateway = client(
        &addr,
        &pki,
        pki.gateway_client_cert(),
        pki.gateway_client_key(),
    )
    .await;
    let described = gateway
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.sector, "health");
    assert_eq!(described.queries, ["insurance_card", "vaccinations"]);
    assert_eq!(described.routing_keys, ["citizen.born", "citizen.died"]);

    let population = Population::new(5, 2000).unwrap();
    let base = Base {
        seed: 5,
        today: population.reference_date(),
    };
    let health = lienthong_adapters::sectors::by_name("health").unwrap();
    for citizen in population.iter().step_by(50) {
        let pid = Pid::from_u64(citizen.pid).unwrap().to_string();
        let got = gateway
            .lookup(LookupRequest {
                pid: pid.clone(),
                query: "insurance_card".into(),
                ..Default::default()
            })
            .await;
        match health.derive("insurance_card", &citizen, &base) {
            Some(truth) => assert_eq!(got.unwrap().into_inner().answer, Some(truth)),
            None => assert_eq!(got.unwrap_err().code(), Code::NotFound),
        }
    }
    let status = gateway
        .lookup(LookupRequest {
            pid: "001085000123".into(),
            query: "shoe_size".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("insurance_card"),
        "{}",
        status.message()
    );

    // An agency's certificate, from the same CA, is refused.
    let mut agency = client(
        &addr,
        &pki,
        pki.agency_cert("vietcombank"),
        pki.agency_key("vietcombank"),
    )
    .await;
    let status = agency.describe(DescribeRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    silent.await.unwrap();

    let id = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &id])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.path().join("adapters/health.db").is_file());
    // The sector's records are this user's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("adapters"), 0o700);
    assert_eq!(mode("adapters/health.db"), 0o600);
}

/// Reads `io` until the adapter closes it, within a deadline well past any
/// limit of the port's.
async fn closed(mut io: impl tokio::io::AsyncRead + Unpin, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(n) = io.read(&mut buf).await
            && n > 0
        {}
    })
    .await
    .unwrap_or_else(|_| panic!("{what} is still open after 20 s"));
}

/// A connection that completes its handshake, then carries no call, is
/// closed at `--connection-idle-ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapters_port_closes_connections_that_carry_nothing() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let dir = tempfile::tempdir().unwrap();
    let pki = pki_under(&dir);
    let (_child, addr, _) = spawn_adapter(&dir, &pki, &["--connection-idle-ms", "1000"]).await;

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca_cert()).unwrap())
        .unwrap();
    let chain = CertificateDer::pem_file_iter(pki.gateway_client_cert())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.gateway_client_key()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            ServerName::try_from(adapter_server_name("health")).unwrap(),
            tcp,
        )
        .await
        .expect("the gateway's certificate completes the handshake");
    closed(tls, "an authenticated connection without a call").await;
}
