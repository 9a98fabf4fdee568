//! A request whose message does not decode is the caller's mistake: tonic
//! answers it `INTERNAL` (its codec's word for any decode error), which
//! tells the caller nothing it can act on and would page an operator. This
//! layer, just in front of the services, answers it `INVALID_ARGUMENT` /
//! `ARGUMENT_INVALID` with the contract's details, and audits it like any
//! refusal; a `VerifyBatch` stream does the same with [`undecodable`].
//!
//! ```text
//! service answers INTERNAL "failed to decode Protobuf message: …"
//!     ─▶ INVALID_ARGUMENT, ErrorInfo ARGUMENT_INVALID, BadRequest "message"
//!        (audited: agency, operation from the path, the error's hash)
//! ```

use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::audited::Audited;
use super::known_method;
use super::rate_limit::{Refusal, refuse};
use crate::error::Error;
use crate::tls::Peer;

/// What tonic's protobuf codec says of a message it cannot decode.
const DECODE_FAILED: &str = "failed to decode Protobuf message";

/// The error for a message that does not decode, or holds more elements
/// of a repeated field than the codec takes, if `status` says so.
pub(crate) fn undecodable(status: &Status) -> Option<Error> {
    if let Some((count, limit)) = lienthong_proto::codec::too_many(status) {
        return Some(Error::invalid(
            "message",
            format!("a repeated field holds {count} elements; at most {limit} are read"),
        ));
    }
    (status.code() == tonic::Code::Internal && status.message().starts_with(DECODE_FAILED))
        .then(|| Error::invalid("message", "is not a valid protobuf message for this method"))
}

/// Wraps services with [`Undecodable`].
#[derive(Clone)]
pub(crate) struct UndecodableLayer {
    audited: Audited,
}

impl UndecodableLayer {
    /// Audits the refusals through `audited`.
    pub(crate) fn new(audited: Audited) -> Self {
        Self { audited }
    }
}

impl<S> Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Undecodable {
            inner,
            audited: self.audited.clone(),
        }
    }
}

/// Answers an undecodable request `INVALID_ARGUMENT`.
#[derive(Clone)]
pub(crate) struct Undecodable<S> {
    inner: S,
    audited: Audited,
}

impl<S, B> Service<http::Request<B>> for Undecodable<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, Refusal<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let (Some(path), Some(peer)) = (
            known_method(path).filter(|p| p.starts_with("/lienthong.")),
            request.extensions().get::<Peer>().cloned(),
        ) else {
            return futures_util::future::Either::Left(self.inner.call(request));
        };
        let answer = self.inner.call(request);
        let audited = self.audited.clone();
        futures_util::future::Either::Right(Box::pin(async move {
            let response = answer.await?;
            // A refusal before any message is a trailers-only answer: its
            // status is in the headers.
            match Status::from_header_map(response.headers())
                .as_ref()
                .and_then(undecodable)
            {
                Some(refused) => refuse(audited, peer.agency.to_string(), path, refused).await,
                None => Ok(response),
            }
        }))
    }
}
