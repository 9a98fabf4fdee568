//! `lienthong.adapter.v1.SectorAdapterService` over an [`Adapter`]: decode,
//! look up on the blocking pool, encode. Served with `grpc.health.v1` on one
//! port, over mutual TLS, to the gateway only.
//!
//! The port, like the gateway's, never stops accepting: each TLS handshake
//! runs in a task of its own within [`HANDSHAKE_TIMEOUT`], and a connection
//! that carries no call for its idle limit is closed
//! ([`lienthong_proto::idle`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lienthong_proto::Pid;
use lienthong_proto::adapter::v1::sector_adapter_service_server::{
    SectorAdapterService, SectorAdapterServiceServer,
};
use lienthong_proto::adapter::v1::{
    self as wire, DescribeRequest, DescribeResponse, LookupRequest, LookupResponse,
};
use lienthong_proto::idle::{IdleClosing, IdleConnectInfo, OpenCallLayer, OpenCalls};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::adapter::Adapter;
use super::tls::only_the_gateway;
use crate::error::{Error, Result};

/// The tonic service over an adapter.
struct AdapterApi {
    adapter: Arc<Adapter>,
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownQuery { .. } => Status::invalid_argument(e.to_string()),
            other => {
                tracing::error!(error = %other, "adapter look-up failed");
                Status::unavailable(other.to_string())
            }
        }
    }
}

#[tonic::async_trait]
impl SectorAdapterService for AdapterApi {
    async fn lookup(
        &self,
        request: Request<LookupRequest>,
    ) -> Result<Response<LookupResponse>, Status> {
        let req = request.into_inner();
        let ours = self.adapter.population();
        if let Some(theirs) = &req.population
            && (theirs.seed, theirs.citizens) != (ours.seed, ours.citizens)
        {
            return Err(Status::failed_precondition(format!(
                "this adapter serves the population of seed {} with {} citizens, \
                 the gateway's registry that of seed {} with {}",
                ours.seed, ours.citizens, theirs.seed, theirs.citizens
            )));
        }
        let pid: Pid = req
            .pid
            .parse()
            .map_err(|e| Status::invalid_argument(format!("pid: {e}")))?;
        let adapter = self.adapter.clone();
        let answer = tokio::task::spawn_blocking(move || adapter.lookup(pid, &req.query))
            .await
            .map_err(|_| Error::Task)??;
        match answer {
            Some(answer) => Ok(Response::new(LookupResponse {
                answer: Some(answer),
            })),
            None => Err(Status::not_found("the sector has no record of this person")),
        }
    }

    async fn describe(
        &self,
        _request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        let adapter = self.adapter.clone();
        let stats = tokio::task::spawn_blocking(move || adapter.stats())
            .await
            .map_err(|_| Error::Task)??;
        let sector = self.adapter.sector();
        Ok(Response::new(DescribeResponse {
            sector: sector.name().to_owned(),
            queries: sector.queries().iter().map(|q| (*q).to_owned()).collect(),
            events_applied: stats.applied,
            duplicates_ignored: stats.duplicates,
            dead_lettered: stats.dead_lettered,
            routing_keys: sector
                .spec()
                .routing_keys
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            population: Some(wire::Population {
                seed: self.adapter.population().seed,
                citizens: self.adapter.population().citizens,
            }),
        }))
    }
}

/// Time a client has to complete its TLS handshake on an adapter's port.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// How an adapter's port takes connections.
#[derive(Clone)]
pub struct AdapterPort {
    /// Its mutual TLS ([`super::tls::server_tls`]).
    pub tls: ServerTlsConfig,
    /// How long a connection may carry no call before it is closed (never
    /// if zero).
    pub connection_idle: Duration,
}

/// What a call learns of its connection on an adapter's port.
pub(crate) type ConnectInfo = TlsConnectInfo<IdleConnectInfo<TcpConnectInfo>>;

/// The calls open on a request's connection.
fn open_calls(extensions: &http::Extensions) -> Option<&Arc<OpenCalls>> {
    extensions
        .get::<ConnectInfo>()
        .map(|info| &info.get_ref().calls)
}

/// Serves `adapter` on `listener` until `shutdown` completes.
pub async fn serve(
    adapter: Arc<Adapter>,
    listener: TcpListener,
    port: AdapterPort,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SectorAdapterServiceServer<AdapterApi>>()
        .await;
    let api =
        SectorAdapterServiceServer::with_interceptor(AdapterApi { adapter }, only_the_gateway);
    let idle = port.connection_idle;
    let incoming = TcpListenerStream::new(listener).map(move |tcp: std::io::Result<TcpStream>| {
        tcp.map(|tcp| {
            let _ = tcp.set_nodelay(true);
            IdleClosing::new(tcp, idle)
        })
    });
    Server::builder()
        .tls_config(port.tls.timeout(HANDSHAKE_TIMEOUT))
        .map_err(|e| Error::Tls(e.to_string()))?
        .layer(OpenCallLayer::new(open_calls))
        .add_service(health_service)
        .add_service(api)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Server(e.to_string()))
}
