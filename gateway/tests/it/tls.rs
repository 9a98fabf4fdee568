//! Mutual TLS: no valid client certificate, no service. Health and
//! reflection answer on the same port.

use lienthong_gateway::tls::{PkiLayout, ensure_pki};
use lienthong_proto::v1::exchange_service_client::ExchangeServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::exchange::{claim_of, kyc};
use crate::support::{TestGateway, connect};

/// Calls VerifyIdentity over a channel made with `identity` (None: no
/// client certificate); Ok if it was answered.
async fn try_call(
    gw: &TestGateway,
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(), String> {
    let channel = connect(gw.addr, ca, identity)
        .await
        .map_err(|e| e.to_string())?;
    let c = gw.find(|_| true);
    ExchangeServiceClient::new(channel)
        .verify_identity(kyc(claim_of(&c, "r")))
        .await
        .map(|_| ())
        .map_err(|s| s.to_string())
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
    assert!(refused.is_err(), "a foreign certificate was accepted");
    // The control: the gateway's own certificate for the same agency works.
    let accepted = try_call(
        &gw,
        &gw.pki.ca_cert(),
        Some((&gw.pki.agency_cert("bank"), &gw.pki.agency_key("bank"))),
    )
    .await;
    assert_eq!(accepted, Ok(()));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let gw = TestGateway::start().await;
    let refused = try_call(&gw, &gw.pki.ca_cert(), None).await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
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
    let err = refused.unwrap_err();
    assert!(
        err.contains("AGENCY_UNKNOWN") || err.contains("not in the policy"),
        "{err}"
    );
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
