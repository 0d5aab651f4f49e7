//! The outermost layer: what every request and response gets, in one plain service.
//!
//! Requests get their id (`request_ids`); responses get the id back, the security headers
//! every response carries, and `Connection: close` once the server stops accepting
//! (`shutdown`). One synchronous service instead of a layer per header: axum clones the whole
//! top-level stack for every request, and each layer's clone and future wrapper showed up in
//! the hot-path figures (BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use tower::{Layer, Service};

use crate::request_ids;
use crate::shutdown::Connections;

/// Headers every response carries: no MIME sniffing, never framed, no full URLs leaked to other
/// sites, and a Content-Security-Policy that allows nothing active for responses that did not
/// set their own (pages set one naming their scripts' nonce, see
/// `app::web::page_security_policy`).
const ALWAYS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
];
const DEFAULT_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[derive(Clone)]
pub struct EdgeLayer {
    /// Behind a trusted proxy: keep the request id it sends.
    pub trust_proxy_request_ids: bool,
    pub connections: Connections,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            settings: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    settings: EdgeLayer,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request_ids::assign(&mut request, self.settings.trust_proxy_request_ids);
        EdgeFuture {
            inner: self.inner.call(request),
            id: Some(id),
            connections: self.settings.connections.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
        connections: Connections,
    }
}

impl<F, E> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in ALWAYS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DEFAULT_POLICY),
            );
        }
        if let Some(id) = this.id.take() {
            headers.insert(request_ids::HEADER, id);
        }
        // Once the server stops accepting, each connection closes after its response (see
        // `shutdown`: the server never closes one its client may be about to use).
        if this.connections.is_closing() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}
