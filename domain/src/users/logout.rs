//! A logout, told to the receivers (`user_logged_out`: the user's cached list goes).

use crate::error::DomainError;
use crate::ids::UserId;
use crate::services::Services;
use crate::signals::{self, UserLoggedOut};

/// Tells the receivers that `user_id` logged out (their cached list goes).
pub async fn logged_out(services: &Services, user_id: UserId) -> Result<(), DomainError> {
    let signals = services.signals.clone();
    services
        .db
        .run(move |conn| signals::read(conn, &signals, |tx| tx.send(&UserLoggedOut { user_id })))
        .await
}
