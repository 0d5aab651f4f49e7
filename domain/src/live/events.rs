//! What the live hub carries: version bumps, with what moved when the change could tell.

use std::sync::Arc;

use super::count::Count;
use crate::ids::{TopicId, UserId};

/// New subscriber counts with their versions, by topic (see [`crate::live::Patch`]).
pub type Counts = Arc<[(TopicId, Count)]>;
/// One user's new subscribed flags, by topic.
pub type Flags = Arc<[(TopicId, bool)]>;

/// A version bump, with what moved when the change that made it could tell (`None`: the
/// page refetches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// Something every user sees changed (a topic, a name, a count).
    Shared {
        version: u64,
        counts: Option<Counts>,
    },
    /// One user's own view changed.
    User {
        user_id: UserId,
        version: u64,
        flags: Option<Flags>,
    },
    /// Every user's own view changed (one bump for a change that touched very many).
    AllUsers(u64),
    /// The user logged out: their streams end.
    LoggedOut(UserId),
}

impl LiveEvent {
    /// The one user whose streams alone hear this event; `None`: every stream hears it.
    pub(crate) fn addressee(&self) -> Option<UserId> {
        match self {
            LiveEvent::User { user_id, .. } | LiveEvent::LoggedOut(user_id) => Some(*user_id),
            LiveEvent::Shared { .. } | LiveEvent::AllUsers(_) => None,
        }
    }
}
