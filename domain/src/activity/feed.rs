//! The feed as the browser receives it: a page of entries, newest first.

use serde::{Deserialize, Serialize};

use crate::ids::TopicId;

pub const PAGE_SIZE: i64 = 50;
/// How far back the feed can be paged: the newest 10,000 entries. A page further back would
/// make the database step over every row before it (`OFFSET`), for a page nobody reads.
pub const MAX_PAGE: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityView {
    pub id: i64,
    pub topic_id: Option<TopicId>,
    pub topic_name: String,
    pub action: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPageData {
    pub items: Vec<ActivityView>,
    pub page: i64,
    pub has_next: bool,
}
