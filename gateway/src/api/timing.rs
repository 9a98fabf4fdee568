//! Request timing as a tower layer, outermost, so that it measures what a
//! caller waits for: rate limit, decoding, the domain and the audit step.
//!
//! One histogram sample per request, labelled with the gRPC method's path
//! (`/lienthong.v1.ExchangeService/VerifyIdentity`); a path that names no
//! method of this server is labelled `unknown`, so that no caller can grow
//! the label set. For a streaming call the time is to its first answer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::known_method;
use crate::telemetry::REQUEST_DURATION;

/// Wraps services with [`Timing`].
#[derive(Clone, Default)]
pub(crate) struct TimingLayer;

impl<S> Layer<S> for TimingLayer {
    type Service = Timing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timing { inner }
    }
}

/// Records how long each request took.
#[derive(Clone)]
pub(crate) struct Timing<S> {
    inner: S,
}

type Timed<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Timing<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Timed<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = known_method(request.uri().path()).unwrap_or("unknown");
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            metrics::histogram!(REQUEST_DURATION, "method" => method)
                .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}
