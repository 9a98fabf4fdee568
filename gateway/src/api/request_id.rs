//! Request ids and timing as a tower layer, outermost: every call gets an
//! id, returned to the caller in the `x-request-id` response header, carried
//! by the call's log line and written to its audit records; and its time to
//! answer goes to the `lienthong_request_duration_seconds` histogram,
//! labelled by method ([`known_method`], else `unknown`, so that no caller
//! can grow the label set; for a stream, the time to its opening).
//!
//! ```text
//! x-request-id from the caller, if 1–64 of [A-Za-z0-9._-]   kept
//! otherwise                                                a UUID v7
//! ```
//!
//! The id lives in a task-local for the handler's future, so the audit step
//! reads it without any handler passing it along ([`current`]); a stream's
//! answers, produced after the handler returned, take it from the handler
//! ([`RequestId::scope`] is used once, in `verify_batch`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::known_method;
use crate::telemetry::REQUEST_DURATION;

/// The header, both ways.
const HEADER: &str = "x-request-id";
/// Longest id taken from a caller.
const MAX_LEN: usize = 64;

/// One call's id, and when it arrived.
#[derive(Debug, Clone)]
pub(crate) struct RequestId {
    id: Arc<str>,
    started: Instant,
}

tokio::task_local! {
    static CURRENT: RequestId;
}

impl RequestId {
    /// The id as sent back and recorded.
    pub(crate) fn as_str(&self) -> &str {
        &self.id
    }

    /// Milliseconds since the call arrived.
    pub(crate) fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// Runs `f` with this id as the current one.
    pub(crate) async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// The current call's id, if this runs inside one.
pub(crate) fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The caller's id if it is acceptable, else a new one.
fn choose(header: Option<&http::HeaderValue>) -> Arc<str> {
    match header.and_then(|v| v.to_str().ok()) {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            id.into()
        }
        _ => uuid::Uuid::now_v7().to_string().into(),
    }
}

/// Wraps services with [`RequestIds`].
#[derive(Clone, Default)]
pub(crate) struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIds { inner }
    }
}

/// Gives each call its id, and times it.
#[derive(Clone)]
pub(crate) struct RequestIds<S> {
    inner: S,
}

type WithId<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for RequestIds<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = WithId<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = RequestId {
            id: choose(request.headers().get(HEADER)),
            started: Instant::now(),
        };
        let value = http::HeaderValue::from_str(id.as_str()).ok();
        let method = known_method(request.uri().path()).unwrap_or("unknown");
        let started = id.started;
        let answer = CURRENT.scope(id, self.inner.call(request));
        Box::pin(async move {
            let mut response = answer.await?;
            metrics::histogram!(REQUEST_DURATION, "method" => method)
                .record(started.elapsed().as_secs_f64());
            if let Some(value) = value {
                response.headers_mut().insert(HEADER, value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_id_is_kept_only_if_it_is_plain_and_short() {
        let keep = http::HeaderValue::from_static("agency-42.batch_7");
        assert_eq!(&*choose(Some(&keep)), "agency-42.batch_7");
        for bad in ["", "has space", "Nguyễn", &"x".repeat(65)] {
            let v = http::HeaderValue::from_str(bad).ok();
            let chosen = choose(v.as_ref());
            assert_ne!(&*chosen, bad);
            assert!(uuid::Uuid::parse_str(&chosen).is_ok(), "{chosen}");
        }
        assert!(uuid::Uuid::parse_str(&choose(None)).is_ok());
    }
}
