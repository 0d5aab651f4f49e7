//! The queries on `topics` that other modules build on: finding and locking live topics,
//! their subscriber counts, and the catalog every page is cut from.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::cache::CatalogEntry;
use crate::db::{Conn, RowLock};
use crate::error::DomainError;
use crate::ids::TopicId;
use crate::live::Count;
use crate::schema::topics;
use crate::signals::TopicRecord;

/// A live topic (a retired one is gone as far as anyone can tell), or 404.
pub(crate) fn find(conn: &mut Conn, topic_id: TopicId) -> Result<TopicRecord, DomainError> {
    topics::table
        .find(topic_id)
        .filter(topics::deleted_at.is_null())
        .select((topics::id, topics::name))
        .first::<(TopicId, String)>(conn)
        .optional()?
        .map(|(id, name)| TopicRecord { id, name })
        .ok_or(DomainError::NotFound)
}

/// [`find`], holding the topic row for the rest of the change (see [`db::RowLock`]).
///
/// On PostgreSQL one statement finds and locks: every statement between the lock and the
/// commit lengthens the time the changes of one topic wait for each other. A topic retired
/// while this waited for its row is re-read after the wait (READ COMMITTED) and not found.
pub(crate) fn find_locked(
    conn: &mut Conn,
    topic_id: TopicId,
    lock: RowLock,
) -> Result<TopicRecord, DomainError> {
    let Conn::Pg(pg) = conn else {
        return find(conn, topic_id);
    };
    let live = topics::table
        .find(topic_id)
        .filter(topics::deleted_at.is_null())
        .select((topics::id, topics::name));
    let found = match lock {
        RowLock::Reference => live.for_key_share().first::<(TopicId, String)>(pg),
        RowLock::Change => live.for_no_key_update().first::<(TopicId, String)>(pg),
        RowLock::Delete => live.for_update().first::<(TopicId, String)>(pg),
    };
    found
        .optional()?
        .map(|(id, name)| TopicRecord { id, name })
        .ok_or(DomainError::NotFound)
}

/// Holds topic rows, live or retired, until the transaction ends: on PostgreSQL, so that
/// changes to a topic and its subscriptions follow one another as on SQLite, whose write
/// transaction holds the database's one write lock (and where this does nothing).
pub(crate) fn lock_rows(conn: &mut Conn, ids: &[TopicId], lock: RowLock) -> QueryResult<()> {
    let Conn::Pg(pg) = conn else {
        return Ok(());
    };
    let rows = topics::table
        .filter(topics::id.eq_any(ids))
        .select(topics::id)
        .order(topics::id);
    match lock {
        RowLock::Reference => rows.for_key_share().load::<TopicId>(pg)?,
        RowLock::Change => rows.for_no_key_update().load::<TopicId>(pg)?,
        RowLock::Delete => rows.for_update().load::<TopicId>(pg)?,
    };
    Ok(())
}

/// The subscriber counts of `ids` with their versions, as this transaction sees them.
pub(crate) fn subscriber_counts(
    conn: &mut Conn,
    ids: &[TopicId],
) -> QueryResult<Vec<(TopicId, Count)>> {
    let rows: Vec<(TopicId, i64, i64)> = topics::table
        .filter(topics::id.eq_any(ids))
        .select((topics::id, topics::subscriber_count, topics::count_version))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, subscribers, version)| {
            (
                id,
                Count {
                    subscribers,
                    version,
                },
            )
        })
        .collect())
}

pub(super) fn subscriber_count(conn: &mut Conn, topic_id: TopicId) -> QueryResult<i64> {
    topics::table
        .find(topic_id)
        .select(topics::subscriber_count)
        .first(conn)
}

#[derive(QueryableByName)]
struct CatalogRow {
    #[diesel(sql_type = BigInt)]
    id: TopicId,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    subscribers: i64,
    #[diesel(sql_type = BigInt)]
    count_version: i64,
}

/// Every live topic with its subscriber count (kept on the row by triggers), sorted by name
/// regardless of letter case (index `topics_listed`).
pub(super) fn load_catalog(conn: &mut Conn) -> QueryResult<Vec<CatalogEntry>> {
    let rows: Vec<CatalogRow> = diesel::sql_query(
        "SELECT t.id, t.name, t.subscriber_count AS subscribers, t.count_version
         FROM topics t
         WHERE t.deleted_at IS NULL
         ORDER BY lower(t.name), t.id",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| CatalogEntry {
            id: row.id,
            name: row.name.into(),
            count: Count {
                subscribers: row.subscribers,
                version: row.count_version,
            },
        })
        .collect())
}
