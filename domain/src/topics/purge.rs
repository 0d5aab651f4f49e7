//! Retired topics and their purge.
//!
//! Deleting a topic removes its subscriptions. For a topic with 100,000 subscribers that is
//! 100,000 rows and their index entries (a third of a second on SQLite), too long to hold a
//! request and the single write lock. Such a topic is *retired* instead, inside the delete's
//! transaction: `deleted_at` hides it from every query, its name is free again, its earlier
//! activity goes and the signals run as for any delete. After the response, [`run`] removes
//! its subscriptions [`BATCH`] at a time, one short write transaction each, then the row.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use tokio::sync::Notify;

use crate::activity;
use crate::db::{self, Conn, Db, DbError};
use crate::ids::TopicId;
use crate::schema::{topic_subscribers, topics};
use crate::subscriptions::queries::remove_batch_of_topic;

/// Subscriptions removed per write transaction (~10 ms on SQLite), and the most a request
/// deletes itself.
pub const BATCH: i64 = 2_000;

/// Between batches the write lock is free for requests that wait for it.
const PAUSE: Duration = Duration::from_millis(5);
/// After a failed batch (the database busy for longer than its timeout, say).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Wakes the purge after a topic was retired, and says how much it has left.
#[derive(Clone, Default)]
pub struct PurgeQueue(Arc<Queue>);

#[derive(Default)]
struct Queue {
    wake: Notify,
    /// Retired topics and their subscriptions left when this instance's purge last looked
    /// (counted when a purge starts, lowered with each batch): read by the metrics without a
    /// query of their own.
    topics_left: AtomicI64,
    subscriptions_left: AtomicI64,
}

impl PurgeQueue {
    pub fn wake(&self) {
        // A wake while the purge is busy is kept, so a topic retired meanwhile is not missed.
        self.0.wake.notify_one();
    }

    /// Retired topics and their subscriptions not purged yet, as the purge last saw them.
    pub fn backlog(&self) -> (i64, i64) {
        (
            self.0.topics_left.load(Ordering::Relaxed),
            self.0.subscriptions_left.load(Ordering::Relaxed),
        )
    }

    fn set_backlog(&self, (topics, subscriptions): (i64, i64)) {
        self.0.topics_left.store(topics, Ordering::Relaxed);
        self.0
            .subscriptions_left
            .store(subscriptions, Ordering::Relaxed);
    }

    fn purged(&self, purged: &Purged) {
        let removed = i64::try_from(purged.subscriptions).unwrap_or(i64::MAX);
        let left = &self.0.subscriptions_left;
        let _ = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some((n - removed).max(0))
        });
        if purged.finished {
            let topics = &self.0.topics_left;
            let _ = topics.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n - 1).max(0))
            });
        }
    }
}

/// Hides the topic and removes what a delete would have removed at once apart from the
/// subscriptions: its earlier activity, which `ON DELETE CASCADE` would take with the row.
pub(super) fn retire(conn: &mut Conn, topic_id: TopicId) -> QueryResult<()> {
    diesel::update(topics::table.find(topic_id))
        .set(topics::deleted_at.eq(diesel::dsl::now.nullable()))
        .execute(conn)?;
    activity::forget_topic(conn, topic_id)?;
    Ok(())
}

/// What one [`purge_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub topic_id: TopicId,
    pub subscriptions: usize,
    /// The topic row went too: nothing of it is left.
    pub finished: bool,
}

/// Retired topics whose subscriptions are not purged yet, and those subscriptions.
fn backlog(conn: &mut Conn) -> QueryResult<(i64, i64)> {
    let retired = topics::table.filter(topics::deleted_at.is_not_null());
    let topics_left: i64 = retired.count().get_result(conn)?;
    if topics_left == 0 {
        return Ok((0, 0));
    }
    let subscriptions_left: i64 = topic_subscribers::table
        .filter(topic_subscribers::topic_id.eq_any(retired.select(topics::id)))
        .count()
        .get_result(conn)?;
    Ok((topics_left, subscriptions_left))
}

/// Removes one batch of the oldest retired topic's subscriptions, and the row once none are
/// left, in one write transaction. `None` when no topic is retired.
pub fn purge_batch(conn: &mut Conn) -> QueryResult<Option<Purged>> {
    db::write_transaction(conn, |conn| {
        let Some(topic_id) = oldest_retired(conn)? else {
            return Ok(None);
        };
        let removed = remove_batch_of_topic(conn, topic_id, BATCH)?;
        let finished = i64::try_from(removed).unwrap_or(i64::MAX) < BATCH;
        if finished {
            diesel::delete(topics::table.find(topic_id)).execute(conn)?;
        }
        Ok(Some(Purged {
            topic_id,
            subscriptions: removed,
            finished,
        }))
    })
}

/// The retired topic to purge next, held until the transaction ends. On PostgreSQL a topic
/// another purge holds (another instance's) is skipped rather than waited for, so that each
/// batch is removed once and a purge cut short (its instance killed) is taken over.
fn oldest_retired(conn: &mut Conn) -> QueryResult<Option<TopicId>> {
    let retired = topics::table
        .filter(topics::deleted_at.is_not_null())
        .select(topics::id)
        .order(topics::id);
    match conn {
        Conn::Sqlite(sqlite) => retired.first(sqlite).optional(),
        Conn::Pg(pg) => retired.for_update().skip_locked().first(pg).optional(),
    }
}

/// Whether any topic is still retired, held or not: after [`purge_batch`] found none it
/// could take, one may be held by a change in progress (a subscription change on it waits
/// for its row lock) or by another instance's purge batch.
fn retired_remain(conn: &mut Conn) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        topics::table.filter(topics::deleted_at.is_not_null()),
    ))
    .get_result(conn)
}

/// Purges every retired topic now; returns how many were finished.
pub fn purge_all(conn: &mut Conn) -> QueryResult<usize> {
    let mut finished = 0;
    loop {
        match purge_batch(conn)? {
            Some(purged) => finished += usize::from(purged.finished),
            None if retired_remain(conn)? => std::thread::sleep(HELD_ELSEWHERE),
            None => return Ok(finished),
        }
    }
}

/// How long to wait before trying again for a retired topic another transaction holds.
const HELD_ELSEWHERE: Duration = Duration::from_millis(50);
/// With several instances (PostgreSQL), how often each looks for retired topics no purge is
/// working on: one whose instance was killed mid-purge is finished by another.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// The background purge: whatever an earlier run left retired first, then each topic
/// retired from now on, until the task is dropped.
pub async fn run(db: Db, queue: PurgeQueue) {
    let shared = db.backend() == db::Backend::Postgres;
    loop {
        drain(&db, &queue).await;
        if shared {
            let _ = tokio::time::timeout(LOOK_AGAIN, queue.0.wake.notified()).await;
        } else {
            queue.0.wake.notified().await;
        }
    }
}

async fn drain(db: &Db, queue: &PurgeQueue) {
    let mut started = Instant::now();
    let mut removed = 0;
    let mut counted = false;
    loop {
        let batch = db
            .run(move |conn| {
                let purged = purge_batch(conn)?;
                // What is left, counted after the first batch of a drain (an idle purge runs
                // no extra query); later batches lower the count as they go.
                let left = match (&purged, counted) {
                    (Some(_), false) => Some(backlog(conn)?),
                    _ => None,
                };
                let held = purged.is_none() && retired_remain(conn)?;
                Ok::<_, DbError>((purged, left, held))
            })
            .await;
        match batch {
            Ok((None, _, false)) => {
                queue.set_backlog((0, 0));
                return;
            }
            Ok((None, _, true)) => tokio::time::sleep(HELD_ELSEWHERE).await,
            Ok((Some(purged), left, _)) => {
                match left {
                    Some(left) => {
                        queue.set_backlog(left);
                        counted = true;
                    }
                    None => queue.purged(&purged),
                }
                removed += purged.subscriptions;
                if purged.finished {
                    tracing::info!(
                        topic_id = purged.topic_id.0,
                        subscriptions = removed,
                        elapsed_ms = started.elapsed().as_millis(),
                        "retired topic purged"
                    );
                    started = Instant::now();
                    removed = 0;
                }
                tokio::time::sleep(PAUSE).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "purging a retired topic failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PurgeQueue, Purged};
    use crate::ids::TopicId;

    #[test]
    fn the_backlog_goes_down_with_each_batch_and_never_below_zero() {
        let queue = PurgeQueue::default();
        assert_eq!(queue.backlog(), (0, 0));
        queue.set_backlog((2, 4_500));
        let batch = |subscriptions, finished| Purged {
            topic_id: TopicId(1),
            subscriptions,
            finished,
        };
        queue.purged(&batch(2_000, false));
        assert_eq!(queue.backlog(), (2, 2_500));
        queue.purged(&batch(500, true));
        assert_eq!(queue.backlog(), (1, 2_000));
        // Another instance purged part of it meanwhile: this one's count never goes negative.
        queue.purged(&batch(2_000, false));
        queue.purged(&batch(1_000, true));
        queue.purged(&batch(0, true));
        assert_eq!(queue.backlog(), (0, 0));
    }
}
