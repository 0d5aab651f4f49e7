//! Large catalogs and topics with very many subscribers.

use super::*;

#[tokio::test]
async fn large_catalogs_come_in_pages_and_filter_by_name() {
    let w = world().await;
    w.seed_small().await;
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
    w.seed_small().await;
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
    for row in &w.counts_as_stored_and_counted().await {
        assert_eq!(row.actual, 0, "{}", row.name);
    }
}
