//! The cache's keys, as the specification names them.

use crate::ids::UserId;

pub(crate) const CATALOG_KEY: &str = "topics:catalog";
/// The generation of every user's entry at once (an epoch).
pub(crate) const ALL_USERS_KEY: &str = "user:*:topics";
/// Above this many affected users one epoch bump replaces per-user invalidation: deleting a
/// topic with 100,000 subscribers must not cost 100,000 cache operations.
pub const MANY_USERS: usize = 1_000;

/// The cache key of a user's topic list, as the specification names it.
pub fn user_key(user_id: UserId) -> String {
    format!("user:{user_id}:topics")
}

/// The user whose list `key` names, if it names one (the inverse of [`user_key`]).
pub fn user_of_key(key: &str) -> Option<UserId> {
    key.strip_prefix("user:")?
        .strip_suffix(":topics")?
        .parse()
        .ok()
        .map(UserId)
}
