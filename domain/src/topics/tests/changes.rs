//! Each change and what it leaves: activity rows, cache entries, what every user sees.

use super::*;

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
async fn every_change_of_a_count_moves_its_version_and_no_other() {
    let w = world().await;
    let python = w.topic_id("Python").await;
    let django = w.topic_id("Django").await;
    let alice = w.alice.id;
    let bob = w.bob.id;
    // A topic's stored count and its count's version.
    let world = &w;
    let read = |topic: TopicId| async move {
        world
            .with_conn(move |conn, _| {
                Ok(topics::table
                    .find(topic)
                    .select((topics::subscriber_count, topics::count_version))
                    .first::<(i64, i64)>(conn)?)
            })
            .await
            .expect("read the count")
    };
    let (python_count, python_version) = read(python).await;
    let django_before = read(django).await;

    w.with_conn(move |conn, signals| {
        subscribe_in(conn, signals, alice, python)?;
        subscribe_in(conn, signals, bob, python)
    })
    .await
    .expect("subscribe");
    assert_eq!(
        read(python).await,
        (python_count + 2, python_version + 2),
        "one step per change of the count"
    );
    assert_eq!(read(django).await, django_before, "untouched");

    w.with_conn(move |conn, signals| unsubscribe_all_in(conn, signals, alice))
        .await
        .expect("clear");
    assert_eq!(
        read(python).await,
        (python_count + 1, python_version + 3),
        "a count going back down still moves its version on"
    );
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
