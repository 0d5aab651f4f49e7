//! The activity rows: written only by signal receivers (they alone hold the token `record`
//! takes), read newest first by the feed.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::feed::{ActivityPageData, ActivityView, MAX_PAGE, PAGE_SIZE};
use crate::db::{Conn, Db, DbError};
use crate::error::DomainError;
use crate::ids::TopicId;
use crate::schema::topic_activities;
use crate::signals::{Receiving, TopicAction};

/// Writes one activity row. Only receivers hold the token this takes.
pub fn record(
    conn: &mut Conn,
    topic_id: Option<TopicId>,
    topic_name: &str,
    action: TopicAction,
    _: &Receiving,
) -> QueryResult<()> {
    diesel::insert_into(topic_activities::table)
        .values((
            topic_activities::topic_id.eq(topic_id),
            topic_activities::topic_name.eq(topic_name),
            topic_activities::action.eq(action.as_str()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes a topic's activity (not the tombstone of its deletion, which has no
/// `topic_id`): what `ON DELETE CASCADE` does, for a topic whose row is kept a while
/// after its deletion (see `topics::purge`).
pub fn forget_topic(conn: &mut Conn, topic_id: TopicId) -> QueryResult<usize> {
    diesel::delete(topic_activities::table.filter(topic_activities::topic_id.eq(topic_id)))
        .execute(conn)
}

/// One page of the feed, newest first.
pub fn page(conn: &mut Conn, page: i64) -> QueryResult<ActivityPageData> {
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let mut rows: Vec<(i64, Option<TopicId>, String, String, NaiveDateTime)> =
        topic_activities::table
            .select((
                topic_activities::id,
                topic_activities::topic_id,
                topic_activities::topic_name,
                topic_activities::action,
                topic_activities::created_at,
            ))
            .order((
                topic_activities::created_at.desc(),
                topic_activities::id.desc(),
            ))
            .limit(PAGE_SIZE + 1)
            .offset(offset)
            .load(conn)?;
    let has_next = rows.len() as i64 > PAGE_SIZE && page < MAX_PAGE;
    rows.truncate(PAGE_SIZE as usize);
    Ok(ActivityPageData {
        items: rows
            .into_iter()
            .map(
                |(id, topic_id, topic_name, action, created_at)| ActivityView {
                    id,
                    topic_id,
                    topic_name,
                    action,
                    created_at: created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                },
            )
            .collect(),
        page,
        has_next,
    })
}

/// Page `page` (from 1) of the feed; further back than [`MAX_PAGE`] is refused.
pub async fn feed(db: &Db, page: i64) -> Result<ActivityPageData, DomainError> {
    let page = page.max(1);
    if page > MAX_PAGE {
        return Err(DomainError::Invalid(format!(
            "The feed goes back {MAX_PAGE} pages (the newest {} entries).",
            MAX_PAGE * PAGE_SIZE
        )));
    }
    db.run(move |conn| self::page(conn, page).map_err(DbError::from))
        .await
        .map_err(DomainError::from)
}
