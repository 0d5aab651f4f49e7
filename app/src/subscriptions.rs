//! The server functions behind the three ways to change subscriptions; each is one domain
//! call (`domain::subscriptions`).

use domain::ids::TopicId;
use domain::live::ViewVersion;

use crate::server_fn::member_server_fn;

member_server_fn!(
    "subscribe", fn subscribe(topic_id: TopicId) -> ViewVersion,
    |user, services| domain::subscriptions::subscribe(&services, user.id, topic_id)
);

member_server_fn!(
    "unsubscribe", fn unsubscribe(topic_id: TopicId) -> ViewVersion,
    |user, services| domain::subscriptions::unsubscribe(&services, user.id, topic_id)
);

member_server_fn!(
    "unsubscribe_all", fn unsubscribe_all() -> ViewVersion,
    |user, services| domain::subscriptions::unsubscribe_all(&services, user.id)
);
