//! The rules of the registry, each on its own.

use std::sync::atomic::Ordering;

use diesel::prelude::*;

use super::*;
use crate::cache::TopicCache;
use crate::db::Conn;
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::live::LiveHub;
use crate::schema::{topic_activities, topics};
use crate::testing::test_db;

/// Post-commit effects on `cache` (and a hub nobody listens to).
fn effects(cache: &TopicCache) -> Effects {
    Effects::new(cache.clone(), LiveHub::default())
}

fn noop(_: &mut Tx<'_>, _: &PostSave, _: &Receiving) -> Result<(), DomainError> {
    Ok(())
}

/// Schedules post-commit work that marks user 42's cache entry as invalidated.
fn schedule_mark(tx: &mut Tx<'_>, _: &PostSave, _: &Receiving) -> Result<(), DomainError> {
    tx.on_commit(|effects, token| effects.invalidate_users(&[UserId(42)], token));
    Ok(())
}

fn fail(_: &mut Tx<'_>, _: &PostSave, _: &Receiving) -> Result<(), DomainError> {
    Err(DomainError::Invalid(
        "The receiver refused this change.".into(),
    ))
}

fn record_activity(
    tx: &mut Tx<'_>,
    signal: &PostSave,
    token: &Receiving,
) -> Result<(), DomainError> {
    crate::activity::record(
        tx.conn(),
        Some(signal.topic.id),
        &signal.topic.name,
        TopicAction::Created,
        token,
    )?;
    Ok(())
}

fn insert_topic(tx: &mut Tx<'_>, name: &str) -> Result<TopicRecord, DomainError> {
    let id: TopicId = diesel::insert_into(topics::table)
        .values(topics::name.eq(name))
        .returning(topics::id)
        .get_result(tx.conn())?;
    Ok(TopicRecord {
        id,
        name: name.to_owned(),
    })
}

/// Inserts a topic named `name` and sends its `post_save(created)`.
fn save_new(tx: &mut Tx<'_>, name: &str) -> Result<(), DomainError> {
    let topic = insert_topic(tx, name)?;
    tx.send(&saved(topic))
}

fn saved(topic: TopicRecord) -> PostSave {
    PostSave {
        topic,
        created: true,
    }
}

/// Signals whose `post_save` schedules a cache invalidation after commit (`connect` may add
/// receivers before it), and the cache that shows whether that work ran.
fn marking(connect: impl FnOnce(&mut Registry)) -> (Signals, TopicCache) {
    let cache = TopicCache::default();
    let mut registry = Registry::default();
    connect(&mut registry);
    registry.post_save.connect("test.mark", schedule_mark);
    (Signals::new(registry, effects(&cache)), cache)
}

fn invalidations(cache: &TopicCache) -> u64 {
    cache.stats().invalidations.load(Ordering::Relaxed)
}

fn count_topics(conn: &mut Conn, name: &str) -> i64 {
    topics::table
        .filter(topics::name.eq(name))
        .count()
        .get_result(conn)
        .unwrap_or(-1)
}

fn count_activities(conn: &mut Conn, name: &str) -> i64 {
    topic_activities::table
        .filter(topic_activities::topic_name.eq(name))
        .count()
        .get_result(conn)
        .unwrap_or(-1)
}

#[test]
fn connecting_the_same_receiver_twice_is_a_no_op() {
    let mut registry = Registry::default();
    registry.post_save.connect("test.noop", noop);
    registry.post_save.connect("test.noop", noop);
    assert_eq!(registry.post_save.len(), 1);
    registry.post_save.connect("test.other", noop);
    assert_eq!(registry.post_save.len(), 2);
}

#[test]
fn ready_connects_every_signal_once() {
    let mut registry = receivers::ready();
    assert_eq!(registry.post_save.len(), 1);
    assert_eq!(registry.pre_delete.len(), 1);
    assert_eq!(registry.post_delete.len(), 1);
    assert_eq!(registry.m2m_changed.len(), 1);
    assert_eq!(
        registry.topic_changed.len(),
        1,
        "the custom signal is connected"
    );
    assert_eq!(registry.user_logged_out.len(), 1);
    assert_eq!(registry.account_changed.len(), 1);
    // Connecting a receiver that is already there (say, ready() running twice) adds nothing.
    registry.post_save.connect("activity.record_save", noop);
    assert_eq!(registry.post_save.len(), 1);
}

#[test]
fn m2m_changes_name_the_affected_users_from_either_side() {
    let from_topic = M2mChanged {
        action: M2mAction::PostAdd,
        side: M2mSide::TopicSubscribers {
            topic: TopicId(7),
            users: vec![UserId(1), UserId(2)],
        },
    };
    assert_eq!(from_topic.affected_users(), vec![UserId(1), UserId(2)]);
    assert_eq!(from_topic.affected_topics(), vec![TopicId(7)]);
    let from_user = M2mChanged {
        action: M2mAction::PostClear,
        side: M2mSide::UserTopics {
            user: UserId(1),
            topics: vec![TopicId(7), TopicId(8)],
        },
    };
    assert_eq!(from_user.affected_users(), vec![UserId(1)]);
    assert_eq!(from_user.affected_topics(), vec![TopicId(7), TopicId(8)]);
}

/// Runs a test body on one pooled connection.
async fn on_one_connection(
    db: &crate::db::Db,
    body: impl FnOnce(&mut Conn) -> Result<(), DomainError> + Send + 'static,
) {
    db.run(body).await.expect("test body");
}

#[tokio::test]
async fn receivers_write_inside_the_transaction_and_commit_with_it() {
    let (_dir, db) = test_db().await;
    let mut registry = Registry::default();
    registry.post_save.connect("test.activity", record_activity);
    let signals = Signals::new(registry, effects(&TopicCache::default()));
    on_one_connection(&db, move |conn| {
        write(conn, &signals, |tx| save_new(tx, "Committed"))?;
        assert_eq!(count_activities(conn, "Committed"), 1);

        let rolled_back = write(conn, &signals, |tx| {
            save_new(tx, "Rolled back")?;
            Err::<(), _>(DomainError::Invalid(
                "the change fails after the signal".into(),
            ))
        });
        assert!(rolled_back.is_err());
        assert_eq!(count_topics(conn, "Rolled back"), 0);
        assert_eq!(
            count_activities(conn, "Rolled back"),
            0,
            "the activity row went too"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn post_commit_work_runs_once_after_commit_and_never_after_rollback() {
    let (_dir, db) = test_db().await;
    let (signals, observed) = marking(|_| {});
    on_one_connection(&db, move |conn| {
        write(conn, &signals, |tx| {
            save_new(tx, "A")?;
            assert_eq!(invalidations(&observed), 0, "not before the commit");
            Ok(())
        })?;
        assert_eq!(invalidations(&observed), 1, "once, after the commit");

        let _ = write(conn, &signals, |tx| {
            save_new(tx, "B")?;
            Err::<(), _>(DomainError::Invalid("roll back".into()))
        });
        assert_eq!(invalidations(&observed), 1, "dropped on rollback");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn nested_savepoints_keep_or_drop_their_post_commit_work() {
    let (_dir, db) = test_db().await;
    let (signals, observed) = marking(|_| {});
    on_one_connection(&db, move |conn| {
        // Inner savepoint fails, outer commits: only the outer work runs.
        write(conn, &signals, |tx| {
            save_new(tx, "Outer")?;
            let inner = tx.atomic(|tx| {
                save_new(tx, "Inner")?;
                Err::<(), _>(DomainError::Invalid("inner fails".into()))
            });
            assert!(inner.is_err());
            Ok(())
        })?;
        assert_eq!(invalidations(&observed), 1);
        assert_eq!(count_topics(conn, "Inner"), 0);
        assert_eq!(count_topics(conn, "Outer"), 1);

        // Inner succeeds: its work waits for the outermost commit, then runs once.
        write(conn, &signals, |tx| {
            tx.atomic(|tx| save_new(tx, "Inner ok"))?;
            assert_eq!(
                invalidations(&observed),
                1,
                "not at the savepoint's release"
            );
            Ok(())
        })?;
        assert_eq!(invalidations(&observed), 2);

        // Inner succeeds but the outer transaction fails: nothing runs.
        let _ = write(conn, &signals, |tx| {
            tx.atomic(|tx| save_new(tx, "Inner lost"))?;
            Err::<(), _>(DomainError::Invalid("outer fails".into()))
        });
        assert_eq!(invalidations(&observed), 2);
        assert_eq!(count_topics(conn, "Inner lost"), 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_receiver_rolls_the_change_back_with_its_error() {
    let (_dir, db) = test_db().await;
    let (signals, observed) = marking(|registry| {
        registry.post_save.connect("test.activity", record_activity);
        registry.post_save.connect("test.mark", schedule_mark);
        registry.post_save.connect("test.fail", fail);
    });
    on_one_connection(&db, move |conn| {
        let result = write(conn, &signals, |tx| save_new(tx, "Refused"));
        assert_eq!(
            result,
            Err(DomainError::Invalid(
                "The receiver refused this change.".into()
            ))
        );
        assert_eq!(count_topics(conn, "Refused"), 0);
        assert_eq!(count_activities(conn, "Refused"), 0);
        assert_eq!(invalidations(&observed), 0);
        Ok(())
    })
    .await;
}
