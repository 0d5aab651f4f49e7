//! Deleting a topic with more subscribers than one batch: retired at once, purged after.

use super::*;

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

/// Bob creates "Snake" again: the retired topic's name is free at once.
async fn create_snake_again(w: &World) {
    create(&w.services, &w.bob, "Snake")
        .await
        .expect("name free again");
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
    create_snake_again(&w).await;
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
    create_snake_again(&w).await;
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
    let counts = w.counts_as_stored_and_counted().await;
    assert!(counts
        .iter()
        .any(|row| row.name == "Django" && row.actual == 2));
}
