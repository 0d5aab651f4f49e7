//! The one error type that crosses the wire, and its mapping to HTTP status codes.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What a person is told when something they asked for did not happen.
///
/// Messages are written for people; database and library error text never ends up here
/// (it goes to the log instead, see [`AppError::internal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppError {
    /// The input was not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The input clashes with something that exists (a taken name).
    #[error("{0}")]
    Conflict(String),
    /// Login is required, or the credentials were wrong.
    #[error("{0}")]
    Unauthorized(String),
    #[error("You are not allowed to do that.")]
    Forbidden,
    #[error("That does not exist (any more).")]
    NotFound,
    /// Too many attempts of this kind (failed logins, signups) from this client or for this
    /// account; the message says when to try again.
    #[error("{message}")]
    Throttled {
        message: String,
        retry_after_seconds: u64,
    },
    /// Too much work is queued to take this request now; trying again shortly will work.
    #[error("{0}")]
    Busy(String),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request never reached our code properly (network, encoding).
    #[error("The request failed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;
    use http::StatusCode;

    impl AppError {
        /// The single place where errors become status codes.
        pub fn status(&self) -> StatusCode {
            match self {
                AppError::Invalid(_) => StatusCode::BAD_REQUEST,
                AppError::Conflict(_) => StatusCode::CONFLICT,
                AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                AppError::Forbidden => StatusCode::FORBIDDEN,
                AppError::NotFound => StatusCode::NOT_FOUND,
                AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                AppError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                AppError::Transport(_) => StatusCode::BAD_REQUEST,
            }
        }

        /// How long the client should wait before trying again (`Retry-After`), if that helps.
        pub fn retry_after_seconds(&self) -> Option<u64> {
            match self {
                AppError::Throttled {
                    retry_after_seconds,
                    ..
                } => Some(*retry_after_seconds),
                AppError::Busy(_) => Some(1),
                _ => None,
            }
        }

        /// Logs the full cause and hides it from the client.
        pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
            tracing::error!(error = %error_chain(cause), "{context}");
            AppError::Internal
        }
    }

    impl From<diesel::result::Error> for AppError {
        fn from(err: diesel::result::Error) -> Self {
            if crate::db::is_unavailable(&err) {
                return unavailable(&err);
            }
            AppError::internal("database query failed", &err)
        }
    }

    impl From<crate::db::DbError> for AppError {
        fn from(err: crate::db::DbError) -> Self {
            match &err {
                crate::db::DbError::Pool(_) => unavailable(&err),
                crate::db::DbError::Query(query) if crate::db::is_unavailable(query) => {
                    unavailable(&err)
                }
                _ => AppError::internal("database operation failed", &err),
            }
        }
    }

    /// The database cannot take the request now (busy past its timeout, read-only, full, no
    /// connection free): nothing was changed, and trying again later may work.
    fn unavailable(cause: &dyn std::error::Error) -> AppError {
        tracing::warn!(error = %error_chain(cause), "database unavailable");
        AppError::Busy(
            "The database cannot take this right now; nothing was changed. Please try again \
             in a moment."
                .into(),
        )
    }

    fn error_chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
