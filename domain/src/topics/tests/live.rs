//! What open pages are told: counts and flags, in commit order.

use super::*;

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
    // On PostgreSQL the instance also hears its own commits through the database, before or
    // after its own telling (as bumps that say nothing, or with the counts again when heard
    // once every shard here is what the commit saw): one entry per version, the telling one.
    type Told = ((Option<UserId>, u64), Option<Vec<(TopicId, i64)>>);
    let mut told: Vec<Told> = Vec::new();
    for event in published(&mut events) {
        let (key, moved) = match event {
            LiveEvent::Shared { version, counts } => (
                (None, version),
                counts.map(|c| c.iter().map(|&(t, n)| (t, n.subscribers)).collect()),
            ),
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

    // What the subscriptions moved, told already; a late echo of them through the database
    // is no news for pages (the hub sends nothing for a version it told).
    let subscribed = w.services.cache.shared_version();
    rename(&w.services, &w.staff, python, "Python 3")
        .await
        .expect("rename");
    let renamed: Vec<_> = published(&mut events)
        .into_iter()
        .filter(
            |event| !matches!(event, LiveEvent::Shared { version, .. } if *version <= subscribed),
        )
        .collect();
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
        // PostgreSQL's versions come from the database and may reach the hub out of order
        // (the counts' own versions place them, `live::pages`).
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
                shown = Some(count.subscribers);
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
