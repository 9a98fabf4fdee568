//! The per-agency rate limit as a tower layer, in front of every lienthong
//! service (health and reflection are not counted).
//!
//! Over its limit an agency gets `RESOURCE_EXHAUSTED` with
//! `ErrorInfo.reason = RATE_LIMITED` and `RetryInfo` saying when to retry;
//! the request never reaches a service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::error::Error;
use crate::limits::AgencyRates;
use crate::tls::Peer;

/// Paths of the services the limit applies to.
const LIMITED: &str = "/lienthong.";

/// Wraps services with [`RateLimit`].
#[derive(Clone)]
pub struct RateLimitLayer {
    rates: Arc<AgencyRates>,
}

impl RateLimitLayer {
    /// Limits by `rates`.
    pub fn new(rates: Arc<AgencyRates>) -> Self {
        Self { rates }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            rates: self.rates.clone(),
        }
    }
}

/// Refuses an agency's requests over its rate; passes the others on.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    rates: Arc<AgencyRates>,
}

impl<S, B> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<http::Response<Body>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(LIMITED)
            && let Some(peer) = request.extensions().get::<Peer>()
            && let Err(retry_after) = self.rates.take(&peer.agency)
        {
            let status = Status::from(Error::RateLimited {
                agency: peer.agency.to_string(),
                retry_after,
            });
            return futures_util::future::Either::Right(std::future::ready(Ok(status.into_http())));
        }
        futures_util::future::Either::Left(self.inner.call(request))
    }
}
