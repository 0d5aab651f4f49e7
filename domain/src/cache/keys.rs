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

/// PostgreSQL keeps the catalog's version in this many rows, each moved by some of the
/// changes, instead of one row every change moves: a change holds its row's lock until its
/// commit has reached the disk, so one row would make every change wait behind the one before
/// it. The catalog's version is the sum of the rows (see `shared` for why that is exact).
pub const CATALOG_SHARDS: u16 = 16;

/// The database row of catalog shard `shard`. Shard 0 keeps the key of the one row that held
/// the catalog's version before it was split, so its count goes on from there.
pub(crate) fn catalog_shard_row(shard: u16) -> String {
    if shard == 0 {
        CATALOG_KEY.to_owned()
    } else {
        format!("{CATALOG_KEY}:{shard}")
    }
}

/// The shard a database row holds, if it holds one (the inverse of [`catalog_shard_row`]).
pub(crate) fn shard_of_row(key: &str) -> Option<u16> {
    if key == CATALOG_KEY {
        return Some(0);
    }
    let shard: u16 = key
        .strip_prefix(CATALOG_KEY)?
        .strip_prefix(':')?
        .parse()
        .ok()?;
    (shard > 0 && shard < CATALOG_SHARDS).then_some(shard)
}

/// The key of a shard's generation in a cache's memory (the catalog's own generation, their
/// sum, stays under [`CATALOG_KEY`]).
pub(crate) fn shard_generation_key(shard: u16) -> String {
    format!("{CATALOG_KEY}#{shard}")
}
