//! Server functions that fail before our code runs (arguments that do not decode) come back
//! from the framework as 500s. They are the client's fault: answer 400, with the same typed
//! error body, so that no user input can produce a 500.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures::future::{BoxFuture, Either};
use tower::{Layer, Service};

use app::error::AppError;

/// Error bodies are a short JSON value; anything larger is not one of ours.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The layer: wraps every route, and does its (rare, async) work only on a server function's
/// 500. Written as a plain service rather than an async middleware, which would clone the
/// route's service on every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientErrorsAre4xxLayer;

impl<S> Layer<S> for ClientErrorsAre4xxLayer {
    type Service = ClientErrorsAre4xx<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientErrorsAre4xx { inner }
    }
}

#[derive(Clone, Debug)]
pub struct ClientErrorsAre4xx<S> {
    inner: S,
}

impl<S> Service<Request> for ClientErrorsAre4xx<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let is_server_fn = request.uri().path().starts_with("/api/");
        let response = self.inner.call(request);
        if !is_server_fn {
            return Either::Left(response);
        }
        Either::Right(Box::pin(async move {
            let response = response.await?;
            Ok(decoding_failures_are_400(response).await)
        }))
    }
}

async fn decoding_failures_are_400(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    if let Ok(AppError::Transport(_)) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}
