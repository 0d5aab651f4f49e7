//! Live versions: what a page follows to stay current without reloading.
//!
//! A [`ViewVersion`] moves whenever a committed change alters what a user sees. The cache's
//! generations are those versions; after commit the receivers publish every bump on the
//! [`LiveHub`] (server), and each open page's event stream forwards the bumps of its user to
//! the page's [`follow`]er (browser), which refetches when a pushed version is newer than the
//! one it rendered.

use serde::{Deserialize, Serialize};

use crate::ids::TopicId;

mod count;

pub use count::Count;

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

/// What moved, told in full so that an open page can patch its rows instead of refetching
/// them: the new counts of the topics whose counts moved (each applied where it is newer
/// than the row's, so in any order), and the user's new subscribed flags, which lead from the
/// user's version `from` to `to` (equal when only counts moved). Values are absolute (a count,
/// not a difference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    pub from: u64,
    pub to: u64,
    pub counts: Vec<(TopicId, Count)>,
    pub flags: Vec<(TopicId, bool)>,
}

impl Patch {
    /// Whether a page showing `shown` ends exactly at the user's version `to` by applying the
    /// flags of this patch. (Its counts apply to any page.)
    pub fn flags_apply_to(&self, shown: &ViewVersion) -> bool {
        self.from <= shown.user && shown.user <= self.to
    }

    /// The version a page showing `shown` is at once this patch is applied.
    pub fn after(&self, shown: &ViewVersion) -> ViewVersion {
        ViewVersion {
            shared: shown.shared,
            user: shown.user.max(self.to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(shared: u64, user: u64) -> ViewVersion {
        ViewVersion { shared, user }
    }

    #[test]
    fn a_patch_s_flags_apply_to_the_user_versions_they_span_and_no_other() {
        let patch = Patch {
            from: 4,
            to: 5,
            counts: vec![(
                TopicId(1),
                Count {
                    subscribers: 3,
                    version: 7,
                },
            )],
            flags: vec![(TopicId(1), true)],
        };
        assert!(patch.flags_apply_to(&version(10, 4)));
        assert!(patch.flags_apply_to(&version(3, 5)), "shown already");
        assert!(
            patch.flags_apply_to(&version(99, 4)),
            "the shared version is no concern of flags"
        );
        assert!(
            !patch.flags_apply_to(&version(10, 3)),
            "a change of the user is missing"
        );
        assert!(
            !patch.flags_apply_to(&version(10, 6)),
            "newer than it: applying would go back"
        );
        assert_eq!(patch.after(&version(10, 4)), version(10, 5));
    }

    #[test]
    fn a_count_is_newer_by_its_own_version_alone() {
        let shown = Count {
            subscribers: 5,
            version: 8,
        };
        assert!(Count {
            subscribers: 4,
            version: 9
        }
        .is_newer_than(&shown));
        assert!(!Count {
            subscribers: 6,
            version: 8
        }
        .is_newer_than(&shown));
        assert!(!Count {
            subscribers: 6,
            version: 7
        }
        .is_newer_than(&shown));
    }
}
