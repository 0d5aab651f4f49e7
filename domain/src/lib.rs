//! Subscriptions' domain: what users, topics and subscriptions are, how they change (one
//! transaction each, signals sent from inside it, receivers writing activity and marking
//! cache entries stale), the topic cache and the versions open pages follow, and the
//! database underneath. It knows nothing of HTTP or Leptos: the web layer (`app`, `server`)
//! calls in, never the other way.
//!
//! Without the `server` feature only what the browser shares is built: ids, versions and
//! patches, the topic listing and the activity feed's rows.

pub mod activity;
pub mod ids;
pub mod live;
pub mod topics;

#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod cache;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod names;
#[cfg(feature = "server")]
pub mod schema;
#[cfg(feature = "server")]
pub mod services;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod signals;
#[cfg(feature = "server")]
pub mod subscriptions;
#[cfg(feature = "server")]
pub mod users;

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
