//! The three ways to change subscriptions (subscribe, unsubscribe, unsubscribe from all),
//! each one transaction with its signal.

use diesel::prelude::*;

use crate::db::{Conn, RowLock};
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::live::ViewVersion;
use crate::schema::topic_subscribers;
use crate::services::Services;
use crate::signals::{self, M2mAction, M2mChanged, M2mSide, Signals, Tx};
use crate::topics::queries::{find_locked, lock_rows};
use crate::users::account::lock_for_change;

use super::queries::{is_subscribed, topic_ids_of};

fn change(action: M2mAction, topic_id: TopicId, user_id: UserId) -> M2mChanged {
    M2mChanged {
        action,
        side: M2mSide::TopicSubscribers {
            topic: topic_id,
            users: vec![user_id],
        },
    }
}

/// `topic.subscribers.add(user)`. Subscribing twice changes nothing and sends nothing.
pub fn subscribe_in(
    conn: &mut Conn,
    signals: &Signals,
    user_id: UserId,
    topic_id: TopicId,
) -> Result<(), DomainError> {
    set_subscribed(conn, signals, user_id, topic_id, true)
}

/// `topic.subscribers.add(user)` (`subscribed`) or `topic.subscribers.remove(user)`, with its
/// `pre_`/`post_` signals around the row's insert or delete. Subscribing twice, or removing
/// what is not there, changes nothing and sends nothing.
fn set_subscribed(
    conn: &mut Conn,
    signals: &Signals,
    user_id: UserId,
    topic_id: TopicId,
    subscribed: bool,
) -> Result<(), DomainError> {
    let (pre, post) = if subscribed {
        (M2mAction::PreAdd, M2mAction::PostAdd)
    } else {
        (M2mAction::PreRemove, M2mAction::PostRemove)
    };
    signals::write(conn, signals, |tx| {
        lock_for_change(tx.conn(), user_id)?;
        find_locked(tx.conn(), topic_id, RowLock::Reference)?;
        if is_subscribed(tx.conn(), user_id, topic_id)? == subscribed {
            return Ok(());
        }
        tx.send(&change(pre, topic_id, user_id))?;
        if subscribed {
            diesel::insert_into(topic_subscribers::table)
                .values((
                    topic_subscribers::topic_id.eq(topic_id),
                    topic_subscribers::user_id.eq(user_id),
                ))
                .execute(tx.conn())?;
        } else {
            let row = topic_subscribers::table
                .filter(topic_subscribers::topic_id.eq(topic_id))
                .filter(topic_subscribers::user_id.eq(user_id));
            diesel::delete(row).execute(tx.conn())?;
        }
        tx.send(&change(post, topic_id, user_id))
    })
}

/// `user.topics.clear()`. The topic ids are read first: `post_clear` carries the ids
/// captured at `pre_clear`, since afterwards nobody knows them.
pub fn unsubscribe_all_in(
    conn: &mut Conn,
    signals: &Signals,
    user_id: UserId,
) -> Result<(), DomainError> {
    signals::write(conn, signals, |tx| {
        lock_for_change(tx.conn(), user_id)?;
        clear_in(tx, user_id)
    })
}

/// The body of `user.topics.clear()`, inside a transaction that holds the user's row
/// (`crate::users::account::lock_for_change`): also how a deleted account leaves its topics.
pub(crate) fn clear_in(tx: &mut Tx<'_>, user_id: UserId) -> Result<(), DomainError> {
    let topic_ids = topic_ids_of(tx.conn(), user_id)?;
    if topic_ids.is_empty() {
        return Ok(());
    }
    // The counts of all these topics change: their rows are taken in order now, not
    // in whatever order the count trigger would meet them.
    lock_rows(tx.conn(), &topic_ids, RowLock::Change)?;
    let clear = |action| M2mChanged {
        action,
        side: M2mSide::UserTopics {
            user: user_id,
            topics: topic_ids.clone(),
        },
    };
    tx.send(&clear(M2mAction::PreClear))?;
    diesel::delete(topic_subscribers::table.filter(topic_subscribers::user_id.eq(user_id)))
        .execute(tx.conn())?;
    tx.send(&clear(M2mAction::PostClear))
}

/// A change of one subscription, as one mutation.
async fn change_one(
    services: &Services,
    user_id: UserId,
    topic_id: TopicId,
    subscribed: bool,
) -> Changed {
    services
        .mutate(user_id, move |conn, signals| {
            set_subscribed(conn, signals, user_id, topic_id, subscribed)
        })
        .await
}

/// What a change of subscriptions answers: the acting user's new view version.
pub type Changed = Result<ViewVersion, DomainError>;

pub async fn subscribe(services: &Services, user_id: UserId, topic_id: TopicId) -> Changed {
    change_one(services, user_id, topic_id, true).await
}

pub async fn unsubscribe(services: &Services, user_id: UserId, topic_id: TopicId) -> Changed {
    change_one(services, user_id, topic_id, false).await
}

pub async fn unsubscribe_all(services: &Services, user_id: UserId) -> Changed {
    services
        .mutate(user_id, move |conn, signals| {
            unsubscribe_all_in(conn, signals, user_id)
        })
        .await
}
