//! Subscriptions: the topic–subscriber relation. `queries` reads and removes rows for the
//! other modules; `changes` holds the three ways a person changes them, one transaction each
//! with its `m2m_changed` signal.

mod changes;
pub(crate) mod queries;

pub(crate) use changes::clear_in;
pub use changes::{subscribe, subscribe_in, unsubscribe, unsubscribe_all, unsubscribe_all_in};
pub use queries::{subscriber_ids, topic_ids_of};
