//! A session's life: renewed at most daily while used, ended 30 days after sign-in however
//! often it is used.

use axum_login::tower_sessions::cookie::time::{Duration, OffsetDateTime};
use axum_login::tower_sessions::session;
use axum_login::tower_sessions::Session;

/// The session key holding when the session's expiry was last pushed forward (unix seconds).
pub(super) const RENEWED_AT: &str = "renewed_at";
/// How often a signed-in session's idle expiry is pushed forward. A session is only written
/// when its data changes, so without renewal it would end a fixed time after login however
/// often it is used; renewing at most daily keeps the idle limit honest while a page view
/// still normally writes nothing.
pub const RENEW_EVERY: Duration = Duration::days(1);

/// The session key holding when the user signed in on this session (unix seconds).
const SIGNED_IN_AT: &str = "signed_in_at";
/// However often it is used, a session ends this long after sign-in.
pub const ABSOLUTE_LIFETIME: Duration = Duration::days(30);

/// Records that the user just signed in on this session, which counts as a renewal too.
pub async fn mark_signed_in(session: &Session) -> Result<(), session::Error> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    session.insert(SIGNED_IN_AT, now).await?;
    session.insert(RENEWED_AT, now).await
}

/// Whether a signed-in session is older than [`ABSOLUTE_LIFETIME`]. A session signed in
/// before sign-in times were kept gets one now, and counts from here.
pub async fn outlived(session: &Session) -> Result<bool, session::Error> {
    let now = OffsetDateTime::now_utc();
    match session.get::<i64>(SIGNED_IN_AT).await? {
        Some(at) => Ok(OffsetDateTime::from_unix_timestamp(at)
            .map_or(true, |at| now - at >= ABSOLUTE_LIFETIME)),
        None => {
            session.insert(SIGNED_IN_AT, now.unix_timestamp()).await?;
            Ok(false)
        }
    }
}

/// Renews a signed-in session when its last renewal is `RENEW_EVERY` old or unknown; true
/// when it did. Changing the data makes the session layer save the record with a fresh idle
/// expiry and send the cookie again.
pub async fn renew_if_due(session: &Session) -> Result<bool, session::Error> {
    let now = OffsetDateTime::now_utc();
    let last = session.get::<i64>(RENEWED_AT).await?;
    let due = last
        .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
        .is_none_or(|at| now - at >= RENEW_EVERY);
    if due {
        session.insert(RENEWED_AT, now.unix_timestamp()).await?;
    }
    Ok(due)
}
