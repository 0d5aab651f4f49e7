//! Live versions: what a page follows to stay current without reloading.
//!
//! A [`ViewVersion`] moves whenever a committed change alters what a user sees. The cache's
//! generations are those versions; after commit the receivers publish every bump on the
//! [`LiveHub`] (server), and each open page's event stream forwards the bumps of its user to
//! the page's [`follow`]er (browser), which refetches when a pushed version is newer than the
//! one it rendered.

use serde::{Deserialize, Serialize};

use crate::ids::TopicId;

#[cfg(feature = "server")]
mod events;
#[cfg(feature = "server")]
mod hub;
#[cfg(feature = "server")]
mod pages;

#[cfg(feature = "server")]
pub use events::{Counts, Flags, LiveEvent};
#[cfg(feature = "server")]
pub use hub::{LiveHub, Refused, StreamGuard, MAX_OPEN_STREAMS, STREAMS_PER_USER};
#[cfg(feature = "server")]
pub use pages::PageFollow;

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

    /// Each part the newer of the two.
    pub fn max_with(&self, other: &ViewVersion) -> ViewVersion {
        ViewVersion {
            shared: self.shared.max(other.shared),
            user: self.user.max(other.user),
        }
    }
}

/// What moved between two versions, told in full so that an open page can patch its rows
/// instead of refetching them: the new subscriber counts of the topics whose counts moved,
/// and the user's new subscribed flags. Values are absolute (a count, not a difference), so a
/// page showing any version from `from` up to `to` ends at `to` by applying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    pub from: ViewVersion,
    pub to: ViewVersion,
    pub counts: Vec<(TopicId, i64)>,
    pub flags: Vec<(TopicId, bool)>,
}

impl Patch {
    /// Whether a page showing `shown` ends exactly at `to` by applying this patch.
    pub fn applies_to(&self, shown: &ViewVersion) -> bool {
        let within = |from: u64, shown: u64, to: u64| from <= shown && shown <= to;
        within(self.from.shared, shown.shared, self.to.shared)
            && within(self.from.user, shown.user, self.to.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(shared: u64, user: u64) -> ViewVersion {
        ViewVersion { shared, user }
    }

    #[test]
    fn a_patch_applies_to_the_versions_it_spans_and_no_other() {
        let patch = Patch {
            from: version(10, 4),
            to: version(12, 5),
            counts: vec![(TopicId(1), 3)],
            flags: vec![],
        };
        assert!(patch.applies_to(&version(10, 4)));
        assert!(
            patch.applies_to(&version(11, 5)),
            "part of it shown already"
        );
        assert!(patch.applies_to(&version(12, 5)));
        assert!(
            !patch.applies_to(&version(9, 4)),
            "a change before it is missing"
        );
        assert!(
            !patch.applies_to(&version(10, 3)),
            "a change of the user is missing"
        );
        assert!(
            !patch.applies_to(&version(13, 5)),
            "newer than it: applying would go back"
        );
        assert!(!patch.applies_to(&version(12, 6)));
    }
}
