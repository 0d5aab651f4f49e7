//! Live versions: what a page follows to stay current without reloading.
//!
//! A [`ViewVersion`] moves whenever a committed change alters what a user sees. The cache's
//! generations are those versions; after commit the receivers publish every bump on the
//! [`LiveHub`] (server), and each open page's event stream forwards the bumps of its user to
//! the page's [`follow`]er (browser), which refetches when a pushed version is newer than the
//! one it rendered.

use serde::{Deserialize, Serialize};

#[cfg(feature = "hydrate")]
pub mod follow;
#[cfg(feature = "ssr")]
mod hub;

#[cfg(feature = "ssr")]
pub use hub::{LiveEvent, LiveHub, Refused, StreamGuard, MAX_OPEN_STREAMS, STREAMS_PER_USER};

/// The version of what one user sees: `shared` for changes every user sees (topics, names,
/// counts), `user` for the user's own subscriptions. Both only grow, across restarts too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewVersion {
    pub shared: u64,
    pub user: u64,
}

impl ViewVersion {
    /// Whether `self` (pushed by the server) shows something `shown` does not.
    pub fn is_newer_than(&self, shown: &ViewVersion) -> bool {
        self.shared > shown.shared || self.user > shown.user
    }
}
