//! Admission as a tower layer: at most so many lienthong calls in flight
//! across every connection, each answered within the server's deadline.
//!
//! ```text
//! a permit free?   no  → UNAVAILABLE, OVERLOADED, RetryInfo 100 ms (at once:
//!                        nothing queues without end)
//! the agency's     no  → the same: one agency holds at most its share of the
//! share free?            permits (--max-in-flight-per-agency), so it cannot
//!                        take them all from the others
//!                  yes → held until the answer has been sent, stream included
//! the deadline?    past before the answer → DEADLINE_EXCEEDED (a stream's
//!                  answer is its opening: a verification job may stream for
//!                  hours, one batch at a time)
//! ```
//!
//! Health and reflection are not counted, so a probe still answers under
//! overload. A call shed here reached no service: nothing was disclosed or
//! changed, and it is counted in the metrics, not audited (auditing it would
//! add to the load it is shed for). A call past its deadline may already
//! have been audited; a registry write it carried may have been committed,
//! and a retry with the same `request_id` returns its receipt.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lienthong_proto::idle::Holding;
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::error::Error;
use crate::limits::{Held, Shares};
use crate::telemetry::SHED;
use crate::tls::Peer;

/// Paths of the services admission applies to.
const ADMITTED: &str = "/lienthong.";

/// Wraps services with [`Admission`].
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    /// Calls in flight by agency, each at most `share`.
    agencies: Arc<Shares>,
    share: usize,
    deadline: Duration,
}

impl AdmissionLayer {
    /// At most `limit` calls in flight, at most `share` of them one
    /// agency's, each within `deadline`.
    pub(crate) fn new(limit: usize, share: usize, deadline: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            agencies: Arc::default(),
            share: share.clamp(1, limit.max(1)),
            deadline,
        }
    }

    /// One more call of `agency`, unless it holds its share already.
    fn take_share(&self, agency: &Arc<str>) -> Option<Held> {
        self.agencies.take(agency, self.share)
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

/// Sheds calls over the limit and ends calls past the deadline.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

type Admitted<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, Admitted<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !request.uri().path().starts_with(ADMITTED) {
            return futures_util::future::Either::Left(self.inner.call(request));
        }
        let shed = |refused: Error| -> Self::Future {
            metrics::counter!(SHED, "reason" => "OVERLOADED").increment(1);
            futures_util::future::Either::Right(Box::pin(async move {
                Ok(Status::from(refused).into_http())
            }))
        };
        let share = match request.extensions().get::<Peer>() {
            Some(peer) => match self.layer.take_share(&peer.agency) {
                Some(share) => Some(share),
                None => {
                    return shed(Error::ShareUsed {
                        share: self.layer.share,
                    });
                }
            },
            None => None,
        };
        let Ok(permit) = self.layer.permits.clone().try_acquire_owned() else {
            return shed(Error::Overloaded {
                limit: self.layer.limit,
            });
        };
        let deadline = self.layer.deadline;
        let answer = self.inner.call(request);
        futures_util::future::Either::Right(Box::pin(async move {
            match tokio::time::timeout(deadline, answer).await {
                // The permit and the share are held until the answer has
                // been sent.
                Ok(Ok(response)) => {
                    Ok(response.map(|body| Body::new(Holding::new(body, (permit, share)))))
                }
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    metrics::counter!(SHED, "reason" => "DEADLINE_EXCEEDED").increment(1);
                    Ok(Status::from(Error::DeadlineExceeded { limit: deadline }).into_http())
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A service whose answers never come.
    #[derive(Clone)]
    struct Stuck;

    impl Service<http::Request<()>> for Stuck {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Pending<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::pending()
        }
    }

    fn call(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status")?.to_str().ok()
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_ends_with_deadline_exceeded_and_frees_its_permit() {
        let layer = AdmissionLayer::new(1, 1, Duration::from_millis(20));
        let mut service = layer.layer(Stuck);
        let path = "/lienthong.v1.ExchangeService/VerifyIdentity";
        let late = service.call(call(path)).await.unwrap();
        assert_eq!(grpc_status(&late), Some("4"), "DEADLINE_EXCEEDED");
        // Its permit came back: the next call is not shed but times out too.
        let again = service.call(call(path)).await.unwrap();
        assert_eq!(grpc_status(&again), Some("4"));
    }

    #[tokio::test]
    async fn a_call_over_the_limit_is_shed_at_once_and_probes_are_not_counted() {
        let layer = AdmissionLayer::new(1, 1, Duration::from_secs(3600));
        let mut service = layer.layer(Stuck);
        let path = "/lienthong.v1.ExchangeService/VerifyIdentity";
        let _holding = service.call(call(path));
        let shed = service.call(call(path)).await.unwrap();
        assert_eq!(grpc_status(&shed), Some("14"), "UNAVAILABLE");
        // A health probe goes through to the service (which never answers).
        let probe = service.call(call("/grpc.health.v1.Health/Check"));
        assert!(futures_util::FutureExt::now_or_never(probe).is_none());
    }
}
