//! Cache versions kept in the database (PostgreSQL), so that every server instance on one
//! database agrees on them.
//!
//! A change moves the versions of what it makes stale inside its own transaction
//! ([`bump`], called by `signals` last before the commit); a reader reads the current
//! versions before it trusts its cache ([`probe`]: one indexed read of at most three rows, no
//! topic table). An instance that probes after a commit therefore never serves what the
//! change replaced, whichever instance made it. The rows are moved by the signal receivers'
//! work, never by triggers: a row written behind the application's back stays invisible to
//! the cache until the application itself changes something, as on SQLite.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::PgConnection;

use super::keys::{user_key, user_of_key, ALL_USERS_KEY, CATALOG_KEY, MANY_USERS};
use super::stale::Stale;
use crate::ids::UserId;

diesel::table! {
    cache_versions (key) {
        key -> Text,
        version -> BigInt,
    }
}

/// The versions a reader found for the keys some users' pages depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    pub catalog: u64,
    pub all_users: u64,
    /// One entry per user asked for (a missing row is version 0).
    pub users: Vec<(UserId, u64)>,
}

/// The versions a committed change moved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub catalog: Option<u64>,
    /// Set instead of `users` when a change touches more than [`MANY_USERS`] users.
    pub all_users: Option<u64>,
    pub users: Vec<(UserId, u64)>,
}

/// The current versions of what the pages of `users` depend on: one indexed read of the
/// shared keys and one key per user.
pub fn probe(conn: &mut PgConnection, users: &[UserId]) -> QueryResult<Probed> {
    let mut keys: Vec<String> = users.iter().map(|&user| user_key(user)).collect();
    keys.extend([CATALOG_KEY.to_owned(), ALL_USERS_KEY.to_owned()]);
    let rows: Vec<(String, i64)> = cache_versions::table
        .filter(cache_versions::key.eq_any(&keys))
        .select((cache_versions::key, cache_versions::version))
        .load(conn)?;
    let found = collect(rows);
    let user_versions: HashMap<UserId, u64> = found.users.into_iter().collect();
    Ok(Probed {
        catalog: found.catalog.unwrap_or(0),
        all_users: found.all_users.unwrap_or(0),
        users: users
            .iter()
            .map(|&user| (user, user_versions.get(&user).copied().unwrap_or(0)))
            .collect(),
    })
}

/// Moves the version of everything `stale` names, inside the caller's transaction.
pub(crate) fn bump(conn: &mut PgConnection, stale: &Stale) -> QueryResult<Moved> {
    let mut keys: Vec<String> = if stale.users.len() > MANY_USERS {
        vec![ALL_USERS_KEY.to_owned()]
    } else {
        stale.users.iter().map(|&user| user_key(user)).collect()
    };
    if stale.catalog {
        keys.push(CATALOG_KEY.to_owned());
    }
    // Rows are locked in one order by every change, so two changes never wait on each other
    // in a circle. (The catalog row is moved by every change to topics or subscriptions:
    // those changes commit one at a time, as on SQLite.)
    keys.sort();
    let rows: Vec<_> = keys
        .iter()
        .map(|key| {
            (
                cache_versions::key.eq(key),
                cache_versions::version.eq(1_i64),
            )
        })
        .collect();
    let moved: Vec<(String, i64)> = diesel::insert_into(cache_versions::table)
        .values(&rows)
        .on_conflict(cache_versions::key)
        .do_update()
        .set(cache_versions::version.eq(cache_versions::version + 1))
        .returning((cache_versions::key, cache_versions::version))
        .get_results(conn)?;
    let result = collect(moved);
    // Delivered to every listening instance when (and only if) this transaction commits, in
    // commit order.
    for payload in encode(&result) {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(CHANNEL)
            .bind::<diesel::sql_types::Text, _>(payload)
            .execute(conn)?;
    }
    Ok(result)
}

/// Every version there is, for an instance that may have missed notifications (its listening
/// connection was down).
pub fn load_all(conn: &mut PgConnection) -> QueryResult<Moved> {
    let rows: Vec<(String, i64)> = cache_versions::table
        .select((cache_versions::key, cache_versions::version))
        .load(conn)?;
    Ok(collect(rows))
}

/// Version rows as the keys they move.
fn collect(rows: Vec<(String, i64)>) -> Moved {
    let mut moved = Moved::default();
    for (key, version) in rows {
        let version = unsigned(version);
        if key == CATALOG_KEY {
            moved.catalog = Some(version);
        } else if key == ALL_USERS_KEY {
            moved.all_users = Some(version);
        } else if let Some(user) = user_of_key(&key) {
            moved.users.push((user, version));
        }
    }
    moved
}

/// The notification channel version moves are announced on.
pub const CHANNEL: &str = "subscriptions_cache_versions";

/// Users per notification: a payload must stay under PostgreSQL's 8,000 bytes, and an entry
/// is at most 41 bytes (two 19-digit numbers, a colon, a space).
const USERS_PER_NOTIFICATION: usize = 150;

/// `moved` as notification payloads: `c<version>` for the catalog, `a<version>` for all
/// users, `<user>:<version>` per user, separated by spaces.
pub fn encode(moved: &Moved) -> Vec<String> {
    let mut head = Vec::new();
    if let Some(version) = moved.catalog {
        head.push(format!("c{version}"));
    }
    if let Some(version) = moved.all_users {
        head.push(format!("a{version}"));
    }
    let mut payloads = Vec::new();
    let mut chunks = moved.users.chunks(USERS_PER_NOTIFICATION);
    let first: Vec<String> = chunks
        .next()
        .unwrap_or_default()
        .iter()
        .map(|(user, version)| format!("{}:{version}", user.0))
        .collect();
    head.extend(first);
    if !head.is_empty() {
        payloads.push(head.join(" "));
    }
    for chunk in chunks {
        payloads.push(
            chunk
                .iter()
                .map(|(user, version)| format!("{}:{version}", user.0))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    payloads
}

/// The inverse of [`encode`] for one payload; `None` for anything else.
pub fn decode(payload: &str) -> Option<Moved> {
    let mut moved = Moved::default();
    for part in payload.split_whitespace() {
        if let Some(version) = part.strip_prefix('c') {
            moved.catalog = Some(version.parse().ok()?);
        } else if let Some(version) = part.strip_prefix('a') {
            moved.all_users = Some(version.parse().ok()?);
        } else {
            let (user, version) = part.split_once(':')?;
            moved
                .users
                .push((UserId(user.parse().ok()?), version.parse().ok()?));
        }
    }
    Some(moved)
}

fn unsigned(version: i64) -> u64 {
    u64::try_from(version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::{decode, encode, Moved};
    use crate::ids::UserId;

    #[test]
    fn notifications_carry_every_move_within_the_payload_limit() {
        let moved = Moved {
            catalog: Some(41),
            all_users: None,
            users: (0..1_000)
                .map(|n| (UserId(i64::MAX - n), u64::MAX - 7))
                .collect(),
        };
        let payloads = encode(&moved);
        assert!(
            payloads.iter().all(|p| p.len() < 8_000),
            "PostgreSQL's limit"
        );
        let mut back = Moved::default();
        for payload in &payloads {
            let part = decode(payload).expect("decodes");
            back.catalog = back.catalog.or(part.catalog);
            back.all_users = back.all_users.or(part.all_users);
            back.users.extend(part.users);
        }
        assert_eq!(back, moved);
        assert_eq!(
            decode("c1 a2 3:4"),
            Some(Moved {
                catalog: Some(1),
                all_users: Some(2),
                users: vec![(UserId(3), 4)]
            })
        );
        assert_eq!(decode("x"), None);
        assert!(encode(&Moved::default()).is_empty());
    }

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
