//! A connection's socket whose reads end once it has carried no call for
//! its limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::calls::OpenCalls;

/// `io`, whose reads end once no call has been open on it for its limit.
pub struct IdleClosing<IO> {
    io: IO,
    calls: Arc<OpenCalls>,
    limit: Duration,
    /// `None` if the connection is never closed for being idle.
    timer: Option<Pin<Box<Sleep>>>,
    closed: bool,
}

impl<IO> IdleClosing<IO> {
    /// `io`, a new connection: idle from now, its reads ended after `limit`
    /// without a call (never if `limit` is zero).
    pub fn new(io: IO, limit: Duration) -> Self {
        Self {
            io,
            calls: OpenCalls::new(),
            limit,
            timer: (!limit.is_zero()).then(|| Box::pin(tokio::time::sleep(limit))),
            closed: false,
        }
    }

    /// The connection's calls, which each call's [`super::OpenCall`] counts.
    pub fn calls(&self) -> Arc<OpenCalls> {
        self.calls.clone()
    }

    /// The socket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Whether the connection has been idle for its limit; if not, `cx` is
    /// woken when it may have been. Once true, always true.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timer) = self.timer.as_mut() else {
            return false;
        };
        while !self.closed {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // The timer is due: look again at the calls. While one is open
            // the next look is a whole limit away; once none is, the limit
            // counts from the end of the last.
            let next = match self.calls.idle_since() {
                Some(since) if since.elapsed() >= self.limit => {
                    self.closed = true;
                    break;
                }
                Some(since) => since + self.limit,
                None => Instant::now() + self.limit,
            };
            timer.as_mut().reset(next);
        }
        true
    }
}

/// What a call learns of an [`IdleClosing`] connection when tonic serves it
/// directly (the adapters' ports): the socket's own, and the calls open on it.
#[derive(Debug, Clone)]
pub struct IdleConnectInfo<C> {
    /// The socket's connect info (its addresses).
    pub inner: C,
    /// The calls open on the connection, for the [`super::OpenCallLayer`].
    pub calls: Arc<OpenCalls>,
}

impl<IO: Connected> Connected for IdleClosing<IO> {
    type ConnectInfo = IdleConnectInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        IdleConnectInfo {
            inner: self.io.connect_info(),
            calls: self.calls.clone(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleClosing<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            // Nothing to read and idle too long: the reads end.
            Poll::Pending if this.poll_idle(cx) => {
                tracing::debug!("idle connection closed");
                Poll::Ready(Ok(()))
            }
            read => read,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleClosing<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(conn: &mut IdleClosing<()>) -> bool {
        let waker = futures_util::task::noop_waker();
        conn.poll_idle(&mut Context::from_waker(&waker))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_closed_only_after_its_limit_without_a_call() {
        let mut conn = IdleClosing::new((), Duration::from_secs(10));
        let calls = conn.calls();
        assert!(!idle(&mut conn));
        tokio::time::advance(Duration::from_secs(6)).await;
        // A call opens before the limit and stays open past it.
        let call = calls.open();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!idle(&mut conn), "a call is open");
        // Counted from the end of the call, not from its start.
        drop(call);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!idle(&mut conn), "9 s since the last call ended");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(idle(&mut conn), "11 s since the last call ended");
        // A call after the close does not reopen it.
        let _late = calls.open();
        assert!(idle(&mut conn));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_never_closes() {
        let mut conn = IdleClosing::new((), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(86_400 * 365)).await;
        assert!(!idle(&mut conn));
    }
}
