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
//! accept loop; at most [`MAX_HANDSHAKES`] run at once. Failed handshakes are
//! dropped (and logged without personal data); tonic only ever sees
//! authenticated connections, and every request carries the [`Peer`] in its
//! extensions.

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
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// Handshakes allowed in progress at once.
const MAX_HANDSHAKES: usize = 256;
/// Time a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The agency id: the client certificate's subject CN.
    pub agency: Arc<str>,
    /// The remote address.
    pub remote: SocketAddr,
}

/// A TLS connection whose client certificate has been verified.
pub struct AuthenticatedStream {
    inner: TlsStream<TcpStream>,
    peer: Peer,
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

/// The stream of authenticated connections on `listener`. Once
/// `stop_accepting` completes the listener is closed (new connections are
/// refused) while the stream stays open, so the server keeps the
/// connections it has; the accept loop ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stop_accepting: impl Future<Output = ()> + Send + 'static,
) -> ReceiverStream<Result<AuthenticatedStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        let mut stop_accepting = std::pin::pin!(stop_accepting);
        loop {
            let permit = tokio::select! {
                _ = tx.closed() => return,
                () = &mut stop_accepting => break,
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (tcp, remote) = tokio::select! {
                _ = tx.closed() => return,
                () = &mut stop_accepting => break,
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
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
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
                let peer = Peer {
                    agency: agency.into(),
                    remote,
                };
                let _ = tx.send(Ok(AuthenticatedStream { inner: tls, peer })).await;
            });
        }
        drop(listener);
        tx.closed().await;
    });
    ReceiverStream::new(rx)
}
