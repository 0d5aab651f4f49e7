//! What the topic page and the server exchange: the listing's wire types and the server
//! functions behind the page's actions. Each server function is a thin door: one domain call
//! in `super::ssr` (or `crate::subscriptions::ssr`), run through [`crate::web::as_member`].

use leptos::prelude::*;
use leptos_router::params::ParamsMap;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::ids::TopicId;
use crate::live::ViewVersion;

/// One row of the topic list, from the viewer's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: TopicId,
    pub name: String,
    pub subscribers: i64,
    pub subscribed: bool,
}

/// Topics per page: a list of ten thousand rows is not a page.
pub const PAGE_SIZE: usize = 100;

/// Which part of the list to show: a 1-based page of the topics whose names contain `query`
/// (ignoring letter case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageRequest {
    pub page: usize,
    pub query: String,
}

impl PageRequest {
    /// The request a page URL's query makes (`?page=2&q=rust`); the page and the server's
    /// page store both read it here, so they cannot disagree about which page a URL shows.
    pub fn from_query(query: &ParamsMap) -> Self {
        PageRequest {
            page: query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
            query: query.get("q").unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicListing {
    pub version: ViewVersion,
    /// This page's topics.
    pub topics: Vec<TopicView>,
    /// The page shown (clamped into range) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// Topics matching the query, on all pages.
    pub total: usize,
    pub query: String,
}

#[server(endpoint = "list_topics")]
pub async fn list_topics(request: PageRequest) -> Result<TopicListing, AppError> {
    crate::web::as_member(|user, services| async move {
        super::ssr::list(&services, user.id, request).await
    })
    .await
}

#[server(endpoint = "create_topic")]
pub async fn create_topic(name: String) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        super::ssr::create(&services, &user, &name).await
    })
    .await
}

#[server(endpoint = "rename_topic")]
pub async fn rename_topic(topic_id: TopicId, name: String) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        super::ssr::rename(&services, &user, topic_id, &name).await
    })
    .await
}

#[server(endpoint = "delete_topic")]
pub async fn delete_topic(topic_id: TopicId) -> Result<ViewVersion, AppError> {
    crate::web::as_member(|user, services| async move {
        super::ssr::delete(&services, &user, topic_id).await
    })
    .await
}
