//! The one error type that crosses the wire, its mapping to HTTP status codes, and how the
//! domain's errors become it.

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
    use domain::error::DomainError;
    use http::StatusCode;

    use super::AppError;

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
            DomainError::internal(context, cause).into()
        }
    }

    impl From<DomainError> for AppError {
        fn from(err: DomainError) -> Self {
            match err {
                DomainError::Invalid(message) => AppError::Invalid(message),
                DomainError::Conflict(message) => AppError::Conflict(message),
                DomainError::Unauthorized(message) => AppError::Unauthorized(message),
                DomainError::Forbidden => AppError::Forbidden,
                DomainError::NotFound => AppError::NotFound,
                DomainError::Busy(message) => AppError::Busy(message),
                DomainError::Internal => AppError::Internal,
            }
        }
    }

    impl From<domain::db::DbError> for AppError {
        fn from(err: domain::db::DbError) -> Self {
            DomainError::from(err).into()
        }
    }
}
