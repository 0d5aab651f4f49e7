//! Renders a page of the app from a form route, for answers that are a page rather than a
//! redirect: a failed POST shows its form again with the message and a 4xx status.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, Request};
use axum::response::Response;
use leptos::prelude::provide_context;

use app::error::AppError;
use app::feedback::FormFeedback;
use app::web::AppState;

/// The page at `uri`, as a GET by the same visitor would show it, plus `feedback`, with the
/// status (and `Retry-After`, where waiting helps) of `err`.
pub async fn page_with_feedback(
    state: &AppState,
    original: &Parts,
    uri: &str,
    feedback: FormFeedback,
    err: &AppError,
) -> Response {
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri.parse().unwrap_or_default();
    *request.headers_mut() = original.headers.clone();
    request.headers_mut().remove(header::CONTENT_TYPE);
    request.headers_mut().remove(header::CONTENT_LENGTH);
    *request.extensions_mut() = original.extensions.clone();

    let context_state = state.clone();
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(context_state.clone());
            provide_context(feedback.clone());
        },
        move || app::shell(options.clone()),
    );
    let mut response = render(request).await;
    *response.status_mut() = err.status();
    if let Some(seconds) = err.retry_after_seconds() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
