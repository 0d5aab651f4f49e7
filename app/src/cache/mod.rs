//! The topic cache: fast, and never serving what a committed change made stale.
//!
//! Two kinds of entry, both with a 60 s time to live:
//! - `user:{user_id}:topics` — the ids of the topics a user subscribes to (`user.topics`);
//! - `topics:catalog` — every topic with its name and subscriber count, the part of the page
//!   every user shares.
//!
//! The list handler is the only reader and filler. Invalidation takes a [`Receiving`] token,
//! so only signal receivers can call it (after commit); it reports the version bumps it made,
//! which the receivers publish to open pages (`crate::live`).
//!
//! No stale fill: each key has a generation, bumped by every invalidation. A reader takes a
//! [`Ticket`] (the generations) *before* it reads the database, and its fill is refused when
//! a generation moved in between — the value it read may predate the commit that caused the
//! invalidation. The check and the insert happen under the same lock as bump-and-remove.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mini_moka::sync::Cache;

use crate::ids::{TopicId, UserId};
use crate::live::{LiveEvent, ViewVersion};
use crate::signals::Receiving;

pub mod probes;
pub mod shared;

pub const TTL: Duration = Duration::from_secs(60);
const MAX_USER_ENTRIES: u64 = 100_000;
const CATALOG_KEY: &str = "topics:catalog";
/// The generation of every user's entry at once (an epoch).
const ALL_USERS_KEY: &str = "user:*:topics";
/// Above this many affected users one epoch bump replaces per-user invalidation: deleting a
/// topic with 100,000 subscribers must not cost 100,000 cache operations.
pub const MANY_USERS: usize = 1_000;

/// The cache key of a user's topic list, as the specification names it.
pub fn user_key(user_id: UserId) -> String {
    format!("user:{user_id}:topics")
}

/// The user whose list `key` names, if it names one (the inverse of [`user_key`]).
pub fn user_of_key(key: &str) -> Option<UserId> {
    key.strip_prefix("user:")?
        .strip_suffix(":topics")?
        .parse()
        .ok()
        .map(UserId)
}

/// One topic as every user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub id: TopicId,
    /// Shared, so that moving a count copies the catalog without copying every name.
    pub name: Arc<str>,
    pub subscribers: i64,
}

pub type Catalog = Arc<Vec<CatalogEntry>>;
pub type UserTopics = Arc<BTreeSet<TopicId>>;

/// The generations a reader saw before reading the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub catalog: u64,
    pub user: u64,
    user_id: UserId,
}

impl Ticket {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
}

/// The generations are the versions pages follow.
impl From<Ticket> for ViewVersion {
    fn from(ticket: Ticket) -> Self {
        ViewVersion {
            shared: ticket.catalog,
            user: ticket.user,
        }
    }
}

/// Counters for the metrics endpoint and for tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    /// Entries changed in place by a described change of subscriptions.
    pub patches: AtomicU64,
    pub refused_fills: AtomicU64,
}

#[derive(Clone)]
pub struct TopicCache {
    inner: Arc<Inner>,
}

/// An entry with the time it was read from the database: a patched entry is stored anew, and
/// must not outlive the time to live of the read it started from.
#[derive(Clone)]
struct Stamped<T> {
    read_at: Instant,
    value: T,
}

struct Inner {
    users: Cache<String, Stamped<UserTopics>>,
    catalog: Cache<&'static str, Stamped<Catalog>>,
    ttl: Duration,
    generations: Mutex<HashMap<String, u64>>,
    /// Versions this instance's own transactions moved in the database and will tell after
    /// their commit, saying what moved ([`OwnCommit`]).
    own: Mutex<HashSet<(String, u64)>>,
    /// Where generations start: the boot time in microseconds, so that versions keep growing
    /// across restarts and a page rendered before one never looks newer than the server.
    base: u64,
    /// A zero time to live turns filling off (every load reads the database): for measuring.
    enabled: bool,
    stats: CacheStats,
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

    fn generations(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent (each update is
        // one insert), so a poisoned lock is still usable.
        self.inner
            .generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    fn user_version(&self, generations: &HashMap<String, u64>, user_id: UserId) -> u64 {
        self.generation(generations, &user_key(user_id))
            + self.generation(generations, ALL_USERS_KEY)
            - self.inner.base
    }

    fn generation(&self, generations: &HashMap<String, u64>, key: &str) -> u64 {
        generations.get(key).copied().unwrap_or(self.inner.base)
    }

    /// Moves `key` to its next generation; returns it.
    fn bump(&self, generations: &mut HashMap<String, u64>, key: String) -> u64 {
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
    /// fn handler(cache: &app::cache::TopicCache) {
    ///     let users = [app::ids::UserId(1)];
    ///     cache.invalidate_users(&users, &app::signals::Receiving { _private: () });
    /// }
    /// ```
    ///
    /// Reading is open to the list handler:
    ///
    /// ```
    /// fn handler(cache: &app::cache::TopicCache) {
    ///     let _ = cache.user_topics(app::ids::UserId(1));
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
        self.raise(&mut generations, CATALOG_KEY, probed.catalog);
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
        let mut generations = self.generations();
        let mut bumps = Vec::with_capacity(moved.users.len() + 2);
        let mut invalidated = 0;
        if let Some(epoch) = moved.all_users {
            invalidated += u64::from(self.raise(&mut generations, ALL_USERS_KEY, epoch));
            bumps.push(LiveEvent::AllUsers(epoch));
        }
        for &(user_id, version) in &moved.users {
            invalidated += u64::from(self.raise(&mut generations, &user_key(user_id), version));
            let version = self.user_version(&generations, user_id);
            bumps.push(LiveEvent::User {
                user_id,
                version,
                flags: None,
            });
        }
        if let Some(version) = moved.catalog {
            invalidated += u64::from(self.raise(&mut generations, CATALOG_KEY, version));
            bumps.push(LiveEvent::Shared {
                version,
                counts: None,
            });
        }
        self.inner
            .stats
            .invalidations
            .fetch_add(invalidated, Ordering::Relaxed);
        bumps
    }

    /// [`Self::advance`] for versions heard through the database, less those of this instance's
    /// own commits still on their way to [`Self::advance`]: the listener can hear a commit
    /// before the committing request's post-commit work runs, and told first as a bare version
    /// it would make open pages refetch what the described bump would have patched.
    pub fn advance_heard(&self, moved: &shared::Moved, token: &Receiving) -> Vec<LiveEvent> {
        let unheard = {
            let own = self.own();
            let pending = |key: &str, version: u64| own.contains(&(key.to_owned(), version));
            shared::Moved {
                catalog: moved.catalog.filter(|&v| !pending(CATALOG_KEY, v)),
                all_users: moved.all_users.filter(|&v| !pending(ALL_USERS_KEY, v)),
                users: moved
                    .users
                    .iter()
                    .filter(|&&(user, v)| !pending(&user_key(user), v))
                    .copied()
                    .collect(),
            }
        };
        self.advance(&unheard, token)
    }

    /// Notes the versions an open transaction of this instance moved (inside it, before its
    /// commit), until the returned guard drops: after the post-commit work that tells them,
    /// or when the transaction fails.
    pub fn expect_own(&self, moved: &shared::Moved) -> OwnCommit {
        let mut keys: Vec<(String, u64)> = moved
            .users
            .iter()
            .map(|&(user, version)| (user_key(user), version))
            .collect();
        keys.extend(moved.catalog.map(|v| (CATALOG_KEY.to_owned(), v)));
        keys.extend(moved.all_users.map(|v| (ALL_USERS_KEY.to_owned(), v)));
        self.own().extend(keys.iter().cloned());
        OwnCommit {
            cache: self.clone(),
            keys,
        }
    }

    fn own(&self) -> MutexGuard<'_, HashSet<(String, u64)>> {
        // One insert or remove per update: a poisoned set is still consistent.
        self.inner
            .own
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    /// moved its key to is patched instead of dropped. Each commit moves a key's version by one
    /// under that version row's lock, so such an entry was read no earlier than the state the
    /// commit started from. (If it was read later, after other instances' commits this one has
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
            if let Some(version) = moved.catalog {
                if self.generation(&generations, CATALOG_KEY) + 1 == version {
                    self.patch_catalog_entry(counts);
                    generations.insert(CATALOG_KEY.to_owned(), version);
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

impl<T> Stamped<T> {
    /// Another value read as of the same time (a patch of this one).
    fn replaced(&self, value: T) -> Self {
        Stamped {
            read_at: self.read_at,
            value,
        }
    }

    fn now(value: T) -> Self {
        Stamped {
            read_at: Instant::now(),
            value,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn catalog(names: &[&str]) -> Catalog {
        Arc::new(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| CatalogEntry {
                    id: TopicId(i as i64 + 1),
                    name: (*name).into(),
                    subscribers: 0,
                })
                .collect(),
        )
    }

    #[test]
    fn keys_follow_the_specification() {
        assert_eq!(user_key(UserId(7)), "user:7:topics");
        assert_eq!(user_of_key("user:7:topics"), Some(UserId(7)));
        assert_eq!(user_of_key(ALL_USERS_KEY), None);
        assert_eq!(user_of_key(CATALOG_KEY), None);
    }

    #[test]
    fn fill_then_hit_then_invalidate() {
        let cache = TopicCache::default();
        assert!(cache.user_topics(UserId(1)).is_none());
        let ticket = cache.ticket(UserId(1));
        assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::from([TopicId(3)]))));
        assert_eq!(
            cache.user_topics(UserId(1)).as_deref(),
            Some(&BTreeSet::from([TopicId(3)]))
        );
        assert!(
            cache.user_topics(UserId(2)).is_none(),
            "entries are per user"
        );

        cache.invalidate_users(&[UserId(1)], &crate::testing::token());
        assert!(cache.user_topics(UserId(1)).is_none());
        assert_eq!(cache.stats().hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats().invalidations.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_fill_read_before_an_invalidation_is_refused() {
        let cache = TopicCache::default();
        let token = crate::testing::token();
        let before = cache.ticket(UserId(1));
        // ... the reader reads the database here; a writer commits and invalidates ...
        cache.invalidate_users(&[UserId(1)], &token);
        cache.invalidate_catalog(&token);
        assert!(!cache.fill_user_topics(&before, Arc::new(BTreeSet::new())));
        assert!(!cache.fill_catalog(&before, catalog(&["Old"])));
        assert!(cache.user_topics(UserId(1)).is_none());
        assert!(cache.catalog().is_none());

        // A reader that started after the invalidation may fill.
        let after = cache.ticket(UserId(1));
        assert!(cache.fill_catalog(&after, catalog(&["New"])));
        assert_eq!(
            cache.catalog().map(|c| c[0].name.clone()),
            Some("New".into())
        );
    }

    #[test]
    fn a_described_change_patches_the_entries_and_moves_their_versions() {
        let cache = TopicCache::default();
        let token = crate::testing::token();
        let ticket = cache.ticket(UserId(1));
        assert!(cache.fill_catalog(&ticket, catalog(&["A", "B", "C"])));
        assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::from([TopicId(1)]))));
        let other = cache.ticket(UserId(2));

        let bumps = cache.apply_subscriptions(
            &BTreeMap::from([(TopicId(2), 5), (TopicId(1), 0)]),
            &BTreeMap::from([(
                UserId(1),
                BTreeMap::from([(TopicId(2), true), (TopicId(1), false)]),
            )]),
            &token,
        );

        let counts: Vec<i64> = cache
            .catalog()
            .map(|c| c.iter().map(|entry| entry.subscribers).collect())
            .unwrap_or_default();
        assert_eq!(counts, [0, 5, 0]);
        assert_eq!(
            cache.user_topics(UserId(1)).as_deref(),
            Some(&BTreeSet::from([TopicId(2)]))
        );
        assert_eq!(
            bumps,
            [
                LiveEvent::User {
                    user_id: UserId(1),
                    version: ticket.user + 1,
                    flags: None,
                },
                LiveEvent::Shared {
                    version: ticket.catalog + 1,
                    counts: None,
                },
            ]
        );
        assert_eq!(
            cache.ticket(UserId(2)).user,
            other.user,
            "others keep theirs"
        );
        assert_eq!(cache.stats().patches.load(Ordering::Relaxed), 2);
        assert_eq!(cache.stats().invalidations.load(Ordering::Relaxed), 0);
        // A read that began before the change cannot replace what the patch made.
        assert!(!cache.fill_catalog(&ticket, catalog(&["A", "B", "C"])));
        assert!(!cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
    }

    #[test]
    fn a_patch_that_names_a_topic_the_catalog_lacks_drops_the_catalog() {
        let cache = TopicCache::default();
        let token = crate::testing::token();
        let ticket = cache.ticket(UserId(1));
        assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
        cache.apply_subscriptions(
            &BTreeMap::from([(TopicId(9), 1)]),
            &BTreeMap::from([(UserId(1), BTreeMap::from([(TopicId(9), true)]))]),
            &token,
        );
        assert!(cache.catalog().is_none());
        assert!(cache.user_topics(UserId(1)).is_none(), "nothing to patch");
        assert!(cache.ticket(UserId(1)).catalog > ticket.catalog);
    }

    #[test]
    fn a_patched_entry_expires_with_the_read_it_came_from() {
        let cache = TopicCache::new(Duration::from_millis(200));
        let token = crate::testing::token();
        let ticket = cache.ticket(UserId(1));
        assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
        std::thread::sleep(Duration::from_millis(120));
        cache.apply_subscriptions(&BTreeMap::from([(TopicId(1), 1)]), &BTreeMap::new(), &token);
        assert!(cache.catalog().is_some(), "patched, not dropped");
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            cache.catalog().is_none(),
            "gone 200 ms after the read, not after the patch"
        );
    }

    #[test]
    fn versions_of_own_commits_on_their_way_are_left_to_them() {
        let cache = TopicCache::following_database_versions(TTL);
        let token = crate::testing::token();
        let mine = shared::Moved {
            catalog: Some(5),
            all_users: None,
            users: vec![(UserId(1), 3)],
        };
        let own = cache.expect_own(&mine);
        // Heard through the database before the commit's own post-commit work ran: nothing
        // is told and nothing moves; another instance's change in the same notification is.
        let heard = shared::Moved {
            users: vec![(UserId(1), 3), (UserId(2), 4)],
            ..mine.clone()
        };
        assert_eq!(
            cache.advance_heard(&heard, &token),
            [LiveEvent::User {
                user_id: UserId(2),
                version: 4,
                flags: None,
            }]
        );
        assert_eq!(cache.ticket(UserId(1)).catalog, 0);
        assert_eq!(cache.ticket(UserId(1)).user, 0);
        // The commit's own work moves and tells them.
        assert_eq!(cache.advance(&mine, &token).len(), 2);
        assert_eq!(cache.ticket(UserId(1)).catalog, 5);
        drop(own);
        // Once it is done, a repeat is told (pages ignore a version they have).
        assert_eq!(cache.advance_heard(&mine, &token).len(), 2);
        // A failed transaction's guard goes the same way: nothing stays held back.
        let failed = shared::Moved {
            catalog: Some(6),
            ..Default::default()
        };
        drop(cache.expect_own(&failed));
        assert_eq!(cache.advance_heard(&failed, &token).len(), 1);
        assert_eq!(cache.ticket(UserId(1)).catalog, 6);
    }

    #[test]
    fn another_users_invalidation_does_not_refuse_a_fill() {
        let cache = TopicCache::default();
        let ticket = cache.ticket(UserId(1));
        cache.invalidate_users(&[UserId(2)], &crate::testing::token());
        assert!(cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
    }

    #[test]
    fn every_bump_is_reported_in_order() {
        let cache = TopicCache::default();
        let token = crate::testing::token();
        let start = cache.ticket(UserId(5));
        let mut reported = cache.invalidate_users(&[UserId(5)], &token);
        reported.push(cache.invalidate_catalog(&token));
        reported.push(cache.invalidate_catalog(&token));
        let mut events = reported.into_iter();
        assert_eq!(
            events.next(),
            Some(LiveEvent::User {
                user_id: UserId(5),
                version: start.user + 1,
                flags: None,
            })
        );
        assert_eq!(
            events.next(),
            Some(LiveEvent::Shared {
                version: start.catalog + 1,
                counts: None,
            })
        );
        assert_eq!(
            events.next(),
            Some(LiveEvent::Shared {
                version: start.catalog + 2,
                counts: None,
            })
        );
        assert!(events.next().is_none());
    }

    #[test]
    fn versions_start_above_those_of_an_earlier_process() {
        let earlier = TopicCache::default();
        let token = crate::testing::token();
        for _ in 0..1000 {
            earlier.invalidate_catalog(&token);
        }
        let seen = earlier.ticket(UserId(1));
        std::thread::sleep(Duration::from_millis(5));
        let restarted = TopicCache::default();
        assert!(restarted.ticket(UserId(1)).catalog > seen.catalog);
        assert!(restarted.ticket(UserId(1)).user > seen.user);
    }

    #[test]
    fn many_users_are_invalidated_by_one_epoch_bump() {
        let cache = TopicCache::default();
        let token = crate::testing::token();
        let before: Vec<Ticket> = (1..=3).map(|id| cache.ticket(UserId(id))).collect();
        for ticket in &before {
            assert!(cache.fill_user_topics(ticket, Arc::new(BTreeSet::new())));
        }
        let stale = cache.ticket(UserId(3));
        let everyone: Vec<UserId> = (1..=(MANY_USERS as i64 + 1)).map(UserId).collect();
        let reported = cache.invalidate_users(&everyone, &token);

        assert_eq!(
            cache.stats().invalidations.load(Ordering::Relaxed),
            1,
            "one operation"
        );
        assert!(matches!(reported.as_slice(), [LiveEvent::AllUsers(_)]));
        for (id, ticket) in (1..=3).map(UserId).zip(&before) {
            assert!(cache.user_topics(id).is_none(), "user {id} was dropped");
            assert!(
                cache.ticket(id).user > ticket.user,
                "user {id}'s version moved"
            );
        }
        assert!(!cache.fill_user_topics(&stale, Arc::new(BTreeSet::new())));
        // Per-user bumps after the epoch still move versions forward.
        let after_epoch = cache.ticket(UserId(1));
        cache.invalidate_users(&[UserId(1)], &token);
        assert!(cache.ticket(UserId(1)).user > after_epoch.user);
    }

    #[test]
    fn a_zero_time_to_live_turns_the_cache_off() {
        let cache = TopicCache::new(Duration::ZERO);
        let ticket = cache.ticket(UserId(1));
        assert!(!cache.fill_catalog(&ticket, catalog(&["A"])));
        assert!(!cache.fill_user_topics(&ticket, Arc::new(BTreeSet::new())));
        assert!(cache.catalog().is_none());
        assert!(cache.user_topics(UserId(1)).is_none());
    }

    #[test]
    fn entries_expire_after_their_time_to_live() {
        let cache = TopicCache::new(Duration::from_millis(50));
        let ticket = cache.ticket(UserId(1));
        assert!(cache.fill_catalog(&ticket, catalog(&["A"])));
        assert!(cache.catalog().is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(cache.catalog().is_none());
    }
}
