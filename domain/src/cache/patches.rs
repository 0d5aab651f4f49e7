//! Committed changes of subscriptions applied to the cached entries instead of dropping them,
//! so that under a stream of subscribes the next page still runs no SQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::entries::CatalogEntry;
use super::keys::{shard_generation_key, user_key, CATALOG_KEY, CATALOG_SHARDS};
use super::shared;
use super::stale::UserFlags;
use super::topic_cache::TopicCache;
use crate::ids::TopicId;
use crate::live::{Count, LiveEvent};
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
        counts: &BTreeMap<TopicId, Count>,
        flags: &UserFlags,
        _: &Receiving,
    ) -> Vec<LiveEvent> {
        let mut generations = self.generations();
        let mut bumps = Vec::with_capacity(flags.len() + 1);
        for (&user_id, flags) in flags {
            let key = user_key(user_id);
            self.patch_user_entry(&key, flags);
            self.bump(&mut generations, key);
            // In commit order here: the very step to this version.
            bumps.push(LiveEvent::User {
                user_id,
                version: self.user_version(&generations, user_id),
                flags: Some(flags.iter().map(|(&t, &f)| (t, f)).collect()),
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
    /// (PostgreSQL): an entry that is exactly one commit behind is patched instead of dropped.
    ///
    /// **The patching rule**, enforced here:
    /// - A user's entry is patched when its generation is the one just before the version the
    ///   commit moved the user's row to: every commit of that user moves that one row by one,
    ///   under its lock, so the entry was read no earlier than the state the commit started
    ///   from.
    /// - The catalog's entry is patched only when every shard here equals what the commit's
    ///   transaction saw right after its own move (`bumped.catalog_seen`), its own shard one
    ///   below. A shard alone orders nothing: two commits of one topic move different shards,
    ///   and their post-commit work can run in either order, so the later commit's counts could
    ///   be overwritten by the earlier one's. With every shard matched, the entry stands for
    ///   exactly the commits the transaction saw, which include every earlier commit of its
    ///   topics (they held the topic's row before it); a later commit of those topics has
    ///   already moved a shard past what this transaction saw, and nothing is patched.
    ///
    /// An entry read after commits this instance has not heard of yet is patched as if it had
    /// not seen them; a request probes their versions before it trusts the entry, and they
    /// drop it.
    ///
    /// Also the catalog's version the commit took it to when the rule holds for the catalog
    /// here (or every shard here is what the commit saw, see [`Self::advance_heard_told`]);
    /// `None` otherwise (the cached catalog is dropped; a diagnostic only: open pages place
    /// the commit's counts by their own versions).
    pub fn advance_patching(
        &self,
        bumped: &shared::Bumped,
        counts: &BTreeMap<TopicId, Count>,
        flags: &UserFlags,
        _: &Receiving,
    ) -> (Vec<LiveEvent>, Option<u64>) {
        let moved = &bumped.moved;
        let mut next = None;
        let mut generations = self.generations();
        {
            for &(user_id, version) in &moved.users {
                let key = user_key(user_id);
                if let Some(flags) = flags.get(&user_id) {
                    if self.generation(&generations, &key) + 1 == version {
                        self.patch_user_entry(&key, flags);
                        generations.insert(key, version);
                    }
                }
            }
            if let (Some(seen), [(shard, version)]) = (&bumped.catalog_seen, &moved.catalog[..]) {
                next = self.step_catalog(&mut generations, seen, *shard, *version, counts);
            }
        }
        // What was patched is at its version already; the rest is dropped, and all is told.
        (self.advance_in(&mut generations, moved, Some(flags)), next)
    }

    /// [`Self::advance_heard`] for another instance's commit that said what the catalog looked
    /// like to its transaction (`seen`, every shard right after its own move, and its new
    /// `counts`): when, by the patching rule above, it is the very next step of the catalog
    /// here, the cached catalog is patched, as for this instance's own commits, so the next
    /// page needs no read of the whole catalog; and the version it took the catalog to is
    /// returned (`None`: not the next step). Checked and moved under one hold of the
    /// generations, so no commit of this instance slips in between.
    ///
    /// Also the next step when the shards here are exactly `seen` already: a request read the
    /// versions in the database after the commit and before its notification arrived (every
    /// request does, and the notification takes a few milliseconds); no shard here is past
    /// what the commit saw, so no later commit of its topics was read here either.
    pub fn advance_heard_told(
        &self,
        moved: &shared::Moved,
        seen: &[(u16, u64)],
        counts: &[(TopicId, Count)],
        flags: &UserFlags,
        _: &Receiving,
    ) -> (Vec<LiveEvent>, Option<u64>) {
        let unheard = self.unheard(moved);
        let mut generations = self.generations();
        let next = match unheard.catalog[..] {
            [(shard, version)] => {
                let counts = counts.iter().copied().collect();
                self.step_catalog(&mut generations, seen, shard, version, &counts)
            }
            _ => None,
        };
        (
            self.advance_in(&mut generations, &unheard, Some(flags)),
            next,
        )
    }

    /// The patching rule for the catalog, for a commit that moved `shard` to `version` with
    /// `seen` and left `counts`: exactly one commit behind, the cached catalog is patched and
    /// the shard moved; behind or there, the version the commit took the catalog to. `None`
    /// when neither holds (the entry is dropped).
    fn step_catalog(
        &self,
        generations: &mut HashMap<String, u64>,
        seen: &[(u16, u64)],
        shard: u16,
        version: u64,
        counts: &BTreeMap<TopicId, Count>,
    ) -> Option<u64> {
        if self.one_commit_behind(generations, seen, shard, version) {
            self.patch_catalog_entry(counts);
            self.move_shard(generations, shard, version);
        } else if !self.found_at(generations, seen) {
            return None;
        }
        Some(shared::catalog_version(seen))
    }

    /// Whether every shard here is at `seen`, all of them given.
    fn found_at(&self, generations: &HashMap<String, u64>, seen: &[(u16, u64)]) -> bool {
        seen.len() == usize::from(CATALOG_SHARDS)
            && seen.iter().all(|&(at, seen_version)| {
                self.generation(generations, &shard_generation_key(at)) == seen_version
            })
    }

    /// Whether the shards here are `seen` (every shard, as a commit's transaction read them
    /// after moving `shard` to `version`) with `shard` still one below.
    fn one_commit_behind(
        &self,
        generations: &HashMap<String, u64>,
        seen: &[(u16, u64)],
        shard: u16,
        version: u64,
    ) -> bool {
        seen.len() == usize::from(CATALOG_SHARDS)
            && seen.iter().all(|&(at, seen_version)| {
                let here = self.generation(generations, &shard_generation_key(at));
                if at == shard {
                    seen_version == version && here + 1 == version
                } else {
                    here == seen_version
                }
            })
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
    fn patch_catalog_entry(&self, counts: &BTreeMap<TopicId, Count>) {
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

/// `catalog` with the subscriber counts of `counts` where newer than its own; `None` if a
/// topic is not in it.
fn with_counts(
    catalog: &[CatalogEntry],
    counts: &BTreeMap<TopicId, Count>,
) -> Option<Vec<CatalogEntry>> {
    let mut moved = catalog.to_vec();
    for (&topic, &count) in counts {
        let entry = moved.iter_mut().find(|entry| entry.id == topic)?;
        if count.is_newer_than(&entry.count) {
            entry.count = count;
        }
    }
    Some(moved)
}
