//! The server functions behind the topic page's actions. Each is a thin door: one domain call
//! in `domain::topics`, run through [`crate::web::as_member`]. What they exchange is the
//! domain's (`domain::topics::TopicListing` and friends).

use domain::ids::TopicId;
use domain::live::ViewVersion;
pub use domain::topics::{PageRequest, TopicListing, TopicView, PAGE_SIZE};
use leptos_router::params::ParamsMap;

use crate::server_fn::member_server_fn;

/// The request a page URL's query makes (`?page=2&q=rust`).
pub fn page_request(query: &ParamsMap) -> PageRequest {
    PageRequest::from_query(query.get("page").as_deref(), query.get("q"))
}

member_server_fn!(
    "list_topics", fn list_topics(request: PageRequest) -> TopicListing,
    |user, services| domain::topics::list(&services, user.id, request)
);

member_server_fn!(
    "create_topic", fn create_topic(name: String) -> ViewVersion,
    |user, services| domain::topics::create(&services, &user, &name)
);

member_server_fn!(
    "rename_topic", fn rename_topic(topic_id: TopicId, name: String) -> ViewVersion,
    |user, services| domain::topics::rename(&services, &user, topic_id, &name)
);

member_server_fn!(
    "delete_topic", fn delete_topic(topic_id: TopicId) -> ViewVersion,
    |user, services| domain::topics::delete(&services, &user, topic_id)
);
