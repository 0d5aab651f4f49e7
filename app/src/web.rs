//! The web layer's side of the app crate: the state axum routes and server functions share,
//! and the one way a server function reaches the domain.
//!
//! Arrows point from here to the domain (`domain::services` and the `ssr` modules), never back.

use std::future::Future;
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::*;

use domain::services::Services;
use domain::users::User;

use crate::error::AppError;
use crate::sessions::MemorySessions;
use crate::users::auth::AuthSession;

/// Shared by axum routes (as router state) and server functions (as Leptos context): the
/// domain's services plus what rendering pages needs.
///
/// One `Arc`: axum clones the state for every route and middleware a request passes, and
/// cloning the fields themselves (the Leptos options alone are a dozen reference counts) was
/// the largest single cost of serving a stored page.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub services: Services,
    pub leptos_options: LeptosOptions,
    /// Sessions in memory, in front of the database (`crate::sessions`); sessions other
    /// instances end leave it at once.
    pub session_memory: MemorySessions,
}

impl AppState {
    pub fn new(services: Services, leptos_options: LeptosOptions) -> Self {
        let session_memory = MemorySessions::default();
        let memory = session_memory.clone();
        services
            .ended_sessions
            .listen(move |id| memory.forget_ended_elsewhere(id));
        AppState(Arc::new(Shared {
            services,
            leptos_options,
            session_memory,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `leptos_axum` asks the router state for when it renders.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The body of every server function: runs `call` for the logged-in user with the domain's
/// services, and sets the response status from the result, so that a failed call answers with
/// the same 4xx a form route would, never a blanket 500. (A bare Leptos server function answers
/// 500 for any `Err`.) Server functions have no other way to reach the services.
pub async fn as_member<T, E, F, Fut>(call: F) -> Result<T, AppError>
where
    F: FnOnce(User, Services) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<AppError>,
{
    let result = async {
        let user = logged_in_user().await?;
        let services = services()?;
        call(user, services).await.map_err(Into::into)
    }
    .await;
    if let Err(err) = &result {
        if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
            options.set_status(err.status());
            if let Some(seconds) = err.retry_after_seconds() {
                options.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
            }
        }
    }
    result
}

/// The Content-Security-Policy of a rendered page: scripts only from this site or inline with
/// this response's nonce (Leptos puts it on its hydration and resource scripts), WebAssembly
/// allowed to compile, nothing framed, no plugins, forms only to this site.
pub fn page_security_policy(nonce: &str) -> String {
    // `cargo leptos watch` reloads the page over a WebSocket from another port.
    let live_reload = if std::env::var_os("LEPTOS_WATCH").is_some() {
        " ws: wss:"
    } else {
        ""
    };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{live_reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sends [`page_security_policy`] with the page being rendered. Called from the shell, where
/// the render's nonce is known.
pub fn send_page_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&page_security_policy(&nonce.to_string())) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

fn services() -> Result<Services, AppError> {
    use_context::<AppState>()
        .map(|state| state.services.clone())
        .ok_or_else(|| {
            tracing::error!("AppState missing from the server function context");
            AppError::Internal
        })
}

/// The logged-in user of this request, or 401.
async fn logged_in_user() -> Result<User, AppError> {
    let session: AuthSession = leptos_axum::extract().await.map_err(|e| {
        tracing::error!(error = %e, "auth session missing from the request");
        AppError::Internal
    })?;
    session
        .user
        .map(|user| user.0)
        .ok_or_else(|| AppError::Unauthorized("Please log in first.".into()))
}
