//! What post-commit work acts on: the cache, and the live hub that tells open pages about
//! every version the cache moved.

use crate::cache::{Described, Stale, TopicCache};
use crate::ids::UserId;
use crate::live::{LiveEvent, LiveHub};

use super::token::Receiving;

/// What post-commit work acts on: the cache, and the live hub that tells open pages about
/// every version the cache moved.
pub struct Effects {
    pub(super) cache: TopicCache,
    live: LiveHub,
}

impl Effects {
    pub fn new(cache: TopicCache, live: LiveHub) -> Self {
        Effects { cache, live }
    }

    /// Drops the users' cached lists and tells their open pages.
    pub fn invalidate_users(&self, user_ids: &[UserId], token: &Receiving) {
        for bump in self.cache.invalidate_users(user_ids, token) {
            self.live.publish(bump);
        }
    }

    /// Drops the shared catalog and tells every open page.
    pub fn invalidate_catalog(&self, token: &Receiving) {
        self.live.publish(self.cache.invalidate_catalog(token));
    }

    /// What a committed change made stale, in memory (SQLite): drops it and tells the open
    /// pages, with what moved when the change said. A change that said how it moved
    /// subscriptions patches the cached entries instead of dropping them: under a steady
    /// trickle of subscribes the next page needs no read of the database.
    pub(super) fn invalidate(&self, stale: Stale, token: &Receiving) {
        let bumps = match &stale.described {
            Some(described) if described.covers(&stale) => {
                self.cache
                    .apply_subscriptions(&described.counts, &described.flags, token)
            }
            _ => {
                let users = Vec::from_iter(stale.users);
                let mut bumps = self.cache.invalidate_users(&users, token);
                if stale.catalog {
                    bumps.push(self.cache.invalidate_catalog(token));
                }
                bumps
            }
        };
        self.publish_all(bumps, stale.described.as_ref());
    }

    /// [`Self::advance`] for this instance's own commit, which can say what moved: then the
    /// cached entries it moved are patched where they are one version behind.
    pub(super) fn advance_described(
        &self,
        moved: &crate::cache::shared::Moved,
        described: Option<&Described>,
        patchable: bool,
        token: &Receiving,
    ) {
        let bumps = match described {
            Some(described) if patchable => {
                self.cache
                    .advance_patching(moved, &described.counts, &described.flags, token)
            }
            _ => self.cache.advance(moved, token),
        };
        self.publish_all(bumps, described);
    }

    fn publish_all(&self, bumps: Vec<LiveEvent>, described: Option<&Described>) {
        for bump in bumps {
            self.live.publish(match described {
                Some(described) => described.tell(bump),
                None => bump,
            });
        }
    }

    /// Moves the cache to the versions a committed change gave in the database, heard through
    /// it, and tells the open pages (less this instance's own commits, which tell them
    /// themselves).
    pub fn advance(&self, moved: &crate::cache::shared::Moved, token: &Receiving) {
        for bump in self.cache.advance_heard(moved, token) {
            self.live.publish(bump);
        }
    }

    /// Ends the open pages' streams of a user who logged out.
    pub fn end_user_streams(&self, user_id: UserId, token: &Receiving) {
        self.live.end_user_streams(user_id, token);
    }
}
