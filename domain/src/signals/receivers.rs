//! The receivers, and `ready()`: the one place where they are connected, once, at start-up.

use tracing::info;

use super::token::Receiving;
use super::{
    AccountChanged, M2mAction, M2mChanged, PostDelete, PostSave, PreDelete, Registry, TopicAction,
    TopicChanged, Tx, UserLoggedOut,
};
use crate::activity;
use crate::cache::MANY_USERS;
use crate::error::DomainError;
use crate::ids::{TopicId, UserId};
use crate::subscriptions::queries::subscriber_ids;
use crate::topics::queries::subscriber_counts;
use crate::users::change_log::record_change;

/// Builds the registry with every receiver of the product connected. Called once when the
/// application starts; calling `connect` again with the same uid changes nothing.
pub fn ready() -> Registry {
    let mut registry = Registry::default();
    registry
        .post_save
        .connect("activity.record_save", record_save);
    registry
        .pre_delete
        .connect("cache.capture_subscribers", capture_subscribers);
    registry
        .post_delete
        .connect("activity.record_delete", record_delete);
    registry
        .m2m_changed
        .connect("cache.subscriptions_changed", subscriptions_changed);
    // The custom signal, connected explicitly.
    registry
        .topic_changed
        .connect("topics.topic_changed", topic_changed);
    registry
        .user_logged_out
        .connect("cache.user_logged_out", user_logged_out);
    registry
        .account_changed
        .connect("users.account_changed", account_changed);
    registry
}

/// `post_save`: a new topic gets a `created` activity, any other save an `updated` one.
fn record_save(tx: &mut Tx<'_>, signal: &PostSave, token: &Receiving) -> Result<(), DomainError> {
    let action = if signal.created {
        TopicAction::Created
    } else {
        TopicAction::Updated
    };
    activity::record(
        tx.conn(),
        Some(signal.topic.id),
        &signal.topic.name,
        action,
        token,
    )?;
    tx.send(&TopicChanged {
        topic_id: signal.topic.id,
        action,
    })
}

/// `pre_delete`: the delete will remove the subscriptions without any m2m signal, so the
/// subscribers are read now, for `topic_changed` to invalidate later.
fn capture_subscribers(
    tx: &mut Tx<'_>,
    signal: &PreDelete,
    _token: &Receiving,
) -> Result<(), DomainError> {
    let subscribers = affected_subscribers(tx, signal.topic.id)?;
    tx.capture_subscribers(signal.topic.id, subscribers);
    Ok(())
}

/// The subscribers whose lists a topic change touches. Past `MANY_USERS` the cache bumps
/// one epoch for everyone, so reading more ids than that would be wasted work.
fn affected_subscribers(tx: &mut Tx<'_>, topic_id: TopicId) -> Result<Vec<UserId>, DomainError> {
    Ok(subscriber_ids(tx.conn(), topic_id, MANY_USERS + 1)?)
}

/// `post_delete`: a tombstone (`topic_id` NULL, name kept) in the same transaction.
fn record_delete(
    tx: &mut Tx<'_>,
    signal: &PostDelete,
    token: &Receiving,
) -> Result<(), DomainError> {
    activity::record(
        tx.conn(),
        None,
        &signal.topic.name,
        TopicAction::Deleted,
        token,
    )?;
    tx.send(&TopicChanged {
        topic_id: signal.topic.id,
        action: TopicAction::Deleted,
    })
}

/// `topic_changed`: after commit, log it and drop the cached lists of the topic's
/// subscribers (and the shared catalog, whose names and rows changed).
fn topic_changed(
    tx: &mut Tx<'_>,
    signal: &TopicChanged,
    token: &Receiving,
) -> Result<(), DomainError> {
    let subscribers = match tx.captured_subscribers(signal.topic_id) {
        Some(captured) => captured,
        None => affected_subscribers(tx, signal.topic_id)?,
    };
    let TopicChanged { topic_id, action } = signal.clone();
    tx.invalidate_users(&subscribers, token);
    tx.invalidate_catalog(token);
    tx.on_commit(move |_, _| info!("Topic {topic_id} changed: {action}"));
    Ok(())
}

/// Past this many (user, topic) pairs a change of subscriptions is not told to open pages
/// in full: they refetch instead of receiving a long patch.
const DESCRIBED_PAIRS: usize = 500;

/// `m2m_changed`: after an add, remove or clear, the affected users' lists and the catalog
/// (its counts moved) are stale, whichever side started the change. The new counts and flags
/// go with them, for open pages to patch.
fn subscriptions_changed(
    tx: &mut Tx<'_>,
    signal: &M2mChanged,
    token: &Receiving,
) -> Result<(), DomainError> {
    let subscribed = match signal.action {
        M2mAction::PostAdd => true,
        M2mAction::PostRemove | M2mAction::PostClear => false,
        _ => return Ok(()),
    };
    let (users, topic_ids) = (signal.affected_users(), signal.affected_topics());
    if users.len().saturating_mul(topic_ids.len()) > DESCRIBED_PAIRS {
        tx.invalidate_users(&users, token);
        tx.invalidate_catalog(token);
        return Ok(());
    }
    let counts = subscriber_counts(tx.conn(), &topic_ids)?;
    let flags: Vec<(UserId, TopicId, bool)> = users
        .iter()
        .flat_map(|&user| {
            topic_ids
                .iter()
                .map(move |&topic| (user, topic, subscribed))
        })
        .collect();
    tx.subscriptions_moved(&counts, &flags, token);
    Ok(())
}

/// `user_logged_out`: the user's cached list goes.
fn user_logged_out(
    tx: &mut Tx<'_>,
    signal: &UserLoggedOut,
    token: &Receiving,
) -> Result<(), DomainError> {
    let user_id = signal.user_id;
    // Streams end first (this work is scheduled before the invalidation, which runs last):
    // they must not push a version the logged-out page cannot fetch.
    tx.on_commit(move |effects, token| effects.end_user_streams(user_id, token));
    tx.invalidate_users(&[user_id], token);
    Ok(())
}

/// `account_changed`: the change is written down for the running servers to follow (they
/// drop what they remember of the account: `super::account_changes`), and the user's pages
/// are stale; a user signed out everywhere loses their open pages' streams first.
fn account_changed(
    tx: &mut Tx<'_>,
    signal: &AccountChanged,
    token: &Receiving,
) -> Result<(), DomainError> {
    let AccountChanged { user_id, change } = *signal;
    record_change(tx.conn(), user_id, change, token)?;
    if change.ends_sessions() {
        tx.on_commit(move |effects, token| effects.end_user_streams(user_id, token));
    }
    tx.invalidate_users(&[user_id], token);
    tx.on_commit(move |_, _| info!("Account {user_id}: {}", change.as_str()));
    Ok(())
}
