//! Committed changes of subscriptions applied to the cached entries instead of dropping them,
//! so that under a stream of subscribes the next page still runs no SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::entries::CatalogEntry;
use super::keys::{shard_generation_key, user_key, CATALOG_KEY};
use super::shared;
use super::topic_cache::TopicCache;
use crate::ids::{TopicId, UserId};
use crate::live::LiveEvent;
use crate::signals::token::Receiving;

impl TopicCache {
    /// A committed change of subscriptions, applied to the cached entries instead of dropping
    /// them: the topics' new `counts` and the users' new `flags`, as read inside the change's
    /// transaction. Reports the version bumps as the invalidations do. Post-commit only, and
    /// in memory only (SQLite, one process): there changes reach the cache in commit order and
    /// an entry is always the read of its key's current generation, so the patched entry is
    /// what a read right after the commit would find. An entry the patch cannot place (a topic
    /// missing from the catalog) is dropped instead.
    pub fn apply_subscriptions(
        &self,
        counts: &BTreeMap<TopicId, i64>,
        flags: &BTreeMap<UserId, BTreeMap<TopicId, bool>>,
        _: &Receiving,
    ) -> Vec<LiveEvent> {
        let mut generations = self.generations();
        let mut bumps = Vec::with_capacity(flags.len() + 1);
        for (&user_id, flags) in flags {
            let key = user_key(user_id);
            self.patch_user_entry(&key, flags);
            self.bump(&mut generations, key);
            bumps.push(LiveEvent::User {
                user_id,
                version: self.user_version(&generations, user_id),
                flags: None,
            });
        }
        self.patch_catalog_entry(counts);
        let version = self.bump(&mut generations, CATALOG_KEY.to_owned());
        bumps.push(LiveEvent::Shared {
            version,
            counts: None,
        });
        bumps
    }

    /// [`Self::advance`] for this instance's own commit that said how it moved subscriptions
    /// (PostgreSQL): an entry whose generation is the one just before the version the commit
    /// moved its key to is patched instead of dropped (for the catalog: the one shard the commit
    /// moved). Each commit moves a row's version by one under that row's lock, so such an entry
    /// was read no earlier than the state the commit started from. (If it was read later, after other instances' commits this one has
    /// not heard yet, their versions are higher: a request probes them before it trusts the
    /// entry, and they drop it.)
    pub fn advance_patching(
        &self,
        moved: &shared::Moved,
        counts: &BTreeMap<TopicId, i64>,
        flags: &BTreeMap<UserId, BTreeMap<TopicId, bool>>,
        token: &Receiving,
    ) -> Vec<LiveEvent> {
        {
            let mut generations = self.generations();
            for &(user_id, version) in &moved.users {
                let key = user_key(user_id);
                if let Some(flags) = flags.get(&user_id) {
                    if self.generation(&generations, &key) + 1 == version {
                        self.patch_user_entry(&key, flags);
                        generations.insert(key, version);
                    }
                }
            }
            // A change moves one shard of the catalog, by one.
            if let [(shard, version)] = moved.catalog[..] {
                if self.generation(&generations, &shard_generation_key(shard)) + 1 == version {
                    self.patch_catalog_entry(counts);
                    self.move_shard(&mut generations, shard, version);
                }
            }
        }
        // What was patched is at its version already; the rest is dropped, and all is told.
        self.advance(moved, token)
    }

    /// Replaces the user's cached ids, if any, with `flags` applied.
    fn patch_user_entry(&self, key: &str, flags: &BTreeMap<TopicId, bool>) {
        let key = key.to_owned();
        let Some(entry) = self.inner.users.get(&key) else {
            return;
        };
        let mut topics = BTreeSet::clone(&entry.value);
        for (&topic, &subscribed) in flags {
            if subscribed {
                topics.insert(topic);
            } else {
                topics.remove(&topic);
            }
        }
        self.inner
            .users
            .insert(key, entry.replaced(Arc::new(topics)));
        self.inner.stats.patches.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the cached catalog, if any, with `counts` applied; drops it if a topic of
    /// `counts` is not in it.
    fn patch_catalog_entry(&self, counts: &BTreeMap<TopicId, i64>) {
        let Some(entry) = self.inner.catalog.get(&CATALOG_KEY) else {
            return;
        };
        match with_counts(&entry.value, counts) {
            Some(catalog) => {
                self.inner
                    .catalog
                    .insert(CATALOG_KEY, entry.replaced(Arc::new(catalog)));
                self.inner.stats.patches.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.inner.catalog.invalidate(&CATALOG_KEY);
                self.inner
                    .stats
                    .invalidations
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `catalog` with the subscriber counts of `counts`; `None` if a topic is not in it.
fn with_counts(
    catalog: &[CatalogEntry],
    counts: &BTreeMap<TopicId, i64>,
) -> Option<Vec<CatalogEntry>> {
    let mut moved = catalog.to_vec();
    for (&topic, &subscribers) in counts {
        moved
            .iter_mut()
            .find(|entry| entry.id == topic)?
            .subscribers = subscribers;
    }
    Some(moved)
}
