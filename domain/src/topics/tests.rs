//! The domain operations with the real receivers against a real database file: activity rows,
//! cache entries present or absent, freshness for every user, and the stale-fill race.

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
        let cache = self.services.cache.clone();
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
        self.services
            .cache
            .stats()
            .invalidations
            .load(Ordering::Relaxed)
    }

    /// Cache entries patched in place so far.
    fn patches(&self) -> u64 {
        self.services.cache.stats().patches.load(Ordering::Relaxed)
    }

    /// What the database holds for `user`, read past every cache.
    async fn fresh_list(&self, user: &User) -> TopicListing {
        let uncached = TopicCache::new(Duration::ZERO);
        let user_id = user.id;
        self.services
            .db
            .run(move |conn| list_in(conn, &uncached, user_id))
            .await
            .expect("list")
    }

    fn topic_statements(&self) -> u64 {
        self.services
            .db
            .sql_stats()
            .topic_statements
            .load(Ordering::Relaxed)
    }
}

fn find<'a>(listing: &'a TopicListing, name: &str) -> Option<&'a TopicView> {
    listing.topics.iter().find(|t| t.name == name)
}

#[test]
fn topic_names_are_trimmed_and_bounded() {
    assert_eq!(
        TopicName::parse("  Rust  ").map(|n| n.as_str().to_owned()),
        Ok("Rust".into())
    );
    assert!(TopicName::parse("   ").is_err());
    assert!(TopicName::parse(&"x".repeat(100)).is_ok());
    assert!(TopicName::parse(&"x".repeat(101)).is_err());
    assert!(
        TopicName::parse(&format!(" {} ", "é".repeat(100))).is_ok(),
        "characters, not bytes"
    );
    assert!(TopicName::parse("tab\there").is_err());
}

#[tokio::test]
async fn create_writes_a_created_activity_and_everyone_sees_the_topic() {
    let w = world().await;
    // Both users have warm caches.
    assert_eq!(w.list(&w.alice).await.topics.len(), 3);
    assert_eq!(w.list(&w.bob).await.topics.len(), 3);

    create(&w.services, &w.alice, "  Rust ")
        .await
        .expect("create");
    let id = w.topic_id("Rust").await;
    assert_eq!(
        w.activities().await,
        vec![(Some(id), "Rust".into(), "created".into())]
    );
    assert!(
        find(&w.list(&w.bob).await, "Rust").is_some(),
        "another user sees it at once"
    );

    let again = create(&w.services, &w.bob, "rust").await;
    assert!(matches!(again, Err(DomainError::Conflict(_))), "{again:?}");
    assert_eq!(
        w.activities().await.len(),
        1,
        "a refused create writes nothing"
    );
    assert!(matches!(
        create(&w.services, &w.bob, " ").await,
        Err(DomainError::Invalid(_))
    ));
}

/// A subscription moves the user's list and every user's counts. The cached entries are
/// patched to what the database now holds (on PostgreSQL by the committing instance, whose
/// entries were one version behind), so the next loads run no SQL on topic tables.
#[tokio::test]
async fn subscriptions_move_the_affected_user_and_counts_for_everyone() {
    let w = world().await;
    let cache = &w.services.cache;
    let python = w.topic_id("Python").await;
    w.list(&w.alice).await;
    w.list(&w.bob).await;
    assert!(cache.has_user_topics(w.alice.id));
    assert!(cache.has_user_topics(w.bob.id));
    let (alice_before, bob_before) = (cache.ticket(w.alice.id), cache.ticket(w.bob.id));

    crate::subscriptions::subscribe(&w.services, w.alice.id, python)
        .await
        .expect("subscribe");
    assert!(
        cache.has_user_topics(w.alice.id),
        "post_add patched alice's list"
    );
    assert!(
        cache.has_user_topics(w.bob.id),
        "bob's own list is untouched"
    );
    assert!(
        cache.has_catalog(),
        "the counts moved for everyone, in place"
    );
    let (alice_after, bob_after) = (cache.ticket(w.alice.id), cache.ticket(w.bob.id));
    assert!(alice_after.user > alice_before.user);
    assert_eq!(bob_after.user, bob_before.user);
    assert!(alice_after.catalog > alice_before.catalog);

    let statements = w.topic_statements();
    let bob_view = w.list(&w.bob).await;
    let seen = find(&bob_view, "Python").expect("python");
    assert_eq!((seen.subscribers, seen.subscribed), (1, false));
    let alice_view = w.list(&w.alice).await;
    let seen = find(&alice_view, "Python").expect("python");
    assert_eq!((seen.subscribers, seen.subscribed), (1, true));
    assert_eq!(
        w.topic_statements(),
        statements,
        "both loads were served by the patched entries"
    );
    assert_eq!(bob_view.topics, w.fresh_list(&w.bob).await.topics);
    assert_eq!(alice_view.topics, w.fresh_list(&w.alice).await.topics);

    // A second subscribe is a no-op: no signal, nothing invalidated or patched.
    let before = (w.invalidations(), w.patches());
    crate::subscriptions::subscribe(&w.services, w.alice.id, python)
        .await
        .expect("subscribe again");
    assert_eq!((w.invalidations(), w.patches()), before);
    assert!(cache.has_user_topics(w.alice.id));

    crate::subscriptions::unsubscribe(&w.services, w.alice.id, python)
        .await
        .expect("unsubscribe");
    assert!(
        cache.has_user_topics(w.alice.id),
        "post_remove patched alice's list"
    );
    let seen = w.list(&w.bob).await;
    assert_eq!(find(&seen, "Python").map(|t| t.subscribers), Some(0));
    let seen = w.list(&w.alice).await;
    assert_eq!(
        find(&seen, "Python").map(|t| (t.subscribers, t.subscribed)),
        Some((0, false))
    );

    let missing = crate::subscriptions::subscribe(&w.services, w.alice.id, TopicId(999_999)).await;
    assert_eq!(missing, Err(DomainError::NotFound));
}

#[tokio::test]
async fn unsubscribe_all_clears_with_the_ids_captured_before() {
    let w = world().await;
    let python = w.topic_id("Python").await;
    let django = w.topic_id("Django").await;
    let alice = w.alice.id;
    w.with_conn(move |conn, signals| {
        subscribe_in(conn, signals, alice, python)?;
        subscribe_in(conn, signals, alice, django)
    })
    .await
    .expect("subscribe");
    assert_eq!(
        w.list(&w.alice)
            .await
            .topics
            .iter()
            .filter(|t| t.subscribed)
            .count(),
        2
    );
    assert!(w.services.cache.has_user_topics(alice));

    w.with_conn(move |conn, signals| unsubscribe_all_in(conn, signals, alice))
        .await
        .expect("clear");
    assert!(
        w.services.cache.has_user_topics(alice),
        "post_clear patched alice's list"
    );
    let view = w.list(&w.alice).await;
    assert!(view
        .topics
        .iter()
        .all(|t| !t.subscribed && t.subscribers == 0));
    assert_eq!(view.topics, w.fresh_list(&w.alice).await.topics);

    // Clearing nothing sends nothing.
    let before = (w.invalidations(), w.patches());
    w.with_conn(move |conn, signals| unsubscribe_all_in(conn, signals, alice))
        .await
        .expect("clear again");
    assert_eq!((w.invalidations(), w.patches()), before);
}

#[tokio::test]
async fn rename_is_staff_only_and_writes_updated() {
    let w = world().await;
    let django = w.topic_id("Django").await;
    let alice = w.alice.id;
    w.with_conn(move |conn, signals| subscribe_in(conn, signals, alice, django))
        .await
        .expect("subscribe");
    w.list(&w.alice).await;
    w.list(&w.bob).await;

    assert_eq!(
        rename(&w.services, &w.alice, django, "Flask").await,
        Err(DomainError::Forbidden)
    );
    assert!(
        w.services.cache.has_user_topics(alice),
        "a refused rename invalidates nothing"
    );

    rename(&w.services, &w.staff, django, " Flask ")
        .await
        .expect("rename");
    assert_eq!(
        w.activities().await,
        vec![(Some(django), "Flask".into(), "updated".into())]
    );
    assert!(
        !w.services.cache.has_user_topics(alice),
        "the subscriber's list was invalidated"
    );
    assert!(
        w.services.cache.has_user_topics(w.bob.id),
        "non-subscribers keep their entry"
    );
    assert!(
        find(&w.list(&w.bob).await, "Flask").is_some(),
        "everyone sees the new name"
    );

    assert!(matches!(
        rename(&w.services, &w.staff, django, "python").await,
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(
        rename(&w.services, &w.staff, TopicId(999_999), "Nope").await,
        Err(DomainError::NotFound)
    );
}

#[tokio::test]
async fn delete_leaves_a_tombstone_and_invalidates_the_captured_subscribers() {
    let w = world().await;
    create(&w.services, &w.alice, "Rust").await.expect("create");
    let rust = w.topic_id("Rust").await;
    let (alice, bob) = (w.alice.id, w.bob.id);
    w.with_conn(move |conn, signals| {
        subscribe_in(conn, signals, alice, rust)?;
        subscribe_in(conn, signals, bob, rust)
    })
    .await
    .expect("subscribe");
    w.list(&w.alice).await;
    w.list(&w.bob).await;
    w.list(&w.staff).await;

    assert_eq!(
        delete(&w.services, &w.alice, rust).await,
        Err(DomainError::Forbidden)
    );
    delete(&w.services, &w.staff, rust).await.expect("delete");

    // The created row went with the topic (CASCADE); the tombstone stays, topic_id NULL.
    assert_eq!(
        w.activities().await,
        vec![(None, "Rust".into(), "deleted".into())]
    );
    assert!(!w.services.cache.has_user_topics(alice));
    assert!(!w.services.cache.has_user_topics(bob));
    assert!(
        w.services.cache.has_user_topics(w.staff.id),
        "not a subscriber"
    );
    for user in [&w.alice, &w.bob, &w.staff] {
        assert!(find(&w.list(user).await, "Rust").is_none());
    }
    assert_eq!(
        delete(&w.services, &w.staff, rust).await,
        Err(DomainError::NotFound)
    );
}

#[tokio::test]
async fn logging_out_drops_the_users_entry() {
    let w = world().await;
    w.list(&w.alice).await;
    assert!(w.services.cache.has_user_topics(w.alice.id));
    crate::users::logged_out(&w.services, w.alice.id)
        .await
        .expect("signal");
    assert!(!w.services.cache.has_user_topics(w.alice.id));
}

#[tokio::test]
async fn repeated_loads_without_changes_run_no_topic_sql() {
    let w = world().await;
    w.list(&w.alice).await;
    let warm = w.topic_statements();
    for _ in 0..5 {
        assert_eq!(w.list(&w.alice).await.topics.len(), 3);
    }
    assert_eq!(
        w.topic_statements(),
        warm,
        "five hits, no statement on topic tables"
    );

    // Another user's first load reads only their own subscriptions (the catalog is shared).
    w.list(&w.bob).await;
    assert_eq!(w.topic_statements(), warm + 1);
}

/// Writers and readers race: several users subscribe, unsubscribe and clear their lists
/// while others load pages and fill the cache. Patches and fills must land so that, once the
/// writes are done, every cached view equals what the database holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_subscriptions_leave_every_cached_view_equal_to_the_database() {
    let w = Arc::new(world().await);
    let topics = w.seeded_topics().await;
    let users = [w.alice.clone(), w.bob.clone(), w.staff.clone()];
    let mut tasks = tokio::task::JoinSet::new();
    for (seat, user) in users.iter().enumerate() {
        let (writer, user_id) = (w.clone(), user.id);
        tasks.spawn(async move {
            for step in 0..60usize {
                let topic = topics[(step * 7 + seat) % topics.len()];
                let services = &writer.services;
                let done = match step % 11 {
                    10 => crate::subscriptions::unsubscribe_all(services, user_id).await,
                    n if n % 2 == 0 => {
                        crate::subscriptions::subscribe(services, user_id, topic).await
                    }
                    _ => crate::subscriptions::unsubscribe(services, user_id, topic).await,
                };
                done.expect("a subscription change");
            }
        });
        let (world, reader) = (w.clone(), user.clone());
        tasks.spawn(async move {
            for _ in 0..60 {
                world.list(&reader).await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task");
    }

    for user in &users {
        assert_eq!(
            w.list(user).await.topics,
            w.fresh_list(user).await.topics,
            "{}'s view",
            user.username
        );
    }
    assert!(w.patches() > 0, "the cached entries were patched");
}

/// The dangerous interleaving, forced: a reader has read the database but not yet filled
/// the cache when a subscription commits and invalidates. Its fill must be refused, and the
/// next load must show the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_paused_before_its_fill_cannot_store_a_stale_list() {
    let w = world().await;
    let python = w.topic_id("Python").await;
    let alice = w.alice.id;
    let (read_done_tx, read_done) = mpsc::channel::<()>();
    let (resume_tx, resume) = mpsc::channel::<()>();

    let cache = w.services.cache.clone();
    let reader_db = w.services.db.clone();
    let reader = tokio::spawn(async move {
        reader_db
            .run(move |conn| {
                list_pausing_before_fill(conn, &cache, alice, move || {
                    let _ = read_done_tx.send(());
                    let _ = resume.recv_timeout(Duration::from_secs(10));
                })
            })
            .await
    });

    read_done
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader reached the fill");
    crate::subscriptions::subscribe(&w.services, alice, python)
        .await
        .expect("subscribe commits while the reader is paused");
    resume_tx.send(()).expect("resume the reader");

    let stale = reader.await.expect("join").expect("list");
    assert_eq!(
        find(&stale, "Python").map(|t| t.subscribed),
        Some(false),
        "the paused reader read before the commit"
    );
    assert!(
        !w.services.cache.has_user_topics(alice),
        "its stale fill was refused"
    );
    assert!(!w.services.cache.has_catalog());
    assert!(
        w.services
            .cache
            .stats()
            .refused_fills
            .load(Ordering::Relaxed)
            >= 1
    );

    let fresh = w.list(&w.alice).await;
    let python_row = find(&fresh, "Python").expect("python");
    assert!(python_row.subscribed);
    assert_eq!(python_row.subscribers, 1);
    assert!(
        fresh.version != stale.version,
        "the version moved with the change"
    );
}

/// Many clients, mixed operations, concurrently. Every read must show at least what was
/// committed before the request started: the reader's own subscriptions exactly (only the
/// reader changes them), every topic that existed throughout, and counts within bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mixed_operations_never_show_stale_state() {
    let w = Arc::new(world().await);
    let topic_ids = w.seeded_topics().await;
    let users = [w.alice.clone(), w.bob.clone(), w.staff.clone()];
    let mut tasks = Vec::new();
    for (n, user) in users.into_iter().enumerate() {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = std::collections::BTreeSet::new();
            let mut seed = 0x9E37_79B9_u64.wrapping_mul(n as u64 + 1);
            for step in 0..60 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let topic = topic_ids[(seed % 3) as usize];
                match seed % 5 {
                    0 | 1 => {
                        crate::subscriptions::subscribe(&w.services, user.id, topic)
                            .await
                            .expect("subscribe");
                        mine.insert(topic);
                    }
                    2 => {
                        crate::subscriptions::unsubscribe(&w.services, user.id, topic)
                            .await
                            .expect("unsubscribe");
                        mine.remove(&topic);
                    }
                    3 => {
                        let name = format!("t{n}-{step}");
                        create(&w.services, &user, &name).await.expect("create");
                        let listing = w.list(&user).await;
                        assert!(find(&listing, &name).is_some(), "own new topic visible");
                    }
                    _ => {}
                }
                let listing = w.list(&user).await;
                for id in topic_ids {
                    let row = listing
                        .topics
                        .iter()
                        .find(|t| t.id == id)
                        .expect("seeded topics are never deleted here");
                    assert_eq!(row.subscribed, mine.contains(&id), "own subscription state");
                    assert!(row.subscribers >= i64::from(mine.contains(&id)));
                    assert!(row.subscribers <= 3);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    // After the dust settles every user sees exactly the database.
    let truth: Vec<(TopicId, i64)> = w
        .with_conn(|conn, _| {
            Ok(crate::schema::topic_subscribers::table
                .group_by(crate::schema::topic_subscribers::topic_id)
                .select((
                    crate::schema::topic_subscribers::topic_id,
                    diesel::dsl::count_star(),
                ))
                .load(conn)?)
        })
        .await
        .expect("truth");
    for user in [&w.alice, &w.bob, &w.staff] {
        let listing = w.list(user).await;
        for (topic, count) in &truth {
            assert_eq!(
                listing
                    .topics
                    .iter()
                    .find(|t| t.id == *topic)
                    .map(|t| t.subscribers),
                Some(*count)
            );
        }
    }
}

#[tokio::test]
async fn large_catalogs_come_in_pages_and_filter_by_name() {
    let w = world().await;
    crate::bench::seed(
        &w.services.db,
        crate::bench::Profile::named("small").expect("small"),
    )
    .await
    .expect("seed");
    let page = |page: usize, query: &str| {
        let state = w.services.clone();
        let user_id = w.alice.id;
        let request = PageRequest {
            page,
            query: query.to_owned(),
        };
        async move { list(&state, user_id, request).await.expect("list") }
    };

    let first = page(1, "").await;
    assert_eq!(
        (first.total, first.pages, first.topics.len()),
        (203, 3, PAGE_SIZE)
    );
    let last = page(3, "").await;
    assert_eq!((last.page, last.topics.len()), (3, 3));
    assert_eq!(
        page(99, "").await.page,
        3,
        "past the end shows the last page"
    );
    assert_eq!(page(0, "").await.page, 1);
    // Pages do not overlap and keep the name order.
    let mut names: Vec<String> = Vec::new();
    for n in 1..=3 {
        names.extend(page(n, "").await.topics.into_iter().map(|t| t.name));
    }
    let mut sorted = names.clone();
    sorted.sort_by_key(|name| name.to_lowercase());
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 203);

    let python = page(1, "  PYTH ").await;
    assert_eq!(python.total, 1);
    assert_eq!(python.topics[0].name, "Python");
    assert!(
        python.topics[0].subscribers > 0,
        "seeded subscriptions are counted"
    );
    assert_eq!(page(1, "no such topic").await.total, 0);
}

#[tokio::test]
async fn deleting_a_topic_with_very_many_subscribers_bumps_one_epoch() {
    let w = world().await;
    crate::bench::seed(
        &w.services.db,
        crate::bench::Profile::named("small").expect("small"),
    )
    .await
    .expect("seed");
    let python = w.topic_id("Python").await;
    w.with_conn(move |conn, _| {
        diesel::sql_query(placeholders(
            conn,
            "INSERT INTO topic_subscribers (topic_id, user_id) \
             SELECT ?, id FROM users WHERE true ON CONFLICT DO NOTHING",
        ))
        .bind::<diesel::sql_types::BigInt, _>(python)
        .execute(conn)?;
        Ok(())
    })
    .await
    .expect("everyone subscribes");
    w.list(&w.alice).await;
    let staff_before = w.services.cache.ticket(w.staff.id);
    let invalidations = w.invalidations();

    delete(&w.services, &w.staff, python).await.expect("delete");

    let spent = w.invalidations() - invalidations;
    assert_eq!(
        spent, 2,
        "one epoch for the 1,003 subscribers, one for the catalog"
    );
    assert!(!w.services.cache.has_user_topics(w.alice.id));
    assert!(w.services.cache.ticket(w.staff.id).user > staff_before.user);
    assert!(find(&w.list(&w.alice).await, "Python").is_none());
    assert_eq!(
        w.activities().await.last(),
        Some(&(None, "Python".to_owned(), "deleted".to_owned()))
    );
}

#[tokio::test]
async fn stored_counts_follow_every_way_a_subscription_ends() {
    let w = world().await;
    let python = w.topic_id("Python").await;
    let django = w.topic_id("Django").await;
    let (alice, bob) = (w.alice.id, w.bob.id);
    w.with_conn(move |conn, signals| {
        subscribe_in(conn, signals, alice, python)?;
        subscribe_in(conn, signals, alice, django)?;
        subscribe_in(conn, signals, bob, python)?;
        unsubscribe_all_in(conn, signals, alice)?;
        // An account removed by hand takes its subscriptions with it (ON DELETE CASCADE).
        diesel::delete(crate::schema::users::table.find(bob)).execute(conn)?;
        Ok(())
    })
    .await
    .expect("changes");
    let counts = w
        .with_conn(|conn, _| Ok(stored_and_actual_counts(conn)?))
        .await
        .expect("counts");
    for row in &counts {
        assert_eq!(row.stored, row.actual, "{}", row.name);
        assert_eq!(row.actual, 0, "{}", row.name);
    }
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

#[tokio::test]
async fn a_topic_up_to_one_batch_is_deleted_within_the_request() {
    let w = world().await;
    let django = w.topic_id("Django").await;
    let staff = w.staff.clone();
    let (deletion, rows) = w
        .with_conn(move |conn, signals| {
            subscribe_many(conn, django, purge::BATCH)?;
            let deletion = delete_in(conn, signals, &staff, django)?;
            Ok((deletion, rows_of_topic(conn, django)?))
        })
        .await
        .expect("delete");
    assert_eq!(deletion, Deletion::Done);
    assert_eq!(
        rows,
        (0, 0),
        "row and subscriptions gone in the same transaction"
    );
}

/// Python, renamed Snake, with more subscribers than one batch (Alice among them, and on
/// Django), deleted by staff: retired. Returns its id.
async fn retire_a_large_topic(w: &World) -> TopicId {
    let python = w.topic_id("Python").await;
    let django = w.topic_id("Django").await;
    let (alice, staff) = (w.alice.id, w.staff.clone());
    let renamer = staff.clone();
    w.with_conn(move |conn, signals| {
        subscribe_many(conn, python, purge::BATCH * 2 + 1)?;
        subscribe_in(conn, signals, alice, python)?;
        subscribe_in(conn, signals, alice, django)?;
        rename_in(conn, signals, &renamer, python, &TopicName::parse("Snake")?)
    })
    .await
    .expect("setup");
    w.list(&w.alice).await;

    let deletion = w
        .with_conn(move |conn, signals| delete_in(conn, signals, &staff, python))
        .await
        .expect("delete");
    assert_eq!(deletion, Deletion::Retired);
    python
}

#[tokio::test]
async fn a_retired_topic_is_gone_for_every_reader_and_operation_at_once() {
    let w = world().await;
    let python = retire_a_large_topic(&w).await;
    let alice = w.alice.id;

    // Gone for every reader and every operation, although the rows are still there.
    assert!(
        !w.services.cache.has_user_topics(alice),
        "subscribers invalidated"
    );
    let listing = w.list(&w.alice).await;
    assert!(find(&listing, "Snake").is_none());
    assert_eq!(listing.total, 2);
    assert!(find(&listing, "Django").is_some_and(|t| t.subscribed && t.subscribers == 1));
    let (rows, subscriptions) = w
        .with_conn(move |conn, _| Ok(rows_of_topic(conn, python)?))
        .await
        .expect("rows");
    assert_eq!((rows, subscriptions), (1, purge::BATCH * 2 + 2));
    let bob = w.bob.id;
    assert_eq!(
        w.with_conn(move |conn, signals| subscribe_in(conn, signals, bob, python))
            .await,
        Err(DomainError::NotFound)
    );
    assert_eq!(
        rename(&w.services, &w.staff, python, "Viper").await,
        Err(DomainError::NotFound)
    );
    assert_eq!(
        delete(&w.services, &w.staff, python).await,
        Err(DomainError::NotFound)
    );
    // Its history went as with CASCADE (the `updated` row); the tombstone stays.
    assert_eq!(
        w.activities().await,
        vec![(None, "Snake".into(), "deleted".into())]
    );
}

#[tokio::test]
async fn a_retired_topics_name_is_free_at_once_and_still_unique_among_live_topics() {
    let w = world().await;
    let python = retire_a_large_topic(&w).await;
    create(&w.services, &w.bob, "Snake")
        .await
        .expect("name free again");
    assert_eq!(
        create(&w.services, &w.bob, "SNAKE").await,
        Err(DomainError::Conflict(
            "A topic named “SNAKE” exists already.".into()
        ))
    );
    assert_ne!(w.topic_id("Snake").await, python);
}

#[tokio::test]
async fn a_retired_topic_is_purged_in_batches_then_its_row() {
    let w = world().await;
    let python = retire_a_large_topic(&w).await;
    create(&w.services, &w.bob, "Snake")
        .await
        .expect("name free again");
    let snake = w.topic_id("Snake").await;

    // Three batches: two full ones, then the rest with the row.
    let batches = w
        .with_conn(|conn, _| {
            let mut batches = Vec::new();
            while let Some(purged) = purge::purge_batch(conn)? {
                batches.push(purged);
            }
            Ok(batches)
        })
        .await
        .expect("purge");
    let sizes: Vec<(usize, bool)> = batches
        .iter()
        .map(|b| (b.subscriptions, b.finished))
        .collect();
    let full = usize::try_from(purge::BATCH).expect("batch size");
    assert_eq!(sizes, vec![(full, false), (full, false), (2, true)]);
    assert!(batches.iter().all(|b| b.topic_id == python));
    let (rows, subscriptions) = w
        .with_conn(move |conn, _| Ok(rows_of_topic(conn, python)?))
        .await
        .expect("rows");
    assert_eq!((rows, subscriptions), (0, 0));
    assert_eq!(
        w.with_conn(|conn, _| Ok(purge::purge_all(conn)?)).await,
        Ok(0),
        "nothing left to purge"
    );
    let listing = w.list(&w.alice).await;
    assert!(find(&listing, "Snake").is_some_and(|t| t.id == snake && t.subscribers == 0));
    assert!(find(&listing, "Django").is_some_and(|t| t.subscribed));
}

#[tokio::test]
async fn writers_keep_going_while_a_retired_topic_is_purged() {
    let w = world().await;
    let python = w.topic_id("Python").await;
    let django = w.topic_id("Django").await;
    let staff = w.staff.clone();
    let deletion = w
        .with_conn(move |conn, signals| {
            subscribe_many(conn, python, purge::BATCH * 5)?;
            delete_in(conn, signals, &staff, python)
        })
        .await
        .expect("delete");
    assert_eq!(deletion, Deletion::Retired);
    let purging = tokio::spawn(purge::run(w.services.db.clone(), w.services.purge.clone()));

    let writers: Vec<_> = [w.alice.id, w.bob.id]
        .into_iter()
        .map(|user| {
            let state = w.services.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    subscriptions::subscribe(&state, user, django).await?;
                    assert_eq!(
                        subscriptions::subscribe(&state, user, python).await,
                        Err(DomainError::NotFound)
                    );
                    subscriptions::unsubscribe(&state, user, django).await?;
                }
                subscriptions::subscribe(&state, user, django).await
            })
        })
        .collect();
    for writer in writers {
        writer
            .await
            .expect("writer task")
            .expect("no write fails while the purge runs");
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = w
            .with_conn(move |conn, _| Ok(rows_of_topic(conn, python)?))
            .await
            .expect("rows");
        if left == (0, 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "purge stalled at {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    purging.abort();
    let counts = w
        .with_conn(|conn, _| Ok(stored_and_actual_counts(conn)?))
        .await
        .expect("counts");
    for row in &counts {
        assert_eq!(row.stored, row.actual, "{}", row.name);
    }
    assert!(counts
        .iter()
        .any(|row| row.name == "Django" && row.actual == 2));
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

#[tokio::test]
async fn a_subscription_tells_open_pages_its_new_count_and_flag_and_a_rename_does_not() {
    use crate::live::LiveEvent;
    let w = world().await;
    let python = w.topic_id("Python").await;
    let mut events = w.services.live.subscribe();
    crate::subscriptions::subscribe(&w.services, w.alice.id, python)
        .await
        .expect("subscribe");
    crate::subscriptions::subscribe(&w.services, w.bob.id, python)
        .await
        .expect("subscribe");
    // On PostgreSQL the instance also hears its own commits through the database, as bumps
    // that say nothing, before or after its own: one entry per version, the telling one.
    type Told = ((Option<UserId>, u64), Option<Vec<(TopicId, i64)>>);
    let mut told: Vec<Told> = Vec::new();
    for event in published(&mut events) {
        let (key, moved) = match event {
            LiveEvent::Shared { version, counts } => ((None, version), counts.map(|c| c.to_vec())),
            LiveEvent::User {
                user_id,
                version,
                flags,
            } => (
                (Some(user_id), version),
                flags.map(|f| f.iter().map(|&(t, f)| (t, i64::from(f))).collect()),
            ),
            _ => continue,
        };
        match told.iter_mut().find(|(seen, _)| *seen == key) {
            Some((_, said)) => *said = said.take().or(moved),
            None => told.push((key, moved)),
        }
    }
    let told: Vec<_> = told
        .into_iter()
        .map(|((who, _), moved)| (who, moved))
        .collect();
    assert_eq!(
        told,
        vec![
            (Some(w.alice.id), Some(vec![(python, 1)])),
            (None, Some(vec![(python, 1)])),
            (Some(w.bob.id), Some(vec![(python, 1)])),
            (None, Some(vec![(python, 2)])),
        ],
        "each user's flag, then the count as committed"
    );

    rename(&w.services, &w.staff, python, "Python 3")
        .await
        .expect("rename");
    let renamed = published(&mut events);
    assert!(
        renamed
            .iter()
            .any(|event| matches!(event, LiveEvent::Shared { counts: None, .. })),
        "a rename is not told as counts: pages refetch ({renamed:?})"
    );
    assert!(!renamed.iter().any(|event| matches!(
        event,
        LiveEvent::Shared {
            counts: Some(_),
            ..
        }
    )));
}

/// Writers racing on one topic: the counts they read inside their transactions reach the
/// hub in version order, so a page that applies every patch in turn ends at the committed
/// count. (Published after the writer's turn ended, a later commit's count could go out
/// first and be overwritten by an earlier one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_reach_open_pages_in_the_order_they_were_committed() {
    use crate::live::LiveEvent;
    let w = Arc::new(world().await);
    if w.services.db.backend() != crate::db::Backend::Sqlite {
        // PostgreSQL's versions come from the database and may reach the hub out of order;
        // a page that sees a gap refetches (`server/src/live_routes.rs`).
        return;
    }
    let python = w.topic_id("Python").await;
    let mut events = w.services.live.subscribe();
    let users = [w.alice.id, w.bob.id, w.staff.id];
    let mut tasks = Vec::new();
    for user in users {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            // Within the hub's buffer: two bumps per write.
            for _ in 0..15 {
                crate::subscriptions::subscribe(&w.services, user, python)
                    .await
                    .expect("subscribe");
                crate::subscriptions::unsubscribe(&w.services, user, python)
                    .await
                    .expect("unsubscribe");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    crate::subscriptions::subscribe(&w.services, w.alice.id, python)
        .await
        .expect("subscribe");

    let mut versions = Vec::new();
    let mut shown = None;
    for event in published(&mut events) {
        if let LiveEvent::Shared {
            version,
            counts: Some(counts),
        } = event
        {
            versions.push(version);
            if let Some(&(_, count)) = counts.iter().find(|(id, _)| *id == python) {
                shown = Some(count);
            }
        }
    }
    assert!(
        versions.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "versions published out of order: {versions:?}"
    );
    assert_eq!(shown, Some(1), "the page ends at the committed count");
    assert_eq!(
        w.list(&w.bob)
            .await
            .topics
            .iter()
            .find(|t| t.id == python)
            .map(|t| t.subscribers),
        Some(1)
    );
}
