//! Topic queries.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use super::TopicView;
use crate::db::Conn;

#[derive(QueryableByName)]
struct TopicRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    subscribers: i64,
    #[diesel(sql_type = Bool)]
    subscribed: bool,
}

/// Every topic, sorted by name regardless of letter case, with its subscriber count and
/// whether `user_id` is among the subscribers. One statement.
pub fn list_for_user(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<TopicView>> {
    let rows: Vec<TopicRow> = diesel::sql_query(
        "SELECT t.id, t.name,
                (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = t.id) AS subscribers,
                EXISTS (SELECT 1 FROM topic_subscribers s
                        WHERE s.topic_id = t.id AND s.user_id = ?) AS subscribed
         FROM topics t
         ORDER BY lower(t.name), t.id",
    )
    .bind::<BigInt, _>(user_id)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| TopicView {
            id: row.id,
            name: row.name,
            subscribers: row.subscribers,
            subscribed: row.subscribed,
        })
        .collect())
}
