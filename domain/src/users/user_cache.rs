//! Accounts kept in memory for the session layer, which asks for its user on every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::account::{find_by_id, User};
use crate::db::shared_reads::SharedReads;
use crate::db::{Db, DbError};
use crate::error::DomainError;
use crate::ids::UserId;

/// How long a looked-up user is reused. Changes made elsewhere reach every server at once
/// (`crate::signals::account_changes`); the bound is for a server that missed them.
const USER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Users looked up by the session layer, kept in memory: every request with a session asks
/// for its user. One per server, shared by the axum-login backend and the follower of account
/// changes, which drops a changed user.
#[derive(Clone)]
pub struct UserCache {
    users: mini_moka::sync::Cache<UserId, User>,
    /// Moved by every [`UserCache::forget`]: a lookup that read the database before a forget
    /// may hold the row the change replaced, so its fill is refused.
    forgets: Arc<AtomicU64>,
    /// Lookups of one user at once share one read (when the copies expire, every open page of
    /// a user asks at the same moment); one begun before a forget is not joined.
    reads: SharedReads<UserId, Option<User>>,
}

impl Default for UserCache {
    fn default() -> Self {
        UserCache {
            users: mini_moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(USER_CACHE_TTL)
                .build(),
            forgets: Arc::default(),
            reads: SharedReads::default(),
        }
    }
}

impl UserCache {
    /// Drops `user_id`, so that the next request reads the account again.
    pub fn forget(&self, user_id: UserId) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
        self.users.invalidate(&user_id);
    }

    pub(super) fn get(&self, user_id: UserId) -> Option<User> {
        self.users.get(&user_id)
    }

    /// Where a lookup starts: pass it to [`UserCache::fill`] with what it read.
    pub(super) fn before_read(&self) -> u64 {
        self.forgets.load(Ordering::SeqCst)
    }

    /// Reads of users from the database since start-up (one serves every lookup waiting).
    pub fn reads(&self) -> u64 {
        self.reads.reads()
    }

    pub(super) fn fill(&self, before_read: u64, user: User) {
        if self.forgets.load(Ordering::SeqCst) == before_read {
            self.users.insert(user.id, user);
        }
    }
}

/// The account `id`, from `users` when it holds it, else read and remembered there (unless
/// it changed while being read).
pub async fn find_remembered(
    db: &Db,
    users: &UserCache,
    id: UserId,
) -> Result<Option<User>, DomainError> {
    if let Some(user) = users.get(id) {
        return Ok(Some(user));
    }
    let before_read = users.before_read();
    let (db, filled) = (db.clone(), users.clone());
    let read = move || async move {
        let user = db
            .run(move |conn| find_by_id(conn, id).map_err(DbError::from))
            .await?;
        if let Some(user) = &user {
            filled.fill(before_read, user.clone());
        }
        Ok(user)
    };
    users
        .reads
        .get(id, before_read, || users.get(id).map(Some), read)
        .await
}
