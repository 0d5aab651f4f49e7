//! What post-commit work acts on: the cache, and the live hub that tells open pages about
//! every version the cache moved.

use crate::cache::payloads::Told;
use crate::cache::{Described, Stale, TopicCache, UserFlags};
use crate::ids::UserId;
use crate::live::{LiveEvent, LiveHub};

use super::announce::Announcer;
use super::token::Receiving;

/// What post-commit work acts on: the cache, and the live hub that tells open pages about
/// every version the cache moved.
pub struct Effects {
    pub(super) cache: TopicCache,
    live: LiveHub,
    /// Tells other instances what this one's commits moved (PostgreSQL).
    announcer: Option<Announcer>,
}

impl Effects {
    pub fn new(cache: TopicCache, live: LiveHub) -> Self {
        Effects {
            cache,
            live,
            announcer: None,
        }
    }

    /// These effects, also telling other instances through `announcer` after each commit.
    pub fn announcing(self, announcer: Announcer) -> Self {
        Effects {
            announcer: Some(announcer),
            ..self
        }
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

    /// [`Self::advance`] for this instance's own commit (PostgreSQL), which can say what moved:
    /// then the cached entries it moved are patched where they are one version behind. Open
    /// pages are told what moved: the counts with their versions (a page keeps the newer
    /// count per row, so no order among commits is needed), the users' flags where the
    /// user's version is the very next one (a user's row is moved by one change at a time);
    /// otherwise they refetch. Then the other instances are told.
    pub(super) fn advance_described(
        &self,
        bumped: &crate::cache::shared::Bumped,
        described: Option<&Described>,
        patchable: bool,
        token: &Receiving,
    ) {
        let bumps = match described {
            Some(described) if patchable => {
                let (bumps, next) =
                    self.cache
                        .advance_patching(bumped, &described.counts, &described.flags, token);
                if next.is_none() {
                    tracing::debug!("an own commit is not the catalog's next step here");
                }
                bumps
            }
            _ => self.cache.advance(&bumped.moved, token),
        };
        self.publish_all(bumps, described);
        self.cache.told_own(&bumped.moved);
        if let Some(announcer) = &self.announcer {
            // With its counts, and the catalog as the transaction saw it: another instance
            // whose catalog is exactly one commit behind patches its cached catalog too.
            let told = match (described, &bumped.catalog_seen) {
                (Some(described), Some(seen)) if !described.counts.is_empty() => Some(Told {
                    seen: seen.clone(),
                    counts: described.counts.iter().map(|(&t, &n)| (t, n)).collect(),
                    flags: described
                        .flags
                        .iter()
                        .flat_map(|(&user, flags)| {
                            flags.iter().map(move |(&topic, &flag)| (user, topic, flag))
                        })
                        .collect(),
                }),
                _ => None,
            };
            announcer.announce(&bumped.moved, told.as_ref());
        }
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

    /// [`Self::advance`] for a commit that told its counts and the catalog its transaction
    /// saw: open pages are told the counts with their versions (see [`Self::advance_described`]).
    pub fn advance_told(
        &self,
        moved: &crate::cache::shared::Moved,
        told: &Told,
        token: &Receiving,
    ) {
        let mut flags = UserFlags::new();
        for &(user, topic, subscribed) in &told.flags {
            flags.entry(user).or_default().insert(topic, subscribed);
        }
        let (bumps, next) =
            self.cache
                .advance_heard_told(moved, &told.seen, &told.counts, &flags, token);
        if next.is_none() {
            tracing::debug!("another instance's commit is not the catalog's next step here");
        }
        for bump in bumps {
            self.live.publish(match bump {
                LiveEvent::Shared { version, .. } => LiveEvent::Shared {
                    version,
                    counts: Some(told.counts.iter().copied().collect()),
                },
                bump => bump,
            });
        }
    }

    /// The catalog's versions as read again from the database: told to open pages only where
    /// they moved here (a notification was lost).
    pub fn reread_catalog(&self, shards: &[(u16, u64)], token: &Receiving) {
        if let Some(bump) = self.cache.raise_catalog(shards, token) {
            tracing::debug!("the catalog's reread found a commit no notification told");
            self.live.publish(bump);
        }
    }

    /// Ends the open pages' streams of a user who logged out.
    pub fn end_user_streams(&self, user_id: UserId, token: &Receiving) {
        self.live.end_user_streams(user_id, token);
    }
}
