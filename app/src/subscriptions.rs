//! Subscriptions: the topic–subscriber relation and the three ways to change it.

use leptos::prelude::*;

use crate::error::AppError;
use crate::topics::ViewVersion;

#[server(endpoint = "subscribe")]
pub async fn subscribe(topic_id: i64) -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::subscribe(&state, user.id, topic_id).await
        }
        .await,
    )
}

#[server(endpoint = "unsubscribe")]
pub async fn unsubscribe(topic_id: i64) -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::unsubscribe(&state, user.id, topic_id).await
        }
        .await,
    )
}

#[server(endpoint = "unsubscribe_all")]
pub async fn unsubscribe_all() -> Result<ViewVersion, AppError> {
    crate::state::respond(
        async {
            let user = crate::state::require_user().await?;
            let state = crate::state::app_state()?;
            ssr::unsubscribe_all(&state, user.id).await
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use diesel::prelude::*;

    use crate::db::Conn;
    use crate::error::AppError;
    use crate::schema::topic_subscribers;
    use crate::signals::{self, M2mAction, M2mChanged, M2mSide, Signals};
    use crate::state::AppState;
    use crate::topics::{self, ViewVersion};

    /// The topic's subscribers, at most `limit` of them (callers that only need to know
    /// "more than N" need not read a hundred thousand ids).
    pub fn subscriber_ids(conn: &mut Conn, topic_id: i64, limit: usize) -> QueryResult<Vec<i64>> {
        topic_subscribers::table
            .filter(topic_subscribers::topic_id.eq(topic_id))
            .select(topic_subscribers::user_id)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(conn)
    }

    pub fn topic_ids_of(conn: &mut Conn, user_id: i64) -> QueryResult<Vec<i64>> {
        topic_subscribers::table
            .filter(topic_subscribers::user_id.eq(user_id))
            .select(topic_subscribers::topic_id)
            .order(topic_subscribers::topic_id)
            .load(conn)
    }

    /// Removes up to `limit` of a retired topic's subscriptions. No signal: like the cascade
    /// of a delete, whose subscribers were captured when the topic was retired.
    pub fn remove_batch_of_topic(conn: &mut Conn, topic_id: i64, limit: i64) -> QueryResult<usize> {
        let batch: Vec<i64> = topic_subscribers::table
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

    fn is_subscribed(conn: &mut Conn, user_id: i64, topic_id: i64) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            topic_subscribers::table
                .filter(topic_subscribers::topic_id.eq(topic_id))
                .filter(topic_subscribers::user_id.eq(user_id)),
        ))
        .get_result(conn)
    }

    fn change(action: M2mAction, topic_id: i64, user_id: i64) -> M2mChanged {
        M2mChanged {
            action,
            side: M2mSide::TopicSubscribers,
            instance_id: topic_id,
            pk_set: vec![user_id],
        }
    }

    /// `topic.subscribers.add(user)`. Subscribing twice changes nothing and sends nothing.
    pub fn subscribe_in(
        conn: &mut Conn,
        signals: &Signals,
        user_id: i64,
        topic_id: i64,
    ) -> Result<(), AppError> {
        signals::write(conn, signals, |tx| {
            topics::ssr::find(tx.conn(), topic_id)?;
            if is_subscribed(tx.conn(), user_id, topic_id)? {
                return Ok(());
            }
            tx.send(&change(M2mAction::PreAdd, topic_id, user_id))?;
            diesel::insert_into(topic_subscribers::table)
                .values((
                    topic_subscribers::topic_id.eq(topic_id),
                    topic_subscribers::user_id.eq(user_id),
                ))
                .execute(tx.conn())?;
            tx.send(&change(M2mAction::PostAdd, topic_id, user_id))
        })
    }

    /// `topic.subscribers.remove(user)`. Not being subscribed is not an error.
    pub fn unsubscribe_in(
        conn: &mut Conn,
        signals: &Signals,
        user_id: i64,
        topic_id: i64,
    ) -> Result<(), AppError> {
        signals::write(conn, signals, |tx| {
            topics::ssr::find(tx.conn(), topic_id)?;
            if !is_subscribed(tx.conn(), user_id, topic_id)? {
                return Ok(());
            }
            tx.send(&change(M2mAction::PreRemove, topic_id, user_id))?;
            diesel::delete(
                topic_subscribers::table
                    .filter(topic_subscribers::topic_id.eq(topic_id))
                    .filter(topic_subscribers::user_id.eq(user_id)),
            )
            .execute(tx.conn())?;
            tx.send(&change(M2mAction::PostRemove, topic_id, user_id))
        })
    }

    /// `user.topics.clear()`. The topic ids are read first: `post_clear` carries the ids
    /// captured at `pre_clear`, since afterwards nobody knows them.
    pub fn unsubscribe_all_in(
        conn: &mut Conn,
        signals: &Signals,
        user_id: i64,
    ) -> Result<(), AppError> {
        signals::write(conn, signals, |tx| {
            let topic_ids = topic_ids_of(tx.conn(), user_id)?;
            if topic_ids.is_empty() {
                return Ok(());
            }
            let clear = |action| M2mChanged {
                action,
                side: M2mSide::UserTopics,
                instance_id: user_id,
                pk_set: topic_ids.clone(),
            };
            tx.send(&clear(M2mAction::PreClear))?;
            diesel::delete(topic_subscribers::table.filter(topic_subscribers::user_id.eq(user_id)))
                .execute(tx.conn())?;
            tx.send(&clear(M2mAction::PostClear))
        })
    }

    pub async fn subscribe(
        state: &AppState,
        user_id: i64,
        topic_id: i64,
    ) -> Result<ViewVersion, AppError> {
        state
            .mutate(user_id, move |conn, signals| {
                subscribe_in(conn, signals, user_id, topic_id)
            })
            .await
    }

    pub async fn unsubscribe(
        state: &AppState,
        user_id: i64,
        topic_id: i64,
    ) -> Result<ViewVersion, AppError> {
        state
            .mutate(user_id, move |conn, signals| {
                unsubscribe_in(conn, signals, user_id, topic_id)
            })
            .await
    }

    pub async fn unsubscribe_all(state: &AppState, user_id: i64) -> Result<ViewVersion, AppError> {
        state
            .mutate(user_id, move |conn, signals| {
                unsubscribe_all_in(conn, signals, user_id)
            })
            .await
    }
}
