//! The web layer's side of the app crate: the state axum routes and server functions share,
//! and the one way a server function reaches the domain.
//!
//! Arrows point from here to the domain (`crate::services` and the `ssr` modules), never back.

use std::future::Future;

use axum::extract::FromRef;
use leptos::prelude::*;

use crate::error::AppError;
use crate::services::Services;
use crate::users::ssr::{AuthSession, User};

/// Shared by axum routes (as router state) and server functions (as Leptos context): the
/// domain's services plus what rendering pages needs.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub services: Services,
    pub leptos_options: LeptosOptions,
}

/// The body of every server function: runs `call` for the logged-in user with the domain's
/// services, and sets the response status from the result, so that a failed call answers with
/// the same 4xx a form route would, never a blanket 500. (A bare Leptos server function answers
/// 500 for any `Err`.) Server functions have no other way to reach the services.
pub async fn as_member<T, F, Fut>(call: F) -> Result<T, AppError>
where
    F: FnOnce(User, Services) -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    let result = async {
        let user = logged_in_user().await?;
        let services = services()?;
        call(user, services).await
    }
    .await;
    if let Err(err) = &result {
        if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
            options.set_status(err.status());
        }
    }
    result
}

fn services() -> Result<Services, AppError> {
    use_context::<AppState>()
        .map(|state| state.services)
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
        .ok_or_else(|| AppError::Unauthorized("Please log in first.".into()))
}
