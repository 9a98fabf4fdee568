//! The per-agency rate limit and daily quota as a tower layer, in front of
//! every lienthong service (health and reflection are not counted).
//!
//! Over its limit an agency gets `RESOURCE_EXHAUSTED` with
//! `ErrorInfo.reason = RATE_LIMITED` (or `QUOTA_EXCEEDED`) and `RetryInfo`
//! saying when to retry; the request never reaches a service. The refusal
//! is audited like any other (operation from the path; the body is not
//! read, so its hash is all zeros). When this replica's block of an
//! agency's quota is used up, the call waits for the next block to be
//! leased from the registry (one store round trip a block, off the
//! runtime's threads) before it goes on.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::audited::{Access, Audited};
use super::known_method;
use crate::error::Error;
use crate::limits::AgencyRates;
use crate::tls::Peer;

/// Paths of the services the limit applies to.
const LIMITED: &str = "/lienthong.";

/// Wraps services with [`RateLimit`].
#[derive(Clone)]
pub(crate) struct RateLimitLayer {
    rates: Arc<AgencyRates>,
    audited: Audited,
}

impl RateLimitLayer {
    /// Limits by `rates`, auditing refusals through `audited`.
    pub(crate) fn new(rates: Arc<AgencyRates>, audited: Audited) -> Self {
        Self { rates, audited }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            rates: self.rates.clone(),
            audited: self.audited.clone(),
        }
    }
}

/// Refuses an agency's requests over its rate; passes the others on.
#[derive(Clone)]
pub(crate) struct RateLimit<S> {
    inner: S,
    rates: Arc<AgencyRates>,
    audited: Audited,
}

/// A refusal's answer, once its audit record is durable.
pub(crate) type Refusal<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

/// Refuses the call to `path` by `agency` with `refused`, once the refusal
/// is audited (operation from the path; the body is not read, so its hash
/// is all zeros).
pub(crate) fn refuse<E: Send + 'static>(
    audited: Audited,
    agency: String,
    path: &str,
    refused: Error,
) -> Refusal<E> {
    let access = Access::new(operation(path));
    Box::pin(async move {
        // Made here, in the call's future, where its request id is.
        let entry = audited.entry(&agency, access, [0; 32], Err(&refused));
        let status = match audited.append(vec![entry]).await {
            Ok(()) => Status::from(refused),
            Err(unaudited) => unaudited,
        };
        Ok(status.into_http())
    })
}

impl<S, B> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, Refusal<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use futures_util::future::Either;
        // A path that names no method goes on to be refused UNIMPLEMENTED,
        // unlimited and unaudited: made-up paths add nothing to the log.
        if !request.uri().path().starts_with(LIMITED)
            || known_method(request.uri().path()).is_none()
        {
            return Either::Left(self.inner.call(request));
        }
        let Some(agency) = request.extensions().get::<Peer>().map(|p| p.agency.clone()) else {
            return Either::Left(self.inner.call(request));
        };
        match self.rates.take_now(&agency) {
            Some(Ok(())) => Either::Left(self.inner.call(request)),
            Some(Err(refused)) => Either::Right(refuse(
                self.audited.clone(),
                agency.to_string(),
                request.uri().path(),
                refused,
            )),
            // The quota's next block is leased first; the service made
            // ready is the one called after.
            None => {
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                let rates = self.rates.clone();
                let audited = self.audited.clone();
                Either::Right(Box::pin(async move {
                    match rates.charge(&agency, 1).await {
                        Ok(()) => inner.call(request).await,
                        Err(refused) => {
                            let path = request.uri().path().to_owned();
                            refuse(audited, agency.to_string(), &path, refused).await
                        }
                    }
                }))
            }
        }
    }
}

/// The audit's name for the RPC at `path`: `/pkg.Service/VerifyIdentity` →
/// `verify_identity`, as the services name their operations.
fn operation(path: &str) -> String {
    let method = path.rsplit('/').next().unwrap_or("");
    let mut name = String::with_capacity(method.len() + 4);
    for c in method.chars() {
        if c.is_ascii_uppercase() {
            if !name.is_empty() {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_servers_methods_are_known() {
        use super::known_method;
        for path in [
            "/lienthong.v1.ExchangeService/VerifyIdentity",
            "/lienthong.v1.RegistryService/RecordDeath",
            "/lienthong.v1.CitizenService/ListAccesses",
            "/grpc.health.v1.Health/Check",
        ] {
            assert_eq!(known_method(path), Some(path));
        }
        for path in [
            "/lienthong.v1.ExchangeService/MadeUp",
            "/lienthong.adapter.v1.SectorAdapterService/Lookup",
            "/",
        ] {
            assert_eq!(known_method(path), None, "{path}");
        }
    }

    #[test]
    fn operations_are_named_as_the_services_name_them() {
        assert_eq!(
            super::operation("/lienthong.v1.ExchangeService/VerifyIdentity"),
            "verify_identity"
        );
        assert_eq!(
            super::operation("/lienthong.v1.CitizenService/ListAccesses"),
            "list_accesses"
        );
    }
}
