//! A stream that sends nothing is ended: a `VerifyBatch` stream whose caller
//! sends no batch for the configured time, while the gateway waits for one,
//! gets `DEADLINE_EXCEEDED` / `STREAM_IDLE`, and its place in flight comes
//! back.
//!
//! ```text
//! gateway ready for the next batch ──(no batch for --stream-idle-ms)──▶
//!     the stream ends: DEADLINE_EXCEEDED, STREAM_IDLE
//! ```
//!
//! The clock runs only while the gateway waits for the caller: not while
//! it is still verifying the batches it has (then it reads no further).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::Sleep;
use tonic::Status;

use crate::error::Error;

/// `inner`, ended with `STREAM_IDLE` once it yields nothing for `idle`
/// while polled, and ended after the first error it yields.
pub(crate) struct IdleEnded<S> {
    inner: Pin<Box<S>>,
    idle: Duration,
    /// Armed when a poll finds nothing, disarmed by the next item.
    timer: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl<S> IdleEnded<S> {
    pub(crate) fn new(inner: S, idle: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            idle,
            timer: None,
            ended: false,
        }
    }
}

impl<S, T> Stream for IdleEnded<S>
where
    S: Stream<Item = Result<T, Status>>,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                self.timer = None;
                // A stream that failed (a message that did not decode) is
                // over: its error is answered once.
                self.ended = matches!(item, Some(Err(_)));
                Poll::Ready(item)
            }
            Poll::Pending => {
                let idle = self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.ended = true;
                        tracing::info!(
                            idle_ms = idle.as_millis() as u64,
                            "an idle stream is ended"
                        );
                        Poll::Ready(Some(Err(Error::StreamIdle { limit: idle }.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_quiet_past_its_limit_ends_and_one_that_talks_does_not() {
        let (send, recv) = tokio::sync::mpsc::channel::<Result<u32, Status>>(4);
        let mut stream = IdleEnded::new(
            tokio_stream::wrappers::ReceiverStream::new(recv),
            Duration::from_secs(10),
        );
        for n in 0..3 {
            tokio::time::sleep(Duration::from_secs(9)).await;
            send.send(Ok(n)).await.unwrap();
            assert_eq!(stream.next().await.unwrap().unwrap(), n);
        }
        let ended = stream.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::DeadlineExceeded);
        assert!(stream.next().await.is_none());
    }
}
