//! Mutual TLS: no valid client certificate, no service. Health and
//! reflection answer on the same port.

use lienthong_gateway::tls::{PkiLayout, ensure_pki};
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::exchange::{claim_of, kyc};
use crate::support::{TestGateway, connect, reason};

/// How a call over a channel made with some identity went.
#[derive(Debug, PartialEq)]
enum Call {
    /// The gateway answered (possibly with a refusal carrying an ErrorInfo).
    Served(String),
    /// The TLS handshake was refused with this alert: no gRPC answer at all.
    Refused(String),
}

/// Calls VerifyIdentity over a channel made with `identity` (None: no
/// client certificate).
async fn try_call(
    gw: &TestGateway,
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Call {
    let alert = |e: &dyn std::fmt::Debug| {
        let text = format!("{e:?}");
        let at = text
            .find("received fatal alert: ")
            .expect("refused by a TLS alert");
        Call::Refused(text[at + 22..].split('"').next().unwrap().to_owned())
    };
    let channel = match connect(gw.addr, ca, identity).await {
        Ok(channel) => channel,
        Err(e) => return alert(&e),
    };
    let c = gw.find(|_| true);
    match ExchangeServiceClient::new(channel)
        .verify_identity(kyc(claim_of(&c, "r")))
        .await
    {
        Ok(_) => Call::Served("OK".into()),
        // An ErrorInfo means the gateway itself answered.
        Err(status) if !reason(&status).is_empty() => Call::Served(reason(&status)),
        Err(status) => alert(&status),
    }
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused() {
    let gw = TestGateway::start().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let rogue = PkiLayout::under(elsewhere.path());
    // Same agency name, issued by a CA the gateway does not trust.
    ensure_pki(&rogue, ["bank"]).unwrap();
    let refused = try_call(
        &gw,
        &gw.pki.ca_cert(),
        Some((&rogue.agency_cert("bank"), &rogue.agency_key("bank"))),
    )
    .await;
    // rustls fails the client's CertificateVerify against the gateway's roots.
    assert!(
        matches!(refused, Call::Refused(_)),
        "a foreign certificate was accepted: {refused:?}"
    );
    // The control: the gateway's own certificate for the same agency works.
    let accepted = try_call(
        &gw,
        &gw.pki.ca_cert(),
        Some((&gw.pki.agency_cert("bank"), &gw.pki.agency_key("bank"))),
    )
    .await;
    assert_eq!(accepted, Call::Served("OK".into()));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let gw = TestGateway::start().await;
    let refused = try_call(&gw, &gw.pki.ca_cert(), None).await;
    assert_eq!(refused, Call::Refused("CertificateRequired".into()));
}

#[tokio::test]
async fn an_agency_missing_from_the_policy_is_refused() {
    let gw = TestGateway::start().await;
    // A valid certificate from the gateway's own CA, for an agency the
    // policy does not list.
    ensure_pki(&gw.pki, ["stranger"]).unwrap();
    let refused = try_call(
        &gw,
        &gw.pki.ca_cert(),
        Some((
            &gw.pki.agency_cert("stranger"),
            &gw.pki.agency_key("stranger"),
        )),
    )
    .await;
    assert_eq!(refused, Call::Served("AGENCY_UNKNOWN".into()));
}

#[tokio::test]
async fn health_and_reflection_on_the_same_port() {
    let gw = TestGateway::start().await;
    let channel = gw.channel("bank").await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "lienthong.v1.ExchangeService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    for version in ["v1", "v1alpha"] {
        let services = list_services(channel.clone(), version).await;
        assert!(
            services.contains(&"lienthong.v1.ExchangeService".to_owned()),
            "{version}: {services:?}"
        );
        assert!(
            services.contains(&"grpc.health.v1.Health".to_owned()),
            "{version}: {services:?}"
        );
    }
}

async fn list_services(channel: tonic::transport::Channel, version: &str) -> Vec<String> {
    use tokio_stream::StreamExt;
    macro_rules! list {
        ($pb:path) => {{
            use $pb as pb;
            let mut client = pb::server_reflection_client::ServerReflectionClient::new(channel);
            let request = pb::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(pb::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            };
            let mut answers = client
                .server_reflection_info(tokio_stream::iter(vec![request]))
                .await
                .unwrap()
                .into_inner();
            match answers
                .next()
                .await
                .unwrap()
                .unwrap()
                .message_response
                .unwrap()
            {
                pb::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
                    l.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("unexpected reflection answer {other:?}"),
            }
        }};
    }
    match version {
        "v1" => list!(tonic_reflection::pb::v1),
        _ => list!(tonic_reflection::pb::v1alpha),
    }
}

/// A TLS connection to the gateway offering only `version`, presenting the
/// bank's certificate, or the handshake's error.
async fn connect_tls(
    gw: &TestGateway,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    connect_tls_as(gw, "bank", version).await
}

/// [`connect_tls`] presenting `agency`'s certificate.
async fn connect_tls_as(
    gw: &TestGateway,
    agency: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(gw.pki.ca_cert()).unwrap())
        .unwrap();
    let chain = CertificateDer::pem_file_iter(gw.pki.agency_cert(agency))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(gw.pki.agency_key(agency)).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// A TLS handshake with the gateway offering only `version`: the
/// negotiated version, or the error.
async fn handshake(
    gw: &TestGateway,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<rustls::ProtocolVersion, String> {
    let tls = connect_tls(gw, version).await?;
    Ok(tls.get_ref().1.protocol_version().unwrap())
}

#[tokio::test]
async fn a_tls_1_2_client_is_refused_with_a_valid_certificate() {
    let gw = TestGateway::start().await;
    let refused = handshake(&gw, &rustls::version::TLS12).await.unwrap_err();
    assert!(refused.contains("ProtocolVersion"), "{refused}");
    // The control: the same client offering TLS 1.3 completes.
    assert_eq!(
        handshake(&gw, &rustls::version::TLS13).await,
        Ok(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn connections_that_send_nothing_never_keep_a_client_out() {
    // Handshakes that could wait a minute: only the bound on handshakes in
    // progress can let a new client in before then.
    let gw = TestGateway::with_limits(lienthong_gateway::api::ServerLimits {
        handshake_timeout: std::time::Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..lienthong_gateway::tls::MAX_HANDSHAKES + 8 {
        silent.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    // A client that completes its handshake gets in, well before any silent
    // connection's deadline (loose: 20 s of 60).
    let served = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        try_call(
            &gw,
            &gw.pki.ca_cert(),
            Some((&gw.pki.agency_cert("bank"), &gw.pki.agency_key("bank"))),
        )
        .await
    })
    .await
    .expect("a new client is let in while silent connections wait");
    assert_eq!(served, Call::Served("OK".into()));
    // The bound holds: the oldest silent connections were closed to make
    // room (their reads end), long before their own deadline.
    use tokio::io::AsyncReadExt;
    for (i, tcp) in silent.iter_mut().take(8).enumerate() {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), tcp.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("silent connection {i} is still open"));
        assert!(matches!(read, Ok(0) | Err(_)), "{i}: {read:?}");
    }
}

#[tokio::test]
async fn a_connection_that_carries_no_call_is_closed_and_one_with_a_call_open_is_kept() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tonic::codegen::{Bytes, http};
    const IDLE: Duration = Duration::from_millis(300);
    let gw = TestGateway::with_limits(lienthong_gateway::api::ServerLimits {
        connection_idle: IDLE,
        ..Default::default()
    })
    .await;

    // Authenticated, then silent: the gateway closes it (loose: 20 s).
    let mut silent = connect_tls(&gw, &rustls::version::TLS13).await.unwrap();
    let mut byte = [0u8; 64];
    let read = async {
        loop {
            // The server's HTTP/2 settings come first, then the end.
            match silent.read(&mut byte).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a connection without a call is closed");

    // HTTP/2 with a health watch open: kept while the call is open, though
    // it sends nothing for many times the limit.
    let tls = connect_tls(&gw, &rustls::version::TLS13).await.unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let mut connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let watch = http::Request::post(format!("https://{}/grpc.health.v1.Health/Watch", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(watch, false).unwrap();
    // An empty HealthCheckRequest (the server as a whole), framed.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), response)
        .await
        .expect("the watch is answered")
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answers = response.into_body();
    assert!(
        tokio::time::timeout(Duration::from_secs(20), answers.data())
            .await
            .expect("the first status comes")
            .is_some()
    );
    assert!(
        tokio::time::timeout(IDLE * 6, &mut connection)
            .await
            .is_err(),
        "the connection was closed with a call open on it"
    );
    // The call ends (the client resets it): the connection is idle, then
    // closed.
    body.send_reset(h2::Reason::CANCEL);
    drop((answers, body, client));
    let ended = tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("the connection is closed once its call has ended");
    // The server closed it: the client task ended without being aborted.
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn one_agency_holds_at_most_its_connections_and_the_others_still_connect() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let gw = TestGateway::with_limits(lienthong_gateway::api::ServerLimits {
        max_connections_per_agency: 2,
        ..Default::default()
    })
    .await;
    let tls13 = &rustls::version::TLS13;
    // Two of the bank's connections, each taken by the server (its HTTP/2
    // settings come), held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = connect_tls_as(&gw, "bank", tls13).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(20), tls.read(&mut byte))
            .await
            .expect("the server speaks first");
        assert!(matches!(read, Ok(1)), "{read:?}");
        held.push(tls);
    }
    // A third is closed as its handshake ends: its reads end.
    if let Ok(mut third) = connect_tls_as(&gw, "bank", tls13).await {
        let mut buf = [0u8; 64];
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(n) = third.read(&mut buf).await
                && n > 0
            {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "a third connection of the bank is still open"
        );
    }
    // Another agency is not held back.
    let health = |channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(|r| r.into_inner().status())
    };
    assert_eq!(
        health(gw.channel("telco").await).await.unwrap(),
        ServingStatus::Serving
    );
    // One of the bank's closes: its place comes back.
    held.pop();
    let served = tokio::time::timeout(Duration::from_secs(20), async {
        let (cert, key) = (gw.pki.agency_cert("bank"), gw.pki.agency_key("bank"));
        loop {
            if let Ok(channel) = connect(gw.addr, &gw.pki.ca_cert(), Some((&cert, &key))).await
                && let Ok(status) = health(channel).await
            {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the bank connects again once one of its connections closed");
    assert_eq!(served, ServingStatus::Serving);
}
