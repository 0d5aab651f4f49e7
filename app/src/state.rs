//! What every server-side handler can reach, and the helpers that fetch it inside server
//! functions.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::*;

use crate::cache::TopicCache;
use crate::db::{Conn, Db};
use crate::error::AppError;
use crate::signals::{receivers, Signals};
use crate::topics::ssr::purge::PurgeQueue;
use crate::topics::ViewVersion;
use crate::users::ssr::{AuthSession, User};

/// Shared by axum routes (as router state) and server functions (as Leptos context).
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub leptos_options: LeptosOptions,
    /// Read side of the cache (the list handler); invalidation belongs to `signals`.
    pub cache: TopicCache,
    pub signals: Arc<Signals>,
    /// Wakes the background purge of retired topics.
    pub purge: PurgeQueue,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Connects the signal receivers (our `ready()`) and builds the cache they keep fresh.
    pub fn new(db: Db, leptos_options: LeptosOptions) -> Self {
        Self::with_cache(db, leptos_options, TopicCache::default())
    }

    pub fn with_cache(db: Db, leptos_options: LeptosOptions, cache: TopicCache) -> Self {
        let signals = Arc::new(Signals::new(receivers::ready(), cache.clone()));
        AppState {
            db,
            leptos_options,
            cache,
            signals,
            purge: PurgeQueue::default(),
        }
    }

    /// Runs a domain mutation on a pooled connection (signals and post-commit work included)
    /// and returns the acting user's new view version.
    pub async fn mutate<F>(&self, viewer: i64, f: F) -> Result<ViewVersion, AppError>
    where
        F: FnOnce(&mut Conn, &Signals) -> Result<(), AppError> + Send + 'static,
    {
        self.mutate_returning(viewer, f)
            .await
            .map(|((), version)| version)
    }

    /// [`Self::mutate`] for a mutation whose outcome the caller acts on.
    pub async fn mutate_returning<R, F>(
        &self,
        viewer: i64,
        f: F,
    ) -> Result<(R, ViewVersion), AppError>
    where
        F: FnOnce(&mut Conn, &Signals) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let signals = self.signals.clone();
        let outcome = self.db.run(move |conn| f(conn, &signals)).await?;
        Ok((outcome, self.view_version(viewer)))
    }

    /// The version of what `user_id` sees; it moves whenever a committed change touches it.
    pub fn view_version(&self, user_id: i64) -> ViewVersion {
        let ticket = self.cache.ticket(user_id);
        ViewVersion {
            shared: ticket.catalog,
            user: ticket.user,
        }
    }
}

/// The application state inside a server function.
pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AppError::Internal
    })
}

/// The logged-in user inside a server function, or 401.
pub async fn require_user() -> Result<User, AppError> {
    let session: AuthSession = leptos_axum::extract().await.map_err(|e| {
        tracing::error!(error = %e, "auth session missing from the request");
        AppError::Internal
    })?;
    session
        .user
        .ok_or_else(|| AppError::Unauthorized("Please log in first.".into()))
}

/// Sets the response status from the result, so that a failed server function answers with
/// the same 4xx a form route would, never a blanket 500.
pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(err) = &result {
        if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
            options.set_status(err.status());
        }
    }
    result
}
