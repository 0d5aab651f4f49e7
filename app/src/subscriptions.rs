//! The server functions behind the three ways to change subscriptions; each is one domain
//! call (`domain::subscriptions`).

use leptos::prelude::*;

use domain::ids::TopicId;
use domain::live::ViewVersion;

use crate::error::AppError;

#[server(endpoint = "subscribe")]
pub async fn subscribe(topic_id: TopicId) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::subscriptions::subscribe(&services, user.id, topic_id).await
    })
    .await
}

#[server(endpoint = "unsubscribe")]
pub async fn unsubscribe(topic_id: TopicId) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::subscriptions::unsubscribe(&services, user.id, topic_id).await
    })
    .await
}

#[server(endpoint = "unsubscribe_all")]
pub async fn unsubscribe_all() -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::subscriptions::unsubscribe_all(&services, user.id).await
    })
    .await
}
