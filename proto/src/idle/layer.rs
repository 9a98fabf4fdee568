//! Each call counted open on its connection until its answer has been
//! sent, as a tower layer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::calls::OpenCalls;
use super::holding::Holding;

/// Where a server finds a call's connection in the request's extensions
/// (its `ConnectInfo`).
pub type FindCalls = fn(&http::Extensions) -> Option<&Arc<OpenCalls>>;

/// Wraps services with [`CountOpen`]; outermost, so that every call counts.
#[derive(Clone)]
pub struct OpenCallLayer {
    find: FindCalls,
}

impl OpenCallLayer {
    /// Counts each call on the connection `find` names.
    pub fn new(find: FindCalls) -> Self {
        Self { find }
    }
}

impl<S> Layer<S> for OpenCallLayer {
    type Service = CountOpen<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountOpen {
            inner,
            find: self.find,
        }
    }
}

/// Counts each call open on its connection until its answer has been sent.
#[derive(Clone)]
pub struct CountOpen<S> {
    inner: S,
    find: FindCalls,
}

type Counted<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for CountOpen<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Counted<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(open) = (self.find)(request.extensions()).map(OpenCalls::open) else {
            return Either::Left(self.inner.call(request));
        };
        let answer = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(Holding::new(body, open))))
        }))
    }
}
