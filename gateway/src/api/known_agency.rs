//! Callers the policy does not name, refused before they take anything: a
//! tower layer in front of admission, so that a certificate the CA signed
//! for no agency (the health probe's, or one the policy dropped) may call
//! health and reflection and nothing else, and never holds a permit that
//! the agencies need.
//!
//! ```text
//! /lienthong.* from an agency not in the policy ─▶ PERMISSION_DENIED,
//!                                                  AGENCY_UNKNOWN (audited)
//! anything else                                  ─▶ on to admission
//! ```

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::audited::Audited;
use super::known_method;
use super::rate_limit::{Refusal, refuse};
use crate::error::Error;
use crate::policy::LivePolicy;
use crate::tls::Peer;

/// Wraps services with [`KnownAgency`].
#[derive(Clone)]
pub(crate) struct KnownAgencyLayer {
    policy: LivePolicy,
    audited: Audited,
}

impl KnownAgencyLayer {
    /// Refuses the agencies `policy` does not name, auditing each refusal
    /// through `audited`.
    pub(crate) fn new(policy: LivePolicy, audited: Audited) -> Self {
        Self { policy, audited }
    }
}

impl<S> Layer<S> for KnownAgencyLayer {
    type Service = KnownAgency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KnownAgency {
            inner,
            layer: self.clone(),
        }
    }
}

/// Refuses lienthong calls from agencies not in the policy.
#[derive(Clone)]
pub(crate) struct KnownAgency<S> {
    inner: S,
    layer: KnownAgencyLayer,
}

impl<S, B> Service<http::Request<B>> for KnownAgency<S>
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
        if path.starts_with("/lienthong.")
            && known_method(path).is_some()
            && let Some(peer) = request.extensions().get::<Peer>()
            && !self
                .layer
                .policy
                .current()
                .agencies
                .contains_key(&*peer.agency)
        {
            let refused = Error::AgencyUnknown {
                agency: peer.agency.to_string(),
            };
            return futures_util::future::Either::Right(refuse(
                self.layer.audited.clone(),
                peer.agency.to_string(),
                path,
                refused,
            ));
        }
        futures_util::future::Either::Left(self.inner.call(request))
    }
}
