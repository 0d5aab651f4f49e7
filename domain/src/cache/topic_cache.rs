//! The topic cache itself: its entries, the generations that guard their fills, and the
//! invalidations only receivers may make.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mini_moka::sync::Cache;

use super::entries::{CacheStats, Catalog, Stamped, Ticket, UserTopics};
use super::keys::{
    shard_generation_key, user_key, ALL_USERS_KEY, CATALOG_KEY, CATALOG_SHARDS, MANY_USERS,
};
use super::shared;
use super::stale::UserFlags;
use crate::ids::UserId;
use crate::live::LiveEvent;
use crate::signals::token::Receiving;

pub const TTL: Duration = Duration::from_secs(60);
const MAX_USER_ENTRIES: u64 = 100_000;

#[derive(Clone)]
pub struct TopicCache {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) users: Cache<String, Stamped<UserTopics>>,
    pub(super) catalog: Cache<&'static str, Stamped<Catalog>>,
    pub(super) ttl: Duration,
    pub(super) generations: Mutex<HashMap<String, u64>>,
    /// Versions this instance's own transactions moved in the database and will tell after
    /// their commit, saying what moved ([`OwnCommit`]).
    pub(super) own: Mutex<HashSet<(String, u64)>>,
    /// Versions of this instance's own commits told already, until they are heard back
    /// through the database ([`TopicCache::told_own`]).
    pub(super) told_own: Mutex<HashSet<(String, u64)>>,
    /// Where generations start: the boot time in microseconds, so that versions keep growing
    /// across restarts and a page rendered before one never looks newer than the server.
    pub(super) base: u64,
    /// A zero time to live turns filling off (every load reads the database): for measuring.
    pub(super) enabled: bool,
    pub(super) stats: CacheStats,
}

impl Default for TopicCache {
    fn default() -> Self {
        Self::new(TTL)
    }
}

impl TopicCache {
    /// A cache whose generations live in this process: exact for one server process (SQLite).
    pub fn new(ttl: Duration) -> Self {
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(0);
        Self::starting_at(ttl, base)
    }

    /// A cache whose generations follow the versions kept in the database ([`shared`]): the
    /// reader moves them with [`Self::observe`] before it looks, the writer with
    /// [`Self::advance`] after its commit. Versions count from 0 there and never go back.
    pub fn following_database_versions(ttl: Duration) -> Self {
        Self::starting_at(ttl, 0)
    }

    fn starting_at(ttl: Duration, base: u64) -> Self {
        TopicCache {
            inner: Arc::new(Inner {
                users: Cache::builder()
                    .max_capacity(MAX_USER_ENTRIES)
                    .time_to_live(ttl)
                    .build(),
                catalog: Cache::builder().max_capacity(1).time_to_live(ttl).build(),
                ttl,
                generations: Mutex::new(HashMap::new()),
                own: Mutex::new(HashSet::new()),
                told_own: Mutex::new(HashSet::new()),
                base,
                enabled: !ttl.is_zero(),
                stats: CacheStats::default(),
            }),
        }
    }

    /// False when configured with a zero time to live (measuring the uncached path).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    pub(super) fn generations(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent (each update is
        // one insert), so a poisoned lock is still usable.
        self.inner
            .generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The catalog's generation: the shared part of every user's version.
    pub fn shared_version(&self) -> u64 {
        self.generation(&self.generations(), CATALOG_KEY)
    }

    /// Take this before reading the database for a fill.
    pub fn ticket(&self, user_id: UserId) -> Ticket {
        let generations = self.generations();
        Ticket {
            catalog: self.generation(&generations, CATALOG_KEY),
            user: self.user_version(&generations, user_id),
            user_id,
        }
    }

    /// A user's generation plus the epoch of all users (less the base, so both count from
    /// it): moves when either moves, and never back.
    pub(super) fn user_version(&self, generations: &HashMap<String, u64>, user_id: UserId) -> u64 {
        self.generation(generations, &user_key(user_id))
            + self.generation(generations, ALL_USERS_KEY)
            - self.inner.base
    }

    pub(super) fn generation(&self, generations: &HashMap<String, u64>, key: &str) -> u64 {
        generations.get(key).copied().unwrap_or(self.inner.base)
    }

    /// Moves `key` to its next generation; returns it.
    pub(super) fn bump(&self, generations: &mut HashMap<String, u64>, key: String) -> u64 {
        let base = self.inner.base;
        let generation = generations.entry(key).or_insert(base);
        *generation += 1;
        *generation
    }

    pub fn catalog(&self) -> Option<Catalog> {
        self.count(self.fresh(self.inner.catalog.get(&CATALOG_KEY)))
    }

    pub fn user_topics(&self, user_id: UserId) -> Option<UserTopics> {
        self.count(self.fresh(self.inner.users.get(&user_key(user_id))))
    }

    fn fresh<T>(&self, entry: Option<Stamped<T>>) -> Option<T> {
        entry
            .filter(|entry| entry.read_at.elapsed() < self.inner.ttl)
            .map(|entry| entry.value)
    }

    /// Whether the user's entry is cached right now (without counting a hit or miss).
    pub fn has_user_topics(&self, user_id: UserId) -> bool {
        self.inner.users.contains_key(&user_key(user_id))
    }

    pub fn has_catalog(&self) -> bool {
        self.inner.catalog.contains_key(&CATALOG_KEY)
    }

    fn count<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.inner.stats.hits
        } else {
            &self.inner.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores the catalog read under `ticket`; refused (false) if it may be stale.
    pub fn fill_catalog(&self, ticket: &Ticket, catalog: Catalog) -> bool {
        if !self.inner.enabled {
            return false;
        }
        let generations = self.generations();
        if self.generation(&generations, CATALOG_KEY) != ticket.catalog {
            self.inner
                .stats
                .refused_fills
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.inner
            .catalog
            .insert(CATALOG_KEY, Stamped::now(catalog));
        true
    }

    /// Stores the user's topics read under `ticket`; refused (false) if they may be stale.
    pub fn fill_user_topics(&self, ticket: &Ticket, topics: UserTopics) -> bool {
        if !self.inner.enabled {
            return false;
        }
        let key = user_key(ticket.user_id);
        let generations = self.generations();
        if self.user_version(&generations, ticket.user_id) != ticket.user {
            self.inner
                .stats
                .refused_fills
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.inner.users.insert(key, Stamped::now(topics));
        true
    }

    /// Drops users' topic lists and reports the version bumps, in order. Post-commit only: a
    /// handler cannot call it, because it cannot make the [`Receiving`] token.
    ///
    /// ```compile_fail
    /// fn handler(cache: &domain::cache::TopicCache) {
    ///     let users = [domain::ids::UserId(1)];
    ///     cache.invalidate_users(&users, &domain::signals::Receiving { _private: () });
    /// }
    /// ```
    ///
    /// Reading is open to the list handler:
    ///
    /// ```
    /// fn handler(cache: &domain::cache::TopicCache) {
    ///     let _ = cache.user_topics(domain::ids::UserId(1));
    /// }
    /// ```
    pub fn invalidate_users(&self, user_ids: &[UserId], _: &Receiving) -> Vec<LiveEvent> {
        let mut generations = self.generations();
        if user_ids.len() > MANY_USERS {
            self.inner.users.invalidate_all();
            let epoch = self.bump(&mut generations, ALL_USERS_KEY.to_owned());
            self.inner
                .stats
                .invalidations
                .fetch_add(1, Ordering::Relaxed);
            return vec![LiveEvent::AllUsers(epoch)];
        }
        let mut bumps = Vec::with_capacity(user_ids.len());
        for &user_id in user_ids {
            let key = user_key(user_id);
            self.inner.users.invalidate(&key);
            self.bump(&mut generations, key);
            let version = self.user_version(&generations, user_id);
            bumps.push(LiveEvent::User {
                user_id,
                version,
                flags: None,
            });
            self.inner
                .stats
                .invalidations
                .fetch_add(1, Ordering::Relaxed);
        }
        bumps
    }

    /// Moves generations up to the versions a reader found in the database (never back),
    /// dropping the entries they make stale. Any change committed before the probe has moved
    /// those versions, whichever instance made it.
    pub fn observe(&self, probed: &shared::Probed) {
        let mut generations = self.generations();
        for &(shard, version) in &probed.catalog {
            self.raise_shard(&mut generations, shard, version);
        }
        self.raise(&mut generations, ALL_USERS_KEY, probed.all_users);
        for &(user_id, version) in &probed.users {
            self.raise(&mut generations, &user_key(user_id), version);
        }
    }

    /// After a commit that moved versions in the database (this instance's, or another's
    /// heard through the database): the same as [`Self::observe`] for them, and the bumps to
    /// tell open pages. Entries go only when their version moved here; the bumps are told
    /// always, since a request may have read the new version first (pages ignore a version
    /// they have).
    pub fn advance(&self, moved: &shared::Moved, _: &Receiving) -> Vec<LiveEvent> {
        self.advance_in(&mut self.generations(), moved, None)
    }

    /// [`Self::advance`] under the generations' lock, already held; with the users' new
    /// `flags` when the change said them. A user's bump carries the flags only when the
    /// user's generation here is then exactly the change's: a stream applies them as the step
    /// to the bump's version, and a later change of the user already heard here would be
    /// undone by them.
    pub(super) fn advance_in(
        &self,
        generations: &mut HashMap<String, u64>,
        moved: &shared::Moved,
        flags: Option<&UserFlags>,
    ) -> Vec<LiveEvent> {
        let mut bumps = Vec::with_capacity(moved.users.len() + 2);
        let mut invalidated = 0;
        if let Some(epoch) = moved.all_users {
            invalidated += u64::from(self.raise(generations, ALL_USERS_KEY, epoch));
            bumps.push(LiveEvent::AllUsers(epoch));
        }
        for &(user_id, version) in &moved.users {
            let key = user_key(user_id);
            invalidated += u64::from(self.raise(generations, &key, version));
            let exact = self.generation(generations, &key) == version;
            let told = flags.filter(|_| exact).map(|flags| {
                flags
                    .get(&user_id)
                    .into_iter()
                    .flatten()
                    .map(|(&topic, &subscribed)| (topic, subscribed))
                    .collect()
            });
            bumps.push(LiveEvent::User {
                user_id,
                version: self.user_version(generations, user_id),
                flags: told,
            });
        }
        for &(shard, version) in &moved.catalog {
            invalidated += u64::from(self.raise_shard(generations, shard, version));
        }
        if !moved.catalog.is_empty() {
            bumps.push(LiveEvent::Shared {
                version: self.generation(generations, CATALOG_KEY),
                counts: None,
            });
        }
        self.inner
            .stats
            .invalidations
            .fetch_add(invalidated, Ordering::Relaxed);
        bumps
    }

    /// Raises the catalog's shards to `shards` (read from the database); the bump to tell open
    /// pages if any moved.
    pub fn raise_catalog(&self, shards: &[(u16, u64)], _: &Receiving) -> Option<LiveEvent> {
        let mut generations = self.generations();
        let mut moved = false;
        for &(shard, version) in shards {
            moved |= self.raise_shard(&mut generations, shard, version);
        }
        moved.then(|| LiveEvent::Shared {
            version: self.generation(&generations, CATALOG_KEY),
            counts: None,
        })
    }

    /// [`Self::advance`] for versions heard through the database, less those of this instance's
    /// own commits still on their way to [`Self::advance`]: the listener can hear a commit
    /// before the committing request's post-commit work runs, and told first as a bare version
    /// it would make open pages refetch what the described bump would have patched.
    pub fn advance_heard(&self, moved: &shared::Moved, token: &Receiving) -> Vec<LiveEvent> {
        self.advance(&self.unheard(moved), token)
    }

    /// What of `moved` is not one of this instance's own commits, on their way or told
    /// already (a told one is forgotten here: it is heard back once).
    pub(super) fn unheard(&self, moved: &shared::Moved) -> shared::Moved {
        let own = self.own();
        let mut told = lock(&self.inner.told_own);
        let mut pending = |key: &str, version: u64| {
            let key = (key.to_owned(), version);
            own.contains(&key) || told.remove(&key)
        };
        shared::Moved {
            catalog: moved
                .catalog
                .iter()
                .filter(|&&(shard, v)| !pending(&shard_generation_key(shard), v))
                .copied()
                .collect(),
            all_users: moved.all_users.filter(|&v| !pending(ALL_USERS_KEY, v)),
            users: moved
                .users
                .iter()
                .filter(|&&(user, v)| !pending(&user_key(user), v))
                .copied()
                .collect(),
        }
    }

    /// Notes the versions an open transaction of this instance moved (inside it, before its
    /// commit), until the returned guard drops: after the post-commit work that tells them,
    /// or when the transaction fails.
    pub fn expect_own(&self, moved: &shared::Moved) -> OwnCommit {
        let keys = own_keys(moved);
        self.own().extend(keys.iter().cloned());
        OwnCommit {
            cache: self.clone(),
            keys,
        }
    }

    /// Notes that an own commit's moves were told (after its commit, before its
    /// [`OwnCommit`] lets go of them): heard back through the database, they are no news. A
    /// told bump that says nothing would otherwise go out twice, and every open page refetch
    /// twice, once the counts between had moved the catalog's version past it. Forgotten
    /// when heard; a listener that missed them (its connection was down) leaves them, so past
    /// [`MAX_TOLD_OWN`] the notes start afresh (at worst a page refetches once more).
    pub fn told_own(&self, moved: &shared::Moved) {
        let mut told = lock(&self.inner.told_own);
        if told.len() > MAX_TOLD_OWN {
            told.clear();
        }
        told.extend(own_keys(moved));
    }

    fn own(&self) -> MutexGuard<'_, HashSet<(String, u64)>> {
        lock(&self.inner.own)
    }

    /// Raises a catalog shard to `version` if that is newer, and the catalog's generation (the
    /// shards' sum) with it, dropping the cached catalog; whether it moved.
    pub(super) fn raise_shard(
        &self,
        generations: &mut HashMap<String, u64>,
        shard: u16,
        version: u64,
    ) -> bool {
        if !self.move_shard(generations, shard, version) {
            return false;
        }
        self.inner.catalog.invalidate(&CATALOG_KEY);
        true
    }

    /// [`Self::raise_shard`] without dropping the cached catalog (for an entry patched to the
    /// new version).
    pub(super) fn move_shard(
        &self,
        generations: &mut HashMap<String, u64>,
        shard: u16,
        version: u64,
    ) -> bool {
        let key = shard_generation_key(shard);
        if shard >= CATALOG_SHARDS || version <= self.generation(generations, &key) {
            return false;
        }
        generations.insert(key, version);
        let sum = (0..CATALOG_SHARDS)
            .map(|shard| self.generation(generations, &shard_generation_key(shard)))
            .sum();
        generations.insert(CATALOG_KEY.to_owned(), sum);
        true
    }

    /// Sets `key`'s generation to `version` if that is newer, dropping what the key covers
    /// (the catalog, every user's list, or one user's); whether it moved.
    fn raise(&self, generations: &mut HashMap<String, u64>, key: &str, version: u64) -> bool {
        if version <= self.generation(generations, key) {
            return false;
        }
        generations.insert(key.to_owned(), version);
        match key {
            CATALOG_KEY => self.inner.catalog.invalidate(&CATALOG_KEY),
            ALL_USERS_KEY => self.inner.users.invalidate_all(),
            user => self.inner.users.invalidate(&user.to_owned()),
        }
        true
    }

    /// Drops the shared catalog (names, counts, which topics exist) and reports the bump.
    /// Post-commit only.
    pub fn invalidate_catalog(&self, _: &Receiving) -> LiveEvent {
        let mut generations = self.generations();
        self.inner.catalog.invalidate(&CATALOG_KEY);
        let version = self.bump(&mut generations, CATALOG_KEY.to_owned());
        self.inner
            .stats
            .invalidations
            .fetch_add(1, Ordering::Relaxed);
        LiveEvent::Shared {
            version,
            counts: None,
        }
    }
}

/// Own commits' moves noted as told at most, before the notes start afresh.
const MAX_TOLD_OWN: usize = 4_096;

/// The generation keys and versions `moved` names.
fn own_keys(moved: &shared::Moved) -> Vec<(String, u64)> {
    let mut keys: Vec<(String, u64)> = moved
        .users
        .iter()
        .map(|&(user, version)| (user_key(user), version))
        .collect();
    keys.extend(
        moved
            .catalog
            .iter()
            .map(|&(shard, v)| (shard_generation_key(shard), v)),
    );
    keys.extend(moved.all_users.map(|v| (ALL_USERS_KEY.to_owned(), v)));
    keys
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // One insert, remove or clear per update: a poisoned set is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The versions of one of this instance's own commits, noted until it is done with them
/// ([`TopicCache::expect_own`]).
pub struct OwnCommit {
    cache: TopicCache,
    keys: Vec<(String, u64)>,
}

impl Drop for OwnCommit {
    fn drop(&mut self) {
        let mut own = self.cache.own();
        for key in &self.keys {
            own.remove(key);
        }
    }
}
