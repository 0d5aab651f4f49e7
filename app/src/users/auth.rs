//! The axum-login side of accounts: the user a session carries, and the backend that finds
//! it through the domain (`domain::users`).

use axum_login::{AuthUser, AuthnBackend};
use domain::db::Db;
use domain::ids::UserId;
use domain::users::{Credentials, User, UserCache};

use super::CurrentUser;
use crate::error::AppError;

/// The account a session is signed in as.
#[derive(Clone, Debug)]
pub struct SessionUser(pub User);

impl std::ops::Deref for SessionUser {
    type Target = User;

    fn deref(&self) -> &User {
        &self.0
    }
}

impl AuthUser for SessionUser {
    type Id = UserId;

    fn id(&self) -> UserId {
        self.0.id
    }

    /// Sessions are bound to the password hash and the session epoch: changing the password,
    /// or ending the user's sessions (`server end-sessions`), ends every session made before.
    fn session_auth_hash(&self) -> &[u8] {
        self.0.session_binding()
    }
}

impl From<&User> for CurrentUser {
    fn from(user: &User) -> Self {
        CurrentUser {
            id: user.id,
            username: user.username.clone(),
            is_staff: user.is_staff,
        }
    }
}

/// The axum-login backend: looks users up in our database, through the server's
/// [`UserCache`].
#[derive(Clone)]
pub struct Backend {
    db: Db,
    users: UserCache,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

impl Backend {
    pub fn new(db: Db, users: UserCache) -> Self {
        Backend { db, users }
    }
}

pub type AuthSession = axum_login::AuthSession<Backend>;

impl AuthnBackend for Backend {
    type User = SessionUser;
    type Credentials = Credentials;
    type Error = AppError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<SessionUser>, AppError> {
        Ok(domain::users::authenticate(&self.db, creds)
            .await?
            .map(SessionUser))
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<SessionUser>, AppError> {
        Ok(
            domain::users::find_remembered(&self.db, &self.users, *user_id)
                .await?
                .map(SessionUser),
        )
    }
}
