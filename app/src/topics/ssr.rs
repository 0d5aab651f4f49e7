//! Topics on the server: the validated name, queries, and the domain operations (one
//! transaction each, signals sent from inside it).

use std::collections::BTreeSet;
use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{PageRequest, TopicListing, TopicView, PAGE_SIZE};
use crate::cache::{Catalog, CatalogEntry, Ticket, TopicCache, UserTopics};
use crate::db::{self, Conn, RowLock};
use crate::error::AppError;
use crate::ids::{TopicId, UserId};
use crate::live::ViewVersion;
use crate::names;
use crate::schema::topics;
use crate::services::Services;
use crate::signals::{self, PostDelete, PostSave, PreDelete, Signals, TopicRecord};
use crate::subscriptions;
use crate::users::ssr::User;

pub const NAME_MAX: usize = 100;

/// A topic name: trimmed, 1–100 characters, in NFKC form (`crate::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicName(String);

impl TopicName {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let normalized = names::normalized(raw.trim(), "A topic name")?;
        let name = normalized.trim();
        if name.is_empty() {
            return Err(AppError::Invalid("Please give the topic a name.".into()));
        }
        if name.chars().count() > NAME_MAX {
            return Err(AppError::Invalid(format!(
                "A topic name has at most {NAME_MAX} characters."
            )));
        }
        Ok(TopicName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness among live topics compares.
    pub fn key(&self) -> String {
        names::key(&self.0)
    }
}

/// A unique violation on `topics.name` means the name is taken (in any letter case).
fn name_error(err: diesel::result::Error, name: &TopicName) -> AppError {
    if db::is_unique_violation(&err) {
        AppError::Conflict(format!("A topic named “{}” exists already.", name.as_str()))
    } else {
        AppError::from(err)
    }
}

/// A live topic (a retired one is gone as far as anyone can tell), or 404.
pub(crate) fn find(conn: &mut Conn, topic_id: TopicId) -> Result<TopicRecord, AppError> {
    topics::table
        .find(topic_id)
        .filter(topics::deleted_at.is_null())
        .select((topics::id, topics::name))
        .first::<(TopicId, String)>(conn)
        .optional()?
        .map(|(id, name)| TopicRecord { id, name })
        .ok_or(AppError::NotFound)
}

/// [`find`], holding the topic row for the rest of the change (see [`db::RowLock`]).
pub(crate) fn find_locked(
    conn: &mut Conn,
    topic_id: TopicId,
    lock: RowLock,
) -> Result<TopicRecord, AppError> {
    lock_rows(conn, &[topic_id], lock)?;
    find(conn, topic_id)
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
        RowLock::Change => rows.for_no_key_update().load::<TopicId>(pg)?,
        RowLock::Delete => rows.for_update().load::<TopicId>(pg)?,
    };
    Ok(())
}

/// The subscriber counts of `ids`, as this transaction sees them.
pub(crate) fn subscriber_counts(
    conn: &mut Conn,
    ids: &[TopicId],
) -> QueryResult<Vec<(TopicId, i64)>> {
    topics::table
        .filter(topics::id.eq_any(ids))
        .select((topics::id, topics::subscriber_count))
        .load(conn)
}

fn subscriber_count(conn: &mut Conn, topic_id: TopicId) -> QueryResult<i64> {
    topics::table
        .find(topic_id)
        .select(topics::subscriber_count)
        .first(conn)
}

/// Refuses at once whom the session's copy of the account says is not staff (no write lock
/// taken for them); [`require_staff_now`] then asks the database inside the transaction.
fn require_staff(user: &User) -> Result<(), AppError> {
    if user.is_staff {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// Staff as the database says inside the change's transaction: the copy a session carries
/// may be older than staff being taken away (`server unmake-staff`).
fn require_staff_now(conn: &mut Conn, user: &User) -> Result<(), AppError> {
    if crate::users::ssr::is_staff_now(conn, user.id)? {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// Creates a topic; `post_save(created)` follows in the same transaction.
pub fn create_in(
    conn: &mut Conn,
    signals: &Signals,
    name: &TopicName,
) -> Result<TopicId, AppError> {
    signals::write(conn, signals, |tx| {
        let id: TopicId = diesel::insert_into(topics::table)
            .values((
                topics::name.eq(name.as_str()),
                topics::name_key.eq(name.key()),
            ))
            .returning(topics::id)
            .get_result(tx.conn())
            .map_err(|err| name_error(err, name))?;
        tx.send(&PostSave {
            topic: TopicRecord {
                id,
                name: name.as_str().to_owned(),
            },
            created: true,
        })?;
        Ok(id)
    })
}

/// Renames a topic (staff only); `post_save` follows. The same name again changes nothing.
pub fn rename_in(
    conn: &mut Conn,
    signals: &Signals,
    actor: &User,
    topic_id: TopicId,
    name: &TopicName,
) -> Result<(), AppError> {
    require_staff(actor)?;
    signals::write(conn, signals, |tx| {
        require_staff_now(tx.conn(), actor)?;
        let topic = find_locked(tx.conn(), topic_id, RowLock::Change)?;
        if topic.name == name.as_str() {
            return Ok(());
        }
        diesel::update(topics::table.find(topic_id))
            .set((
                topics::name.eq(name.as_str()),
                topics::name_key.eq(name.key()),
            ))
            .execute(tx.conn())
            .map_err(|err| name_error(err, name))?;
        tx.send(&PostSave {
            topic: TopicRecord {
                id: topic_id,
                name: name.as_str().to_owned(),
            },
            created: false,
        })
    })
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The row and everything that cascades from it are gone.
    Done,
    /// Too many subscriptions to remove within a request: the topic is retired (hidden
    /// everywhere, its name free) and [`purge`] removes the rest after the response.
    Retired,
}

/// Deletes a topic (staff only) with its subscriptions and earlier activity; `pre_delete`
/// and `post_delete` surround the delete. A topic with more than [`purge::BATCH`]
/// subscriptions is retired instead, which looks the same from every page and signal.
pub fn delete_in(
    conn: &mut Conn,
    signals: &Signals,
    actor: &User,
    topic_id: TopicId,
) -> Result<Deletion, AppError> {
    require_staff(actor)?;
    signals::write(conn, signals, |tx| {
        require_staff_now(tx.conn(), actor)?;
        let topic = find_locked(tx.conn(), topic_id, RowLock::Delete)?;
        tx.send(&PreDelete {
            topic: topic.clone(),
        })?;
        let deletion = if subscriber_count(tx.conn(), topic_id)? <= purge::BATCH {
            diesel::delete(topics::table.find(topic_id)).execute(tx.conn())?;
            Deletion::Done
        } else {
            purge::retire(tx.conn(), topic_id)?;
            Deletion::Retired
        };
        tx.send(&PostDelete { topic })?;
        Ok(deletion)
    })
}

#[derive(QueryableByName)]
struct CatalogRow {
    #[diesel(sql_type = BigInt)]
    id: TopicId,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    subscribers: i64,
}

/// Every live topic with its subscriber count (kept on the row by triggers), sorted by name
/// regardless of letter case (index `topics_listed`).
fn load_catalog(conn: &mut Conn) -> QueryResult<Vec<CatalogEntry>> {
    let rows: Vec<CatalogRow> = diesel::sql_query(
        "SELECT t.id, t.name, t.subscriber_count AS subscribers
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
            subscribers: row.subscribers,
        })
        .collect())
}

/// The topic list as `user_id` sees it. A cache hit touches neither the pool nor the
/// database; a miss reads the missing parts in one read transaction and fills the cache
/// unless a change committed since the read began.
pub async fn list(
    services: &Services,
    user_id: UserId,
    request: PageRequest,
) -> Result<TopicListing, AppError> {
    services.catch_up(user_id).await?;
    let lookup = Lookup::new(&services.cache, user_id);
    if let (Some(catalog), Some(mine)) = (&lookup.catalog, &lookup.mine) {
        return Ok(merge(lookup.ticket, catalog, mine, &request));
    }
    let cache = services.cache.clone();
    services
        .db
        .run(move |conn| {
            lookup
                .complete(conn, &cache, || {})
                .map(|(ticket, catalog, mine)| merge(ticket, &catalog, &mine, &request))
        })
        .await
}

/// The first page of [`list`], on an open connection.
pub fn list_in(
    conn: &mut Conn,
    cache: &TopicCache,
    user_id: UserId,
) -> Result<TopicListing, AppError> {
    list_pausing_before_fill(conn, cache, user_id, || {})
}

/// [`list_in`] with a hook between the database read and the cache fill — the dangerous
/// point for stale fills — so tests can pause a reader exactly there.
pub fn list_pausing_before_fill(
    conn: &mut Conn,
    cache: &TopicCache,
    user_id: UserId,
    before_fill: impl FnOnce(),
) -> Result<TopicListing, AppError> {
    let (ticket, catalog, mine) = Lookup::new(cache, user_id).complete(conn, cache, before_fill)?;
    Ok(merge(ticket, &catalog, &mine, &PageRequest::default()))
}

/// What the cache held for a user, looked up after taking the ticket.
struct Lookup {
    ticket: Ticket,
    catalog: Option<Catalog>,
    mine: Option<UserTopics>,
}

impl Lookup {
    fn new(cache: &TopicCache, user_id: UserId) -> Self {
        // The ticket comes first: whatever is read after it is at least as new as it.
        let ticket = cache.ticket(user_id);
        Lookup {
            ticket,
            catalog: cache.catalog(),
            mine: cache.user_topics(user_id),
        }
    }

    /// Reads what the cache lacked and fills it (if still fresh).
    fn complete(
        self,
        conn: &mut Conn,
        cache: &TopicCache,
        before_fill: impl FnOnce(),
    ) -> Result<(Ticket, Catalog, UserTopics), AppError> {
        let Lookup {
            ticket,
            catalog: cached_catalog,
            mine: cached_mine,
        } = self;
        if let (Some(catalog), Some(mine)) = (&cached_catalog, &cached_mine) {
            return Ok((ticket, catalog.clone(), mine.clone()));
        }
        let (catalog, mine) = db::snapshot_transaction(conn, |conn| {
            let catalog: Catalog = match &cached_catalog {
                Some(catalog) => catalog.clone(),
                None => Arc::new(load_catalog(conn)?),
            };
            let mine: UserTopics = match &cached_mine {
                Some(mine) => mine.clone(),
                None => Arc::new(
                    subscriptions::ssr::topic_ids_of(conn, ticket.user_id())?
                        .into_iter()
                        .collect::<BTreeSet<TopicId>>(),
                ),
            };
            Ok::<_, diesel::result::Error>((catalog, mine))
        })?;
        before_fill();
        if cached_catalog.is_none() {
            cache.fill_catalog(&ticket, catalog.clone());
        }
        if cached_mine.is_none() {
            cache.fill_user_topics(&ticket, mine.clone());
        }
        Ok((ticket, catalog, mine))
    }
}

/// One page of the user's view: the catalog filtered and sliced first, so a page of a large
/// catalog costs its own rows only.
fn merge(
    ticket: Ticket,
    catalog: &Catalog,
    mine: &UserTopics,
    request: &PageRequest,
) -> TopicListing {
    let needle = request.query.trim().to_lowercase();
    let matching: Vec<&CatalogEntry> = if needle.is_empty() {
        catalog.iter().collect()
    } else {
        catalog
            .iter()
            .filter(|topic| topic.name.to_lowercase().contains(&needle))
            .collect()
    };
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = request.page.clamp(1, pages);
    TopicListing {
        version: ticket.into(),
        topics: matching
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|topic| TopicView {
                id: topic.id,
                name: topic.name.to_string(),
                subscribers: topic.subscribers,
                subscribed: mine.contains(&topic.id),
            })
            .collect(),
        page,
        pages,
        total,
        query: request.query.trim().to_owned(),
    }
}

/// Creates a topic named `raw_name` (trimmed); returns the creator's new view version.
pub async fn create(
    services: &Services,
    actor: &User,
    raw_name: &str,
) -> Result<ViewVersion, AppError> {
    let name = TopicName::parse(raw_name)?;
    services
        .mutate(actor.id, move |conn, signals| {
            create_in(conn, signals, &name).map(|_| ())
        })
        .await
}

pub async fn rename(
    services: &Services,
    actor: &User,
    topic_id: TopicId,
    raw_name: &str,
) -> Result<ViewVersion, AppError> {
    let name = TopicName::parse(raw_name)?;
    let actor_row = actor.clone();
    services
        .mutate(actor.id, move |conn, signals| {
            rename_in(conn, signals, &actor_row, topic_id, &name)
        })
        .await
}

pub async fn delete(
    services: &Services,
    actor: &User,
    topic_id: TopicId,
) -> Result<ViewVersion, AppError> {
    let actor_row = actor.clone();
    let (deletion, version) = services
        .mutate_returning(actor.id, move |conn, signals| {
            delete_in(conn, signals, &actor_row, topic_id)
        })
        .await?;
    if deletion == Deletion::Retired {
        services.purge.wake();
    }
    Ok(version)
}

pub mod purge;
#[cfg(test)]
mod tests;
