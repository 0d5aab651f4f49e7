//! Changing topics: create, rename and delete (staff only for the last two), one
//! transaction each with its signals sent from inside it.

use diesel::prelude::*;

use crate::db::{Conn, RowLock};
use crate::error::DomainError;
use crate::ids::TopicId;
use crate::live::ViewVersion;
use crate::schema::topics;
use crate::services::Services;
use crate::signals;
use crate::signals::{PostDelete, PostSave, PreDelete, Signals, TopicRecord};
use crate::users::account::User;

use super::name::{name_error, TopicName};
use super::purge;
use super::queries::{find_locked, subscriber_count};

/// Refuses at once whom the session's copy of the account says is not staff (no write lock
/// taken for them); [`require_staff_now`] then asks the database inside the transaction.
fn require_staff(user: &User) -> Result<(), DomainError> {
    if user.is_staff {
        Ok(())
    } else {
        Err(DomainError::Forbidden)
    }
}

/// Staff as the database says inside the change's transaction: the copy a session carries
/// may be older than staff being taken away (`server unmake-staff`).
fn require_staff_now(conn: &mut Conn, user: &User) -> Result<(), DomainError> {
    if crate::users::is_staff_now(conn, user.id)? {
        Ok(())
    } else {
        Err(DomainError::Forbidden)
    }
}

/// Creates a topic; `post_save(created)` follows in the same transaction.
pub fn create_in(
    conn: &mut Conn,
    signals: &Signals,
    name: &TopicName,
) -> Result<TopicId, DomainError> {
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
) -> Result<(), DomainError> {
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
) -> Result<Deletion, DomainError> {
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

/// Creates a topic named `raw_name` (trimmed); returns the creator's new view version.
pub async fn create(
    services: &Services,
    actor: &User,
    raw_name: &str,
) -> Result<ViewVersion, DomainError> {
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
) -> Result<ViewVersion, DomainError> {
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
) -> Result<ViewVersion, DomainError> {
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
