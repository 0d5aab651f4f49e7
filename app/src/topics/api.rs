//! The server functions behind the topic page's actions. Each is a thin door: one domain call
//! in `domain::topics`, run through [`crate::web::as_member`]. What they exchange is the
//! domain's (`domain::topics::TopicListing` and friends).

use domain::ids::TopicId;
use domain::live::ViewVersion;
pub use domain::topics::{PageRequest, TopicListing, TopicView, PAGE_SIZE};
use leptos::prelude::*;
use leptos_router::params::ParamsMap;

use crate::error::AppError;

/// The request a page URL's query makes (`?page=2&q=rust`).
pub fn page_request(query: &ParamsMap) -> PageRequest {
    PageRequest::from_query(query.get("page").as_deref(), query.get("q"))
}

#[server(endpoint = "list_topics")]
pub async fn list_topics(request: PageRequest) -> Result<TopicListing, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::topics::list(&services, user.id, request).await
    })
    .await
}

#[server(endpoint = "create_topic")]
pub async fn create_topic(name: String) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::topics::create(&services, &user, &name).await
    })
    .await
}

#[server(endpoint = "rename_topic")]
pub async fn rename_topic(topic_id: TopicId, name: String) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::topics::rename(&services, &user, topic_id, &name).await
    })
    .await
}

#[server(endpoint = "delete_topic")]
pub async fn delete_topic(topic_id: TopicId) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        domain::topics::delete(&services, &user, topic_id).await
    })
    .await
}
