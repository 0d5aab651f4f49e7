//! The queries on `topic_subscribers` that other modules build on (the receivers, the list,
//! the purge of a retired topic).

use diesel::prelude::*;

use crate::db::Conn;
use crate::ids::{TopicId, UserId};
use crate::schema::topic_subscribers;

/// The topic's subscribers, at most `limit` of them (callers that only need to know
/// "more than N" need not read a hundred thousand ids).
pub fn subscriber_ids(
    conn: &mut Conn,
    topic_id: TopicId,
    limit: usize,
) -> QueryResult<Vec<UserId>> {
    topic_subscribers::table
        .filter(topic_subscribers::topic_id.eq(topic_id))
        .select(topic_subscribers::user_id)
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .load(conn)
}

pub fn topic_ids_of(conn: &mut Conn, user_id: UserId) -> QueryResult<Vec<TopicId>> {
    topic_subscribers::table
        .filter(topic_subscribers::user_id.eq(user_id))
        .select(topic_subscribers::topic_id)
        .order(topic_subscribers::topic_id)
        .load(conn)
}

/// Removes up to `limit` of a retired topic's subscriptions. No signal: like the cascade
/// of a delete, whose subscribers were captured when the topic was retired.
pub fn remove_batch_of_topic(conn: &mut Conn, topic_id: TopicId, limit: i64) -> QueryResult<usize> {
    let batch: Vec<UserId> = topic_subscribers::table
        .filter(topic_subscribers::topic_id.eq(topic_id))
        .select(topic_subscribers::user_id)
        .order(topic_subscribers::user_id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(
        topic_subscribers::table
            .filter(topic_subscribers::topic_id.eq(topic_id))
            .filter(topic_subscribers::user_id.eq_any(&batch)),
    )
    .execute(conn)
}

pub(super) fn is_subscribed(
    conn: &mut Conn,
    user_id: UserId,
    topic_id: TopicId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        topic_subscribers::table
            .filter(topic_subscribers::topic_id.eq(topic_id))
            .filter(topic_subscribers::user_id.eq(user_id)),
    ))
    .get_result(conn)
}
