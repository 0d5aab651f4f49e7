//! Keeps a signed-in user's session alive while it is used: the idle limit counts from the
//! last visit, not from the login.

use app::users::auth::AuthSession;

/// Ends a signed-in session that has outlived its absolute lifetime (30 days from sign-in,
/// however often it was used); true when it did.
pub async fn end_if_outlived(auth: &AuthSession) -> bool {
    match app::sessions::outlived(&auth.session).await {
        Ok(false) => false,
        Ok(true) => {
            if let Err(err) = auth.session.flush().await {
                tracing::warn!(error = %err, "could not end an outlived session");
            }
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not read the session's sign-in time");
            false
        }
    }
}

/// Renews the session of a signed-in visitor when due (at most daily, see
/// `app::sessions::RENEW_EVERY`). Call before the handler runs, so that a logout in the
/// handler still ends the session for good.
pub async fn renew_when_due(auth: &AuthSession) {
    if auth.user.is_some() {
        // A failed renewal costs nothing now: the session stays valid until its old expiry.
        if let Err(err) = app::sessions::renew_if_due(&auth.session).await {
            tracing::warn!(error = %err, "could not renew the session");
        }
    }
}
