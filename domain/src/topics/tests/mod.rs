//! The domain operations with the real receivers against a real database file: activity rows,
//! cache entries present or absent, freshness for every user, and the stale-fill race. The
//! shared world and helpers are here; each file below holds one theme.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;

use super::*;
use crate::cache::TopicCache;
use crate::db::Conn;
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::schema::{topic_activities, topics};
use crate::services::Services;
use crate::signals::Signals;
use crate::subscriptions;
use crate::subscriptions::{subscribe_in, unsubscribe_all_in};
use crate::testing::test_services;
use crate::users::User;

mod changes;
mod live;
mod races;
mod retired;
mod scale;

struct World {
    _dir: crate::testing::TestDatabase,
    services: Services,
    alice: User,
    bob: User,
    staff: User,
}

async fn world() -> World {
    let (dir, services) = test_services().await;
    let db = services.db.clone();
    let mut users = Vec::new();
    for (name, staff) in [("alice", false), ("bob", false), ("root", true)] {
        users.push(crate::testing::account(&db, name, staff).await);
    }
    let staff = users.pop().expect("staff");
    let bob = users.pop().expect("bob");
    let alice = users.pop().expect("alice");
    World {
        _dir: dir,
        services,
        alice,
        bob,
        staff,
    }
}

impl World {
    async fn list(&self, user: &User) -> TopicListing {
        self.list_through(self.services.cache.clone(), user).await
    }

    /// The first page of `user`'s list, read through `cache`.
    async fn list_through(&self, cache: TopicCache, user: &User) -> TopicListing {
        let user_id = user.id;
        self.services
            .db
            .run(move |conn| list_in(conn, &cache, user_id))
            .await
            .expect("list")
    }

    async fn with_conn<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn, &Signals) -> Result<R, DomainError> + Send + 'static,
    ) -> Result<R, DomainError> {
        let signals = self.services.signals.clone();
        self.services.db.run(move |conn| f(conn, &signals)).await
    }

    async fn topic_id(&self, name: &str) -> TopicId {
        let name = name.to_owned();
        self.with_conn(move |conn, _| {
            Ok(topics::table
                .filter(topics::name.eq(name))
                .filter(topics::deleted_at.is_null())
                .select(topics::id)
                .first::<TopicId>(conn)?)
        })
        .await
        .expect("topic id")
    }

    /// The three topics every database starts with.
    async fn seeded_topics(&self) -> [TopicId; 3] {
        [
            self.topic_id("Python").await,
            self.topic_id("Django").await,
            self.topic_id("DevOps").await,
        ]
    }

    async fn activities(&self) -> Vec<(Option<TopicId>, String, String)> {
        self.with_conn(|conn, _| {
            Ok(topic_activities::table
                .select((
                    topic_activities::topic_id,
                    topic_activities::topic_name,
                    topic_activities::action,
                ))
                .order(topic_activities::id)
                .load(conn)?)
        })
        .await
        .expect("activities")
    }

    /// Cache invalidations so far.
    fn invalidations(&self) -> u64 {
        read(&self.services.cache.stats().invalidations)
    }

    /// Cache entries patched in place so far.
    fn patches(&self) -> u64 {
        read(&self.services.cache.stats().patches)
    }

    /// Seeds the benchmark's `small` dataset beside the world's accounts.
    async fn seed_small(&self) {
        let small = crate::bench::Profile::named("small").expect("small");
        crate::bench::seed(&self.services.db, small)
            .await
            .expect("seed");
    }

    /// Each topic's stored subscriber count beside its subscription rows, checked equal.
    async fn counts_as_stored_and_counted(&self) -> Vec<CountRow> {
        let counts = self
            .with_conn(|conn, _| Ok(stored_and_actual_counts(conn)?))
            .await
            .expect("counts");
        for row in &counts {
            assert_eq!(row.stored, row.actual, "{}", row.name);
        }
        counts
    }

    /// What the database holds for `user`, read past every cache.
    async fn fresh_list(&self, user: &User) -> TopicListing {
        self.list_through(TopicCache::new(Duration::ZERO), user)
            .await
    }

    fn topic_statements(&self) -> u64 {
        read(&self.services.db.sql_stats().topic_statements)
    }
}

fn find<'a>(listing: &'a TopicListing, name: &str) -> Option<&'a TopicView> {
    listing.topics.iter().find(|t| t.name == name)
}

fn read(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// `sql` with its `?` placeholders as the connection's backend spells them.
fn placeholders(conn: &Conn, sql: &str) -> String {
    match conn {
        Conn::Sqlite(_) => sql.to_owned(),
        Conn::Pg(_) => {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(c);
                }
            }
            numbered
        }
    }
}

/// `n` extra accounts (named `many1`…), subscribed to the topic `topic_id`.
fn subscribe_many(conn: &mut Conn, topic_id: TopicId, n: i64) -> QueryResult<()> {
    diesel::sql_query(placeholders(
        conn,
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
         INSERT INTO users (username, password_hash)
         SELECT 'many' || ? || '-' || i, 'not a hash' FROM k",
    ))
    .bind::<diesel::sql_types::BigInt, _>(n)
    .bind::<diesel::sql_types::BigInt, _>(topic_id)
    .execute(conn)?;
    diesel::sql_query(placeholders(
        conn,
        "INSERT INTO topic_subscribers (topic_id, user_id)
         SELECT ?, id FROM users WHERE username LIKE 'many' || ? || '-%'",
    ))
    .bind::<diesel::sql_types::BigInt, _>(topic_id)
    .bind::<diesel::sql_types::BigInt, _>(topic_id)
    .execute(conn)?;
    Ok(())
}

fn rows_of_topic(conn: &mut Conn, topic_id: TopicId) -> QueryResult<(i64, i64)> {
    use crate::schema::topic_subscribers;
    let topic_rows = topics::table.find(topic_id).count().get_result(conn)?;
    let subscriptions = topic_subscribers::table
        .filter(topic_subscribers::topic_id.eq(topic_id))
        .count()
        .get_result(conn)?;
    Ok((topic_rows, subscriptions))
}

/// Each topic's stored subscriber count beside the count of its subscription rows.
fn stored_and_actual_counts(conn: &mut Conn) -> QueryResult<Vec<CountRow>> {
    diesel::sql_query(
        "SELECT t.name, t.subscriber_count AS stored,
                (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = t.id) AS actual
         FROM topics t ORDER BY t.name",
    )
    .load(conn)
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    stored: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    actual: i64,
}

/// What the hub published, until nothing more is waiting.
fn published(
    events: &mut tokio::sync::broadcast::Receiver<crate::live::LiveEvent>,
) -> Vec<crate::live::LiveEvent> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => out.push(event),
            Err(TryRecvError::Empty) => return out,
            Err(err) => panic!("the test's listener missed events: {err}"),
        }
    }
}
