//! Accepting mutually authenticated connections.
//!
//! ```text
//! TcpListener ──accept──▶ handshake task (bounded, with a deadline)
//!                              │ TLS 1.3, client cert verified, CN read
//!                              ▼
//!          AuthenticatedStream { tls, Peer { agency, remote } } ──▶ tonic
//! ```
//!
//! Handshakes run in their own tasks so one slow client cannot stall the
//! accept loop, which never waits: at most [`MAX_HANDSHAKES`] run at once,
//! one more dropping the oldest, each within its deadline. Failed handshakes are
//! dropped (and logged without personal data); tonic only ever sees
//! authenticated connections, and every request carries the [`Peer`] in its
//! extensions. A connection with no call open for its idle limit is closed
//! ([`lienthong_proto::idle`]), and one agency holds at most so many
//! connections at once: one more is closed as its handshake ends.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use lienthong_proto::idle::{IdleClosing, OpenCalls};

use crate::limits::{Held, Shares};
use tonic::codegen::http;

/// Handshakes in progress at once; one more drops the oldest.
pub const MAX_HANDSHAKES: usize = 256;

/// How connections are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a connection may carry no call before it is closed (never
    /// if zero).
    pub idle: Duration,
    /// Connections one certificate's agency may hold at once.
    pub per_agency: usize,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The agency id: the client certificate's subject CN.
    pub agency: Arc<str>,
    /// The remote address.
    pub remote: SocketAddr,
    /// The calls open on the connection, which keep it from being idle.
    pub(crate) calls: Arc<OpenCalls>,
}

impl Peer {
    /// The calls open on `extensions`' connection, for the [`OpenCallLayer`](lienthong_proto::idle::OpenCallLayer).
    pub(crate) fn open_calls(extensions: &http::Extensions) -> Option<&Arc<OpenCalls>> {
        extensions.get::<Peer>().map(|peer| &peer.calls)
    }
}

/// A TLS connection whose client certificate has been verified.
pub struct AuthenticatedStream {
    inner: TlsStream<IdleClosing<TcpStream>>,
    peer: Peer,
    /// Its place among its agency's connections.
    _held: Held,
}

impl Connected for AuthenticatedStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for AuthenticatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthenticatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The stream of authenticated connections on `listener`, taken within
/// `limits`. Once `stop_accepting` completes
/// the listener is closed (new connections are refused) while the stream
/// stays open, so the server keeps the connections it has; the accept loop
/// ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: ConnectionLimits,
    stop_accepting: impl Future<Output = ()> + Send + 'static,
) -> ReceiverStream<Result<AuthenticatedStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Arc::new(Handshakes::default());
    let connections = Arc::new(Shares::default());
    tokio::spawn(async move {
        let mut stop_accepting = std::pin::pin!(stop_accepting);
        loop {
            let (tcp, remote) = tokio::select! {
                biased;
                () = &mut stop_accepting => break,
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let id = handshakes.next_id();
            let done = handshakes.clone();
            let connections = connections.clone();
            // The task starts once it is recorded, so that it is never
            // forgotten before it is recorded.
            let (recorded, when_recorded) = tokio::sync::oneshot::channel::<()>();
            let handshake = tokio::spawn(async move {
                if when_recorded.await.is_err() {
                    return;
                }
                let tcp = IdleClosing::new(tcp, limits.idle);
                let calls = tcp.calls();
                let accepted =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
                done.finished(id);
                let tls = match accepted {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(%remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let agency = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(super::subject_cn);
                let Some(agency) = agency else {
                    tracing::info!(%remote, "client certificate names no agency");
                    return;
                };
                let agency: Arc<str> = agency.into();
                let Some(held) = connections.take(&agency, limits.per_agency) else {
                    tracing::info!(
                        %remote,
                        %agency,
                        "the agency holds its connections already: one more is closed"
                    );
                    return;
                };
                let peer = Peer {
                    agency,
                    remote,
                    calls,
                };
                let stream = AuthenticatedStream {
                    inner: tls,
                    peer,
                    _held: held,
                };
                let _ = tx.send(Ok(stream)).await;
            });
            handshakes.started(id, handshake.abort_handle());
            let _ = recorded.send(());
        }
        drop(listener);
        tx.closed().await;
    });
    ReceiverStream::new(rx)
}

/// The handshakes in progress, oldest first. At most [`MAX_HANDSHAKES`]:
/// one more drops the oldest, so that connections that send nothing cannot
/// hold every slot while new clients wait — the accept loop never waits for
/// a slot, and a silent connection lasts at most until enough newer ones
/// have come, or its deadline.
#[derive(Default)]
struct Handshakes {
    next: std::sync::atomic::AtomicU64,
    running: std::sync::Mutex<std::collections::VecDeque<(u64, tokio::task::AbortHandle)>>,
}

impl Handshakes {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records handshake `id`, dropping the oldest beyond the bound.
    fn started(&self, id: u64, handle: tokio::task::AbortHandle) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.push_back((id, handle));
        if running.len() > MAX_HANDSHAKES
            && let Some((_, oldest)) = running.pop_front()
        {
            oldest.abort();
            tracing::debug!("the handshakes in progress are at their bound: the oldest is dropped");
        }
    }

    /// Forgets handshake `id`, which ended.
    fn finished(&self, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = running.iter().position(|(i, _)| *i == id) {
            running.remove(at);
        }
    }
}
