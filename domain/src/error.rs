//! What a domain call tells its caller when it did not do what was asked. The web layer turns
//! each variant into a status code and a message in one place (`app::error`).

/// Messages are written for people; database and library error text never ends up here (it
/// goes to the log instead, see [`DomainError::internal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
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
    /// Too much work is queued to take this request now; trying again shortly will work.
    #[error("{0}")]
    Busy(String),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl DomainError {
    /// Logs the full cause and hides it from the caller.
    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(cause), "{context}");
        DomainError::Internal
    }

    /// The database cannot take the request now (busy past its timeout, read-only, full, no
    /// connection free): nothing was changed, and trying again later may work.
    pub fn unavailable(cause: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %error_chain(cause), "database unavailable");
        DomainError::Busy(
            "The database cannot take this right now; nothing was changed. Please try again \
             in a moment."
                .into(),
        )
    }
}

/// An error and its causes on one line, for the log.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
