//! What a change makes stale, collected while its transaction runs: the entries to drop and,
//! for a change of subscriptions, how they moved.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{TopicId, UserId};
use crate::live::{Count, LiveEvent};

/// The cache entries a change makes stale. Collected while the transaction runs, so that a
/// backend whose versions live in the database (PostgreSQL, several instances) can move them
/// inside the same transaction; in memory (SQLite, one process) they move after the commit.
#[derive(Debug)]
pub(crate) struct Stale {
    pub users: BTreeSet<UserId>,
    pub catalog: bool,
    /// How the stale entries moved, for open pages to patch; `None` once a receiver marked
    /// something stale without saying how (a name changed, a topic came or went).
    pub described: Option<Described>,
}

impl Default for Stale {
    fn default() -> Self {
        Stale {
            users: BTreeSet::new(),
            catalog: false,
            described: Some(Described::default()),
        }
    }
}

impl Stale {
    pub(crate) fn merge(&mut self, other: Stale) {
        self.users.extend(other.users);
        self.catalog |= other.catalog;
        self.described = match (self.described.take(), other.described) {
            (Some(mut mine), Some(theirs)) => {
                mine.counts.extend(theirs.counts);
                for (user, flags) in theirs.flags {
                    mine.flags.entry(user).or_default().extend(flags);
                }
                Some(mine)
            }
            _ => None,
        };
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.catalog
    }
}

/// What a change did to subscriber counts and subscribed flags, as read inside its
/// transaction: absolute values, so that they are right as of the version the change moves
/// to (`crate::live::Patch`).
#[derive(Debug, Default)]
pub(crate) struct Described {
    pub(crate) counts: BTreeMap<TopicId, Count>,
    pub(crate) flags: UserFlags,
}

/// Users' new subscribed flags, by user and topic.
pub type UserFlags = BTreeMap<UserId, BTreeMap<TopicId, bool>>;

impl Described {
    /// Whether this says how everything `stale` marks moved: the catalog's counts and the
    /// flags of every stale user.
    pub(crate) fn covers(&self, stale: &Stale) -> bool {
        stale.catalog
            && stale.users.len() == self.flags.len()
            && stale.users.iter().all(|user| self.flags.contains_key(user))
    }

    /// `bump` with the counts that moved, for the open pages to patch. (A user's bump gets
    /// the flags from the cache, which knows whether they are the step to its version.)
    pub(crate) fn tell(&self, bump: LiveEvent) -> LiveEvent {
        match bump {
            LiveEvent::Shared { version, .. } => LiveEvent::Shared {
                version,
                counts: Some(self.counts.iter().map(|(&t, &n)| (t, n)).collect()),
            },
            other => other,
        }
    }
}
