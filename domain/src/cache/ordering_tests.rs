//! The ordering rule of the versions PostgreSQL keeps (`shared`), on two instances: a fill and
//! another instance's commit forced to interleave, commits heard out of order, a commit told
//! to nobody, and a listener killed while writes stream past it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, RunQueryDsl};

use super::shared::{self, Moved, Probed};
use super::stale::Stale;
use super::{TopicCache, TTL};
use crate::db::scratch::ScratchDatabase;
use crate::db::Db;
use crate::ids::{TopicId, UserId};
use crate::live::{Count, LiveEvent};
use crate::services::Services;
use crate::testing::{listening_instance as instance, wait_for};
use crate::topics::{list, list_pausing_before_fill, TopicListing};

fn heard(cache: &TopicCache, catalog: Vec<(u16, u64)>) {
    let moved = Moved {
        catalog,
        ..Default::default()
    };
    cache.advance_heard(&moved, &crate::testing::token());
}

fn catalog_version(cache: &TopicCache) -> u64 {
    cache.ticket(UserId(1)).catalog
}

#[test]
fn shards_heard_out_of_order_are_only_ever_raised() {
    let cache = TopicCache::following_database_versions(TTL);
    heard(&cache, vec![(3, 5)]);
    heard(&cache, vec![(7, 2)]);
    assert_eq!(
        catalog_version(&cache),
        7,
        "the catalog's version is the sum of its shards"
    );
    let ticket = cache.ticket(UserId(1));
    assert!(cache.fill_catalog(&ticket, Arc::new(Vec::new())));

    // Notifications of earlier commits arriving late, and a repeat: nothing moves back, and
    // the entry read under the newer versions stays.
    heard(&cache, vec![(3, 4)]);
    heard(&cache, vec![(7, 1), (3, 5)]);
    cache.observe(&Probed {
        catalog: (0..super::keys::CATALOG_SHARDS)
            .map(|shard| (shard, 0))
            .collect(),
        ..Default::default()
    });
    assert_eq!(catalog_version(&cache), 7);
    assert!(
        cache.has_catalog(),
        "an old version does not drop a newer entry"
    );

    // Any shard moving on drops it, and a read taken under the old versions cannot come back.
    heard(&cache, vec![(11, 1)]);
    assert_eq!(catalog_version(&cache), 8);
    assert!(!cache.has_catalog());
    assert!(!cache.fill_catalog(&ticket, Arc::new(Vec::new())));
}

/// Every shard as a commit's transaction saw them right after it moved `shard` to `version`:
/// `seen` for the shards given, 0 for the rest.
fn every_shard_seen((shard, version): (u16, u64), seen: &[(u16, u64)]) -> Vec<(u16, u64)> {
    let mut every: Vec<(u16, u64)> = (0..super::keys::CATALOG_SHARDS).map(|at| (at, 0)).collect();
    for &(at, seen_version) in seen.iter().chain([(shard, version)].iter()) {
        every[usize::from(at)].1 = seen_version;
    }
    every
}

/// One commit of topic `first`'s subscriptions as its own instance tells it: it moved `shard`
/// to `version`, saw `seen` for the other shards, and left `subscribers` on the topic. The
/// version open pages patch to by the rule here, if any.
fn told_commit(
    cache: &TopicCache,
    first: TopicId,
    (shard, version): (u16, u64),
    seen: &[(u16, u64)],
    subscribers: i64,
) -> Option<u64> {
    let catalog_seen = every_shard_seen((shard, version), seen);
    let bumped = shared::Bumped {
        moved: Moved {
            catalog: vec![(shard, version)],
            ..Default::default()
        },
        catalog_seen: Some(catalog_seen.clone()),
    };
    // The topic's count moves with each commit: its version is the commits so far here.
    let count = Count {
        subscribers,
        version: i64::try_from(shared::catalog_version(&catalog_seen)).unwrap_or(i64::MAX),
    };
    let counts = BTreeMap::from([(first, count)]);
    cache
        .advance_patching(&bumped, &counts, &BTreeMap::new(), &crate::testing::token())
        .1
}

fn cached_count(cache: &TopicCache, topic: TopicId) -> Option<i64> {
    cache.catalog().map(|catalog| {
        catalog
            .iter()
            .find(|entry| entry.id == topic)
            .map_or(-1, |entry| entry.count.subscribers)
    })
}

/// Two commits of one topic move different shards; the first to commit left 2 subscribers,
/// the second 1. Their post-commit work runs in commit order, then in the other order: the
/// cache ends at 1 or holds nothing, never at the first commit's 2.
#[test]
fn commits_of_one_topic_told_out_of_order_never_patch_back() {
    let first = TopicId(1);
    let filled = || {
        let cache = TopicCache::following_database_versions(TTL);
        let ticket = cache.ticket(UserId(1));
        let catalog = vec![super::CatalogEntry {
            id: first,
            name: "Rust".into(),
            // Read before either commit.
            count: Count {
                subscribers: 1,
                version: 0,
            },
        }];
        assert!(cache.fill_catalog(&ticket, Arc::new(catalog)));
        cache
    };

    let in_order = filled();
    assert_eq!(told_commit(&in_order, first, (1, 1), &[], 2), Some(1));
    assert_eq!(told_commit(&in_order, first, (2, 1), &[(1, 1)], 1), Some(2));
    assert_eq!(
        cached_count(&in_order, first),
        Some(1),
        "told in commit order, each commit patches the entry"
    );

    let reversed = filled();
    assert_eq!(told_commit(&reversed, first, (2, 1), &[(1, 1)], 1), None);
    assert_eq!(
        cached_count(&reversed, first),
        None,
        "the second commit is told first: the entry has not heard the first, so it is dropped"
    );
    assert_eq!(told_commit(&reversed, first, (1, 1), &[], 2), None);
    assert_eq!(
        cached_count(&reversed, first),
        None,
        "the first commit, told last, must not patch its count over the second's"
    );
    assert_eq!(catalog_version(&reversed), 2);
}

/// What another instance hears of a commit told with the catalog its transaction saw: the
/// version its pages patch to, if any.
fn heard_told(
    cache: &TopicCache,
    (shard, version): (u16, u64),
    seen: &[(u16, u64)],
) -> Option<u64> {
    let catalog_seen = every_shard_seen((shard, version), seen);
    let moved = Moved {
        catalog: vec![(shard, version)],
        ..Default::default()
    };
    let (bumps, next) = cache.advance_heard_told(
        &moved,
        &catalog_seen,
        &[],
        &Default::default(),
        &crate::testing::token(),
    );
    assert!(
        matches!(bumps.as_slice(), [LiveEvent::Shared { .. }]),
        "the move is told either way: {bumps:?}"
    );
    next
}

/// The same two commits of one topic, heard by another instance through the database: its
/// cached catalog is patched with a commit only when it is the catalog's very next step
/// there, so heard in reverse the first commit's count is never patched over the second's
/// (pages place the counts by their own versions).
#[test]
fn commits_heard_from_another_instance_out_of_order_are_never_patched_back() {
    let in_order = TopicCache::following_database_versions(TTL);
    assert_eq!(heard_told(&in_order, (1, 1), &[]), Some(1));
    assert_eq!(heard_told(&in_order, (2, 1), &[(1, 1)]), Some(2));

    let reversed = TopicCache::following_database_versions(TTL);
    assert_eq!(
        heard_told(&reversed, (2, 1), &[(1, 1)]),
        None,
        "the second commit heard first: a commit before it is missing here, the entry goes"
    );
    assert_eq!(
        heard_told(&reversed, (1, 1), &[]),
        None,
        "the first heard last: its count is older than what a refill read"
    );
    assert_eq!(catalog_version(&reversed), 2);
}

/// A request read the catalog's versions after another instance's commit and before its
/// notification: the commit is still the catalog's next step here. Not when the read found
/// a later commit too.
#[test]
fn a_commit_read_in_the_database_before_its_notification_is_still_told_as_counts() {
    let observed = |catalog: Vec<(u16, u64)>| {
        let cache = TopicCache::following_database_versions(TTL);
        cache.observe(&Probed {
            catalog,
            ..Default::default()
        });
        cache
    };
    let found = observed(vec![(1, 1)]);
    assert_eq!(heard_told(&found, (1, 1), &[]), Some(1));
    assert_eq!(catalog_version(&found), 1);

    let found_later_too = observed(vec![(1, 1), (2, 1)]);
    assert_eq!(
        heard_told(&found_later_too, (1, 1), &[]),
        None,
        "a commit the first one did not see was read here: not the next step"
    );
    assert_eq!(catalog_version(&found_later_too), 2);
}

fn connect(place: &ScratchDatabase) -> PgConnection {
    PgConnection::establish(place.url()).expect("connect")
}

/// Two instances, a member, and the first topic.
async fn two_instances(place: &ScratchDatabase) -> (Services, Services, UserId, TopicId) {
    let (a, b) = (instance(place).await, instance(place).await);
    let alice = crate::testing::account(&a.db, "alice", false).await.id;
    let first = list(&a, alice, Default::default())
        .await
        .expect("list")
        .topics[0]
        .id;
    (a, b, alice, first)
}

/// Subscribes `user` to `topic` as an instance that stopped right after its commit would:
/// the rows and the versions move, and nobody is told.
fn commit_untold(conn: &mut PgConnection, user: UserId, topic: TopicId) {
    conn.transaction(|conn| {
        diesel::sql_query("INSERT INTO topic_subscribers (topic_id, user_id) VALUES ($1, $2)")
            .bind::<BigInt, _>(topic.0)
            .bind::<BigInt, _>(user.0)
            .execute(conn)?;
        let stale = Stale {
            users: BTreeSet::from([user]),
            catalog: true,
            described: None,
        };
        shared::bump(conn, &stale)
    })
    .expect("committed");
}

/// What `b` read for `user`'s page before `commit` ran, which `b` then tries to cache.
async fn read_around(
    b: &Services,
    user: UserId,
    commit: impl std::future::Future<Output = ()>,
) -> TopicListing {
    let (read_tx, read) = mpsc::channel::<()>();
    let (resume_tx, resume) = mpsc::channel::<()>();
    let (cache, db) = (b.cache.clone(), b.db.clone());
    let reader = tokio::spawn(async move {
        db.run(move |conn| {
            list_pausing_before_fill(conn, &cache, user, move || {
                let _ = read_tx.send(());
                let _ = resume.recv_timeout(Duration::from_secs(10));
            })
        })
        .await
    });
    tokio::task::spawn_blocking(move || read.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the reader reached its fill");
    commit.await;
    resume_tx.send(()).expect("resume the reader");
    reader.await.expect("join").expect("list")
}

fn row(listing: &TopicListing, topic: TopicId) -> (i64, bool) {
    listing
        .topics
        .iter()
        .find(|row| row.id == topic)
        .map(|row| (row.subscribers, row.subscribed))
        .expect("listed")
}

/// Instance B has read the database for a page and not yet filled its cache when A commits
/// a change, told to B or (A stopped at once) never told. Whatever B stored, its next
/// request serves the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fill_read_before_another_instances_commit_is_never_served() {
    let place = ScratchDatabase::create();
    let (a, b, alice, first) = two_instances(&place).await;
    let stale = read_around(&b, alice, async {
        crate::subscriptions::subscribe(&a, alice, first)
            .await
            .expect("subscribe");
    })
    .await;
    assert_eq!(row(&stale, first), (0, false), "read before the commit");
    let served = list(&b, alice, Default::default()).await.expect("list");
    assert_eq!(row(&served, first), (1, true));

    let bob = crate::testing::account(&a.db, "bob", false).await.id;
    let mut untold = connect(&place);
    let stale = read_around(&b, bob, async {
        tokio::task::spawn_blocking(move || commit_untold(&mut untold, bob, first))
            .await
            .expect("join");
    })
    .await;
    assert_eq!(row(&stale, first), (1, false), "read before the commit");
    let served = list(&b, bob, Default::default()).await.expect("list");
    assert_eq!(row(&served, first), (2, true));
    let served = list(&a, alice, Default::default()).await.expect("list");
    assert_eq!(row(&served, first), (2, true), "and on the other instance");
}

/// What a commit's transaction saw of the catalog (which decides whether another instance may
/// patch its cached catalog with the commit's counts) is the catalog right after its own move,
/// and a commit that lands after it is not in it.
#[tokio::test]
async fn a_commit_sees_the_catalog_right_after_its_own_move() {
    let place = ScratchDatabase::create();
    let _migrated = instance(&place).await;
    let (mut one, mut two) = (connect(&place), connect(&place));
    let catalog = || Stale {
        users: BTreeSet::new(),
        catalog: true,
        described: None,
    };
    let bump = |conn: &mut PgConnection| {
        conn.transaction(|conn| shared::bump(conn, &catalog()))
            .expect("bumped")
            .catalog_seen
            .expect("the catalog was read")
    };

    let before = shared::catalog_version(&shared::catalog_now(&mut one).expect("read"));
    let seen = bump(&mut one);
    assert_eq!(shared::catalog_version(&seen), before + 1);
    assert_eq!(shared::catalog_now(&mut one).expect("read"), seen);

    let seen = bump(&mut one);
    bump(&mut two);
    assert_ne!(
        shared::catalog_now(&mut one).expect("read"),
        seen,
        "another commit landed after the transaction's read"
    );
    assert_eq!(
        shared::catalog_version(&shared::catalog_now(&mut one).expect("read")),
        before + 3
    );
}

/// The committing instance stopped between its commit and its announcement: every other
/// instance's open pages still hear of the catalog's move, from the listener's reread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_never_announced_reaches_open_pages_by_the_reread() {
    let place = ScratchDatabase::create();
    let (a, b, alice, first) = two_instances(&place).await;
    let mut events = b.live.subscribe();
    let mut conn = connect(&place);
    commit_untold(&mut conn, alice, first);
    let now = shared::catalog_version(&shared::catalog_now(&mut conn).expect("read"));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(LiveEvent::Shared { version, .. })) if version == now => break,
            Ok(_) => {}
            Err(_) => panic!("no page heard of the catalog's version {now}"),
        }
    }
    assert_eq!(catalog_version(&b.cache), now);
    wait_for("the committing side's listener too", || {
        catalog_version(&a.cache) == now
    })
    .await;
}

/// Writes stream through A while B's listener is killed and reconnects: B ends at the last
/// version without serving a request, and serves what the database holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listener_killed_while_writes_stream_ends_at_the_last_version() {
    let place = ScratchDatabase::create();
    let (a, b, alice, first) = two_instances(&place).await;
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut last = None;
            for step in 0..200 {
                let version = if step % 2 == 0 {
                    crate::subscriptions::subscribe(&a, alice, first).await
                } else {
                    crate::subscriptions::unsubscribe(&a, alice, first).await
                };
                last = Some(version.expect("a write"));
            }
            last.expect("200 writes")
        })
    };
    wait_for("some writes", || a.view_version(alice).user >= 20).await;
    let ended = crate::testing::terminate_listeners(&place);
    assert_eq!(ended, 2, "one listener per instance");
    let last = writer.await.expect("join");

    let remote = b.remote.clone().expect("listening");
    wait_for("a reconnect", || {
        remote.reconnects.load(Ordering::Relaxed) >= 1
    })
    .await;
    wait_for("the last write", || b.view_version(alice) == last).await;
    let fresh = Services::new(Db::open(place.url()).await.expect("open"), Duration::ZERO);
    let expected = list(&fresh, alice, Default::default())
        .await
        .expect("fresh");
    let served = list(&b, alice, Default::default()).await.expect("list");
    assert_eq!(served.topics, expected.topics);
    assert_eq!(served.version, last);
}
