//! Changes committed by other instances (PostgreSQL): sessions they ended are dropped from
//! this instance's memory at once, and their version moves arrive as
//! notifications (`cache::payloads::CHANNEL`, sent after the commit by `announce`), and this
//! instance applies them as its own receivers would after a commit: its cache entries go and
//! its open pages hear of it. Pages stay exact without this (every request reads the
//! versions); it is what makes open pages on every instance follow changes live.
//!
//! One thread and one connection per instance, polling: Diesel's notification iterator does
//! not block. When the connection is lost the thread reconnects, then reads every version
//! (notifications sent meanwhile are lost) so open pages catch up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use super::{Receiving, Signals};
use crate::cache::{payloads, shared};
use crate::sessions::{self, EndedElsewhere};

/// How often the connection is asked for what has arrived: the latency notifications add.
const POLL: Duration = Duration::from_millis(10);
/// How often the catalog's versions are read again: a notification the committing instance
/// never sent (it stopped between its commit and its announcement) is made up for within
/// twice this. (A user's own versions are read by each of the user's requests.)
///
/// A reading is acted on only at the next one: a commit found in it has had a whole period
/// for its notification to arrive. Acted on at once, a reread would often find a commit
/// whose notification is still on its way (the committing instance announces after its
/// commit) and tell every open page a bare version, so that all of them refetch what the
/// notification would have let them patch.
const REREAD: Duration = Duration::from_millis(500);
/// Between attempts to reconnect.
const RETRY: Duration = Duration::from_millis(500);

/// What the listener has done, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct RemoteStats {
    /// Notifications applied (this instance's own included).
    pub received: AtomicU64,
    /// Connections made after the first: each one followed a lost connection.
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
}

/// Starts following the version moves and ended sessions of every instance on the database
/// at `url`, on a thread of its own that ends once `signals` is dropped.
pub fn follow(
    url: String,
    signals: &Arc<Signals>,
    sessions: EndedElsewhere,
) -> std::io::Result<Arc<RemoteStats>> {
    let stats = Arc::new(RemoteStats::default());
    let weak = Arc::downgrade(signals);
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name("versions-listener".into())
        .spawn(move || {
            let heard = Heard {
                signals: weak,
                sessions,
                stats: thread_stats,
            };
            run(&url, &heard)
        })?;
    Ok(stats)
}

/// What the listener acts on.
struct Heard {
    signals: Weak<Signals>,
    sessions: EndedElsewhere,
    stats: Arc<RemoteStats>,
}

fn run(url: &str, heard: &Heard) {
    let (signals, stats) = (&heard.signals, &*heard.stats);
    let mut connections = 0_u64;
    while signals.strong_count() > 0 {
        match listen(url, signals) {
            Ok(mut conn) => {
                if connections > 0 {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("listening for other instances' changes again");
                }
                connections += 1;
                stats.connected.store(true, Ordering::Relaxed);
                let lost = pump(&mut conn, heard);
                stats.connected.store(false, Ordering::Relaxed);
                match lost {
                    Some(err) => tracing::warn!(error = %err, "lost the listening connection"),
                    None => return,
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for other instances' changes"),
        }
        std::thread::sleep(RETRY);
    }
}

/// Connects, listens, then catches up on whatever moved while nobody listened.
fn listen(url: &str, signals: &Weak<Signals>) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    conn.batch_execute(&format!(
        "SET application_name = 'subscriptions-listener'; LISTEN {}; LISTEN {}",
        payloads::CHANNEL,
        sessions::ENDED_CHANNEL
    ))
    .map_err(|e| e.to_string())?;
    // After LISTEN, so that nothing committed in between goes unheard.
    let all = shared::load_all(&mut conn).map_err(|e| e.to_string())?;
    if let Some(signals) = signals.upgrade() {
        signals.effects.advance(&all, &Receiving::new());
    }
    Ok(conn)
}

/// Applies notifications until the connection fails (its error) or the signals are gone.
fn pump(conn: &mut PgConnection, heard: &Heard) -> Option<String> {
    let (signals, stats) = (&heard.signals, &*heard.stats);
    let mut checked = Instant::now();
    let mut last_reading: Option<shared::Shards> = None;
    loop {
        // The iterator repeats a connection error for ever: stop at the first one.
        let mut arrived = Vec::new();
        for notification in conn.notifications_iter() {
            match notification {
                Ok(notification) => arrived.push(notification),
                Err(err) => return Some(err.to_string()),
            }
        }
        let signals_now = signals.upgrade()?;
        for notification in arrived {
            if notification.channel == sessions::ENDED_CHANNEL {
                heard.sessions.tell(&notification.payload);
                continue;
            }
            match payloads::decode_told(&notification.payload) {
                Some((moved, told)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    match told {
                        Some(told) => {
                            signals_now
                                .effects
                                .advance_told(&moved, &told, &Receiving::new())
                        }
                        None => signals_now.effects.advance(&moved, &Receiving::new()),
                    }
                }
                None => tracing::warn!(payload = %notification.payload, "unreadable notification"),
            }
        }
        drop(signals_now);
        if checked.elapsed() >= REREAD {
            // Also the check that the connection is alive (a statement on a dead one fails).
            match shared::catalog_now(conn) {
                Ok(catalog) => {
                    let settled = last_reading.replace(catalog);
                    if let (Some(signals), Some(settled)) = (signals.upgrade(), settled) {
                        signals.effects.reread_catalog(&settled, &Receiving::new());
                    }
                }
                Err(err) => return Some(err.to_string()),
            }
            checked = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use crate::db::scratch::ScratchDatabase;
    use crate::db::Db;
    use crate::ids::UserId;
    use crate::live::LiveEvent;
    use crate::services::Services;
    use crate::testing::{listening_instance as instance, wait_for};

    /// The subscriber counts told, without their versions.
    fn subscribers(counts: &crate::live::Counts) -> Vec<(crate::ids::TopicId, i64)> {
        counts.iter().map(|&(t, n)| (t, n.subscribers)).collect()
    }

    async fn member(services: &Services, name: &str) -> UserId {
        crate::testing::account(&services.db, name, false).await.id
    }

    /// Waits for `user`'s version on `services` to be `version`, without asking the
    /// database: only a notification can move it. (Generous for a loaded machine; the
    /// latency is measured by the HTTP test and the benchmarks, not asserted here.)
    async fn heard(
        services: &Services,
        events: &mut tokio::sync::broadcast::Receiver<LiveEvent>,
        user: UserId,
        version: crate::live::ViewVersion,
    ) {
        let started = Instant::now();
        let patience = Duration::from_secs(10);
        while services.view_version(user) != version {
            let left = patience.saturating_sub(started.elapsed());
            assert!(
                !left.is_zero(),
                "not heard: {:?} vs {version:?}",
                services.view_version(user)
            );
            let _ = tokio::time::timeout(left, events.recv()).await;
        }
    }

    /// Two instances on `place`, a member, and the first topic of the list.
    async fn two_instances_and_a_member(
        place: &ScratchDatabase,
    ) -> (Services, Services, UserId, crate::ids::TopicId) {
        let (a, b) = (instance(place).await, instance(place).await);
        let alice = member(&a, "alice").await;
        let first_topic = crate::topics::list(&a, alice, Default::default())
            .await
            .expect("list")
            .topics[0]
            .id;
        (a, b, alice, first_topic)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_change_on_one_instance_reaches_the_open_pages_of_another() {
        let place = ScratchDatabase::create();
        let (a, b, alice, python) = two_instances_and_a_member(&place).await;
        let mut events = b.live.subscribe();
        let version = crate::subscriptions::subscribe(&a, alice, python)
            .await
            .expect("subscribe");
        heard(&b, &mut events, alice, version).await;
        let received = b
            .remote
            .as_ref()
            .map(|r| r.received.load(Ordering::Relaxed));
        assert!(received.is_some_and(|n| n >= 1));
    }

    /// Alice subscribes to the first topic through one instance while the other, whose
    /// requests read where the versions stand, follows what its hub publishes.
    async fn subscribed_elsewhere(
        place: &ScratchDatabase,
    ) -> (
        Services,
        UserId,
        crate::ids::TopicId,
        tokio::sync::broadcast::Receiver<LiveEvent>,
    ) {
        let (a, b, alice, python) = two_instances_and_a_member(place).await;
        crate::topics::list(&b, alice, Default::default())
            .await
            .expect("list");
        let events = b.live.subscribe();
        crate::subscriptions::subscribe(&a, alice, python)
            .await
            .expect("subscribe");
        (b, alice, python, events)
    }

    /// The first event `pick` takes (`Some`), within a patience meant for a loaded machine.
    async fn first_told<T>(
        events: &mut tokio::sync::broadcast::Receiver<LiveEvent>,
        mut pick: impl FnMut(LiveEvent) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            let left = Duration::from_secs(10).saturating_sub(started.elapsed());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(event)) => {
                    if let Some(picked) = pick(event) {
                        return picked;
                    }
                }
                Ok(Err(_)) => {}
                Err(_) => panic!("the other instance's pages were not told"),
            }
        }
    }

    /// The commit tells its counts and the catalog its transaction saw: the other instance
    /// tells its open pages the new count to patch (not a bare version that would make every
    /// one of them refetch), and, its catalog being exactly one commit behind, patches its
    /// cached catalog too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_subscription_on_one_instance_reaches_the_others_pages_with_its_count() {
        let place = ScratchDatabase::create();
        let (b, _, python, mut events) = subscribed_elsewhere(&place).await;
        let counts = first_told(&mut events, |event| match event {
            LiveEvent::Shared {
                counts: Some(counts),
                ..
            } => Some(counts),
            LiveEvent::Shared { counts: None, .. } => {
                panic!("told as a bare version: every open page would refetch")
            }
            _ => None,
        })
        .await;
        assert_eq!(subscribers(&counts), [(python, 1)]);
        // Its cached catalog was patched, not dropped: the next page reads no catalog.
        let cached = b.cache.catalog().expect("the catalog is still cached");
        let entry = cached
            .iter()
            .find(|entry| entry.id == python)
            .expect("listed");
        assert_eq!(entry.count.subscribers, 1);
    }

    /// A user's change through one instance reaches the user's pages on another with the new
    /// flags (not a bare version: they patch instead of refetching).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_subscription_on_one_instance_reaches_the_user_s_pages_on_another_with_the_flag() {
        let place = ScratchDatabase::create();
        let (_b, alice, python, mut events) = subscribed_elsewhere(&place).await;
        let flags = first_told(&mut events, |event| match event {
            LiveEvent::User { user_id, flags, .. } if user_id == alice => Some(flags),
            _ => None,
        })
        .await;
        assert_eq!(flags.as_deref(), Some(&[(python, true)][..]));
    }

    /// The race every busy instance runs: a request reads the versions in the database after
    /// another instance's commit and before that commit's notification arrives. The read told
    /// no page, so when the notification comes the pages still patch with its count. (Here
    /// the other instance hears nothing by itself: the test hands it the notification once
    /// its request has read the versions.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_commit_read_by_a_request_before_its_notification_still_reaches_pages_as_counts() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, PgConnection};

        let place = ScratchDatabase::create();
        let a = instance(&place).await;
        let b = Services::for_a_command(Db::open(place.url()).await.expect("open"));
        let alice = member(&a, "alice").await;
        let python = crate::topics::list(&b, alice, Default::default())
            .await
            .expect("list")
            .topics[0]
            .id;
        let mut notifications = PgConnection::establish(place.url()).expect("connect");
        notifications
            .batch_execute(&format!("LISTEN {}", crate::cache::payloads::CHANNEL))
            .expect("listen");
        let mut events = b.live.subscribe();

        crate::subscriptions::subscribe(&a, alice, python)
            .await
            .expect("subscribe");
        let read = crate::topics::list(&b, alice, Default::default())
            .await
            .expect("list");
        assert_eq!(
            read.version,
            a.view_version(alice),
            "the request read the commit"
        );

        let started = Instant::now();
        let (moved, told) = loop {
            let arrived = notifications.notifications_iter().next();
            if let Some(notification) = arrived {
                let payload = notification.expect("a notification").payload;
                match crate::cache::payloads::decode_told(&payload) {
                    Some((moved, Some(told))) => break (moved, told),
                    _ => continue,
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no counts announced"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        b.signals
            .effects
            .advance_told(&moved, &told, &super::Receiving::new());
        let shared: Vec<LiveEvent> = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|event| matches!(event, LiveEvent::Shared { .. }))
            .collect();
        match &shared[..] {
            [LiveEvent::Shared {
                counts: Some(counts),
                ..
            }] => assert_eq!(subscribers(counts), [(python, 1)]),
            other => panic!("expected the count, told to pages: {other:?}"),
        }
    }

    /// Two instances' commits that did not see each other (neither transaction's catalog has
    /// the other's move) reach this instance's pages as counts in the order heard, and a
    /// count of a topic older than one told reaches no page: no page refetches for a count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn commits_that_did_not_see_each_other_reach_pages_as_counts_in_either_order() {
        use crate::cache::payloads::Told;
        use crate::cache::shared;
        use crate::live::Count;
        use diesel::{Connection, PgConnection};

        let place = ScratchDatabase::create();
        let b = Services::for_a_command(Db::open(place.url()).await.expect("open"));
        let alice = member(&b, "alice").await;
        let listing = crate::topics::list(&b, alice, Default::default())
            .await
            .expect("list");
        let (python, django) = (listing.topics[0].id, listing.topics[1].id);
        let mut page = b.live.follow_page(Some(vec![python, django]));
        let mut conn = PgConnection::establish(place.url()).expect("connect");
        let now = shared::catalog_now(&mut conn).expect("read");
        // A commit that moved `shard` one on and saw no other commit since `now`.
        let commit = |shard: u16, topic, subscribers, version| {
            let mut seen = now.clone();
            seen[usize::from(shard)].1 += 1;
            let moved = shared::Moved {
                catalog: vec![seen[usize::from(shard)]],
                ..Default::default()
            };
            let counts = vec![(
                topic,
                Count {
                    subscribers,
                    version,
                },
            )];
            (
                moved,
                Told {
                    seen,
                    counts,
                    flags: vec![],
                },
            )
        };
        let told = |(moved, told): (shared::Moved, Told)| {
            b.signals
                .effects
                .advance_told(&moved, &told, &super::Receiving::new())
        };
        let heard = |page: &mut crate::live::PageFollow| match page.events.try_recv() {
            Ok(LiveEvent::Shared {
                counts: Some(counts),
                ..
            }) => counts.to_vec(),
            other => panic!("expected counts for the page, got {other:?}"),
        };

        told(commit(3, python, 1, 10));
        told(commit(4, django, 1, 20));
        assert_eq!(
            heard(&mut page),
            [(
                python,
                Count {
                    subscribers: 1,
                    version: 10
                }
            )]
        );
        assert_eq!(
            heard(&mut page),
            [(
                django,
                Count {
                    subscribers: 1,
                    version: 20
                }
            )]
        );
        // Committed before the first, heard after it.
        told(commit(5, python, 0, 9));
        assert!(page.events.try_recv().is_err(), "an older count is no news");
        assert_eq!(b.live.shared_bumps(), (2, 0), "no page refetched");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_terminated_listener_reconnects_and_catches_up() {
        let place = ScratchDatabase::create();
        let (a, b, alice, python) = two_instances_and_a_member(&place).await;
        let ended = crate::testing::terminate_listeners(&place);
        assert_eq!(ended, 2, "one listener per instance");
        // A change while nobody listens: its notification is lost.
        let missed = crate::subscriptions::subscribe(&a, alice, python)
            .await
            .expect("subscribe");
        let remote = b.remote.clone().expect("listening");
        wait_for("a reconnect", || {
            remote.reconnects.load(Ordering::Relaxed) >= 1
        })
        .await;
        wait_for("the missed change", || b.view_version(alice) == missed).await;
        // And the new connection hears the next one.
        let mut events = b.live.subscribe();
        let version = crate::subscriptions::unsubscribe(&a, alice, python)
            .await
            .expect("unsubscribe");
        heard(&b, &mut events, alice, version).await;
    }

    /// The committing instance patches its cached entries. The other one, which hears the
    /// commit through the database with its counts, patches its catalog (exactly one commit
    /// behind) and drops the user's ids (a user's flags are not announced). Both then serve
    /// what the database holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_committing_instance_patches_and_the_others_patch_the_catalog() {
        let place = ScratchDatabase::create();
        let (a, b, alice, python) = two_instances_and_a_member(&place).await;
        for instance in [&a, &b] {
            crate::topics::list(instance, alice, Default::default())
                .await
                .expect("warm");
            assert!(instance.cache.has_catalog());
        }
        let mut events = b.live.subscribe();
        let version = crate::subscriptions::subscribe(&a, alice, python)
            .await
            .expect("subscribe");
        assert!(a.cache.has_catalog() && a.cache.has_user_topics(alice));
        assert!(a.cache.stats().patches.load(Ordering::Relaxed) >= 2);
        heard(&b, &mut events, alice, version).await;
        assert!(b.cache.has_catalog() && !b.cache.has_user_topics(alice));

        let fresh = Services::new(
            Db::open(place.url()).await.expect("open"),
            std::time::Duration::ZERO,
        );
        let expected = crate::topics::list(&fresh, alice, Default::default())
            .await
            .expect("fresh")
            .topics;
        for instance in [&a, &b] {
            let served = crate::topics::list(instance, alice, Default::default())
                .await
                .expect("list")
                .topics;
            assert_eq!(served, expected);
            assert!(served.iter().any(|t| t.id == python && t.subscribed));
        }
    }
}
