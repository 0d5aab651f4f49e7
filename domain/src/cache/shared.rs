//! Cache versions kept in the database (PostgreSQL), so that every server instance on one
//! database agrees on them.
//!
//! A change moves the versions of what it makes stale inside its own transaction
//! ([`bump`], called by `signals` last before the commit): one row per user whose list it
//! moved, and one of the catalog's [`CATALOG_SHARDS`] rows. A reader reads the current
//! versions before it trusts its cache ([`probe`]: one indexed read, no topic table). The rows
//! are moved by the signal receivers' work, never by triggers: a row written behind the
//! application's back stays invisible to the cache until the application itself changes
//! something, as on SQLite. Other instances are told after the commit
//! (`signals::announce`), never from inside the transaction: a notification sent there takes
//! a lock of the whole cluster at commit, so every change would wait for the one before it.
//!
//! **The ordering rule.** An entry is trusted only while the versions it was filled under
//! equal those a reader found after its request arrived. The catalog's version is the *sum*
//! of its shard rows, and that is exact for the rule because
//! - a row only grows, and two changes that move the same row commit one after the other
//!   (its row lock), so no later read of a row finds a smaller value;
//! - PostgreSQL's snapshots are nested: a snapshot sees every commit an earlier one saw;
//!
//! so the sums readers find only grow, and two equal sums mean equal rows: no change landed
//! in between. A reader therefore never trusts an entry older than a committed change it
//! could have seen: that change moved a row, and the sum with it. Instances hear versions in
//! any order (after-commit notifications from several instances, probes); each row is only
//! ever raised to the highest version heard ([`TopicCache::observe`](super::TopicCache)),
//! never moved back, so the order does not matter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel::PgConnection;

use super::keys::{
    catalog_shard_row, shard_of_row, user_key, user_of_key, ALL_USERS_KEY, CATALOG_SHARDS,
    MANY_USERS,
};
use super::stale::Stale;
use crate::ids::UserId;

diesel::table! {
    cache_versions (key) {
        key -> Text,
        version -> BigInt,
    }
}

/// Versions of the catalog's shards: `(shard, version)`.
pub type Shards = Vec<(u16, u64)>;

/// The versions a reader found for the keys some users' pages depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    /// Every shard of the catalog (a missing row is version 0).
    pub catalog: Shards,
    pub all_users: u64,
    /// One entry per user asked for (a missing row is version 0).
    pub users: Vec<(UserId, u64)>,
}

/// The versions a committed change moved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// The shards moved (one per change; a resync lists them all).
    pub catalog: Shards,
    /// Set instead of `users` when a change touches more than [`MANY_USERS`] users.
    pub all_users: Option<u64>,
    pub users: Vec<(UserId, u64)>,
}

/// What a change's transaction moved, and the catalog as that transaction saw it right after
/// its own move: an instance whose cache is exactly one commit behind that patches its cached
/// catalog with the change's counts instead of dropping it (`cache::patches`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bumped {
    pub moved: Moved,
    pub catalog_seen: Option<Shards>,
}

/// The sum of shard versions: the catalog's version.
pub fn catalog_version(shards: &[(u16, u64)]) -> u64 {
    shards.iter().map(|&(_, version)| version).sum()
}

/// The current versions of what the pages of `users` depend on: one indexed read of the
/// shared keys and one key per user.
pub fn probe(conn: &mut PgConnection, users: &[UserId]) -> QueryResult<Probed> {
    let mut keys: Vec<String> = users.iter().map(|&user| user_key(user)).collect();
    keys.extend(shard_rows());
    keys.push(ALL_USERS_KEY.to_owned());
    let found = collect(read(conn, &keys)?);
    let user_versions: HashMap<UserId, u64> = found.users.into_iter().collect();
    Ok(Probed {
        catalog: every_shard(&found.catalog),
        all_users: found.all_users.unwrap_or(0),
        users: users
            .iter()
            .map(|&user| (user, user_versions.get(&user).copied().unwrap_or(0)))
            .collect(),
    })
}

/// Every shard's current version (0 for a row not written yet).
pub fn catalog_now(conn: &mut PgConnection) -> QueryResult<Shards> {
    Ok(every_shard(&collect(read(conn, &shard_rows())?).catalog))
}

/// The shard the next change of this process moves: taken in turn, from a start of the
/// process's own, so that changes running together mostly move different rows.
fn next_shard() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let mut shard = NEXT.load(Ordering::Relaxed);
    if shard == u16::MAX {
        // The process id spreads instances over the shards; a lost race only repeats a start.
        let start = u16::try_from(std::process::id() % u32::from(CATALOG_SHARDS)).unwrap_or(0);
        let _ = NEXT.compare_exchange(u16::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
        shard = NEXT.load(Ordering::Relaxed);
    }
    NEXT.store((shard + 1) % CATALOG_SHARDS, Ordering::Relaxed);
    shard % CATALOG_SHARDS
}

/// Moves the version of everything `stale` names, inside the caller's transaction.
pub(crate) fn bump(conn: &mut PgConnection, stale: &Stale) -> QueryResult<Bumped> {
    let mut keys: Vec<String> = if stale.users.len() > MANY_USERS {
        vec![ALL_USERS_KEY.to_owned()]
    } else {
        stale.users.iter().map(|&user| user_key(user)).collect()
    };
    if stale.catalog {
        keys.push(catalog_shard_row(next_shard()));
    }
    // Rows are locked in one order by every change, so two changes never wait on each other
    // in a circle. A change moves one catalog row: changes of different topics rarely meet on
    // one (changes of one topic already take turns on its row).
    keys.sort();
    // The move and (for a catalog change) the read of the other shards in one statement: it
    // runs while the change holds its rows, and each statement more there makes the next
    // change wait longer. The other shards are read as of the statement's start; a commit
    // this misses only keeps other instances from patching their cached catalog with this
    // change's counts, and the counts the change read came from an earlier statement, which
    // saw no more than this one.
    let read_catalog = if stale.catalog {
        shard_rows()
    } else {
        Vec::new()
    };
    let rows: Vec<VersionRow> = diesel::sql_query(
        "WITH moved AS ( \
             INSERT INTO cache_versions (key, version) \
             SELECT key, 1 FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) ORDER BY n \
             ON CONFLICT (key) DO UPDATE SET version = cache_versions.version + 1 \
             RETURNING key, version) \
         SELECT key, version, true AS moved FROM moved \
         UNION ALL \
         SELECT key, version, false AS moved FROM cache_versions \
         WHERE key = ANY($2) AND key NOT IN (SELECT key FROM moved)",
    )
    .bind::<Array<Text>, _>(&keys)
    .bind::<Array<Text>, _>(read_catalog)
    .load(conn)?;
    let (moved, seen): (Vec<VersionRow>, Vec<VersionRow>) =
        rows.into_iter().partition(|row| row.moved);
    let moved = collect(moved.into_iter().map(VersionRow::pair).collect());
    let mut catalog = collect(seen.into_iter().map(VersionRow::pair).collect()).catalog;
    catalog.extend(moved.catalog.iter().copied());
    Ok(Bumped {
        moved,
        catalog_seen: stale.catalog.then(|| every_shard(&catalog)),
    })
}

/// A row of the move-and-read statement of [`bump`].
#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Bool)]
    moved: bool,
}

impl VersionRow {
    fn pair(self) -> (String, i64) {
        (self.key, self.version)
    }
}

/// Every version there is, for an instance that may have missed notifications (its listening
/// connection was down).
pub fn load_all(conn: &mut PgConnection) -> QueryResult<Moved> {
    let rows: Vec<(String, i64)> = cache_versions::table
        .select((cache_versions::key, cache_versions::version))
        .load(conn)?;
    Ok(collect(rows))
}

fn read(conn: &mut PgConnection, keys: &[String]) -> QueryResult<Vec<(String, i64)>> {
    cache_versions::table
        .filter(cache_versions::key.eq_any(keys))
        .select((cache_versions::key, cache_versions::version))
        .load(conn)
}

fn shard_rows() -> Vec<String> {
    (0..CATALOG_SHARDS).map(catalog_shard_row).collect()
}

/// `found` with a 0 for every shard it lacks, in shard order.
fn every_shard(found: &[(u16, u64)]) -> Shards {
    let mut shards: Shards = (0..CATALOG_SHARDS).map(|shard| (shard, 0)).collect();
    for &(shard, version) in found {
        if let Some(slot) = shards.get_mut(usize::from(shard)) {
            slot.1 = version;
        }
    }
    shards
}

/// Version rows as the keys they move.
fn collect(rows: Vec<(String, i64)>) -> Moved {
    let mut moved = Moved::default();
    for (key, version) in rows {
        let version = unsigned(version);
        if let Some(shard) = shard_of_row(&key) {
            moved.catalog.push((shard, version));
        } else if key == ALL_USERS_KEY {
            moved.all_users = Some(version);
        } else if let Some(user) = user_of_key(&key) {
            moved.users.push((user, version));
        }
    }
    moved.catalog.sort_unstable();
    moved
}

fn unsigned(version: i64) -> u64 {
    u64::try_from(version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::db::scratch::ScratchDatabase;
    use crate::db::Db;
    use crate::ids::TopicId;
    use crate::services::Services;
    use crate::topics::{list, rename};
    use crate::topics::{PageRequest, TopicListing};
    use crate::users::User;

    /// Two instances of the domain on one PostgreSQL database, as two server processes are.
    async fn two_instances(place: &ScratchDatabase) -> (Services, Services) {
        let open = || async {
            let db = Db::open(place.url()).await.expect("open");
            Services::new(db, super::super::TTL)
        };
        (open().await, open().await)
    }

    async fn account(services: &Services, name: &str, staff: bool) -> User {
        crate::testing::account(&services.db, name, staff).await
    }

    async fn page(services: &Services, user: &User) -> TopicListing {
        list(services, user.id, PageRequest::default())
            .await
            .expect("list")
    }

    fn row(listing: &TopicListing, id: TopicId) -> (String, i64, bool) {
        listing
            .topics
            .iter()
            .find(|topic| topic.id == id)
            .map(|topic| (topic.name.clone(), topic.subscribers, topic.subscribed))
            .expect("listed")
    }

    #[tokio::test]
    async fn a_change_through_one_instance_is_served_at_once_by_another() {
        let place = ScratchDatabase::create();
        let (a, b) = two_instances(&place).await;
        let alice = account(&a, "alice", false).await;
        let bob = account(&a, "bob", false).await;
        let root = account(&a, "root", true).await;
        let python = page(&b, &alice).await.topics[0].id;
        // Both instances hold warm entries for both readers.
        for services in [&a, &b] {
            page(services, &alice).await;
            page(services, &bob).await;
        }

        let written = crate::subscriptions::subscribe(&a, alice.id, python)
            .await
            .expect("subscribe");
        let seen = page(&b, &alice).await;
        assert_eq!(
            row(&seen, python).1,
            1,
            "the count moved on the other instance"
        );
        assert!(
            row(&seen, python).2,
            "the writer's own flag, on the other instance"
        );
        assert_eq!(
            seen.version, written,
            "one source of versions for every instance"
        );
        assert_eq!(
            row(&page(&b, &bob).await, python),
            (row(&seen, python).0, 1, false)
        );

        rename(&b, &root, python, "Snake").await.expect("rename");
        assert_eq!(row(&page(&a, &bob).await, python).0, "Snake");
        assert_eq!(
            row(&page(&a, &alice).await, python),
            ("Snake".to_owned(), 1, true)
        );
    }

    #[tokio::test]
    async fn a_warm_instance_reads_versions_but_no_topic_table() {
        let place = ScratchDatabase::create();
        let (a, b) = two_instances(&place).await;
        let alice = account(&a, "alice", false).await;
        page(&b, &alice).await;
        let stats = b.db.sql_stats();
        let (statements, topic_statements) = (
            stats.statements.load(Ordering::Relaxed),
            stats.topic_statements.load(Ordering::Relaxed),
        );
        page(&b, &alice).await;
        assert_eq!(
            stats.topic_statements.load(Ordering::Relaxed),
            topic_statements,
            "a hit reads no topic table"
        );
        assert_eq!(
            stats.statements.load(Ordering::Relaxed),
            statements + 1,
            "one statement: the version probe"
        );
    }
}
