//! The topic cache: fast, and never serving what a committed change made stale.
//!
//! Two kinds of entry, both with a 60 s time to live:
//! - `user:{user_id}:topics` — the ids of the topics a user subscribes to (`user.topics`);
//! - `topics:catalog` — every topic with its name and subscriber count, the part of the page
//!   every user shares.
//!
//! The list handler is the only reader and filler. Invalidation takes a [`Receiving`] token,
//! so only signal receivers can call it (after commit); it reports the version bumps it made,
//! which the receivers publish to open pages (`crate::live`).
//!
//! No stale fill: each key has a generation, bumped by every invalidation. A reader takes a
//! [`Ticket`] (the generations) *before* it reads the database, and its fill is refused when
//! a generation moved in between — the value it read may predate the commit that caused the
//! invalidation. The check and the insert happen under the same lock as bump-and-remove.

mod entries;
pub(crate) mod keys;
#[cfg(test)]
mod ordering_tests;
mod patches;
pub mod payloads;
pub mod probes;
pub mod shared;
mod stale;
#[cfg(test)]
mod tests;
mod topic_cache;

pub use entries::{CacheStats, Catalog, CatalogEntry, Ticket, UserTopics};
pub use keys::{user_key, user_of_key, MANY_USERS};
pub(crate) use stale::{Described, Stale, UserFlags};
pub use topic_cache::{OwnCommit, TopicCache, TTL};
