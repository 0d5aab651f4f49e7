//! Writers and readers at once: no stale fill, no stale view.

use super::*;

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

/// A change no page can patch drops the catalog, and every open page refetches at once: those
/// requests share one read of the catalog instead of one each, and each sees the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_missing_the_catalog_together_share_one_read_of_it() {
    let w = Arc::new(world().await);
    let users = [w.alice.clone(), w.bob.clone(), w.staff.clone()];
    for user in &users {
        list(&w.services, user.id, PageRequest::default())
            .await
            .expect("warm");
    }
    create(&w.services, &w.alice, "Zig").await.expect("create");
    assert!(
        !w.services.cache.has_catalog(),
        "a create drops the catalog"
    );
    let before = w.services.catalog_reads.reads();

    let mut pages = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (world, user_id) = (w.clone(), users[n % users.len()].id);
        pages.spawn(async move {
            list(
                &world.services,
                user_id,
                PageRequest::from_query(None, Some("zig".into())),
            )
            .await
            .expect("list")
        });
    }
    while let Some(page) = pages.join_next().await {
        let page = page.expect("task");
        assert!(
            page.topics.iter().any(|topic| topic.name == "Zig"),
            "every page sees the new topic"
        );
    }
    assert_eq!(
        w.services.catalog_reads.reads() - before,
        1,
        "64 pages, one read of the catalog"
    );
}
