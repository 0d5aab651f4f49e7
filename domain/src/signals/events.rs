//! The signals of the product, typed: what each one carries.

use std::fmt;

use crate::ids::{TopicId, UserId};

/// A topic as signals carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub id: TopicId,
    pub name: String,
}

/// Sent after a topic row is inserted or updated.
#[derive(Debug, Clone)]
pub struct PostSave {
    pub topic: TopicRecord,
    pub created: bool,
}

/// Sent before a topic row is deleted, while its subscriptions still exist.
#[derive(Debug, Clone)]
pub struct PreDelete {
    pub topic: TopicRecord,
}

/// Sent after a topic row is deleted (its subscriptions went with it, by CASCADE).
#[derive(Debug, Clone)]
pub struct PostDelete {
    pub topic: TopicRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mAction {
    PreAdd,
    PostAdd,
    PreRemove,
    PostRemove,
    PreClear,
    PostClear,
}

/// Which end of the topic–subscriber relation the change was made from: Django's `instance`
/// and `pk_set`, typed. For `PostClear` the ids are those captured at `PreClear`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum M2mSide {
    /// `topic.subscribers`: the topic, and the users that changed.
    TopicSubscribers { topic: TopicId, users: Vec<UserId> },
    /// `user.topics`: the user, and the topics that changed.
    UserTopics { user: UserId, topics: Vec<TopicId> },
}

/// A change of the topic–subscriber relation.
#[derive(Debug, Clone)]
pub struct M2mChanged {
    pub action: M2mAction,
    pub side: M2mSide,
}

impl M2mChanged {
    /// The users whose own topic lists this change touches, whichever side started it.
    pub fn affected_users(&self) -> Vec<UserId> {
        match &self.side {
            M2mSide::TopicSubscribers { users, .. } => users.clone(),
            M2mSide::UserTopics { user, .. } => vec![*user],
        }
    }

    /// The topics whose subscriber counts this change touches.
    pub fn affected_topics(&self) -> Vec<TopicId> {
        match &self.side {
            M2mSide::TopicSubscribers { topic, .. } => vec![*topic],
            M2mSide::UserTopics { topics, .. } => topics.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAction {
    Created,
    Updated,
    Deleted,
}

impl TopicAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicAction::Created => "created",
            TopicAction::Updated => "updated",
            TopicAction::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TopicAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our custom signal, sent by the `post_save` and `post_delete` receivers.
#[derive(Debug, Clone)]
pub struct TopicChanged {
    pub topic_id: TopicId,
    pub action: TopicAction,
}

/// Sent when a user logs out.
#[derive(Debug, Clone)]
pub struct UserLoggedOut {
    pub user_id: UserId,
}

/// What an administrator changed about an account (`server make-staff` and its kin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    StaffGranted,
    StaffRevoked,
    SessionsEnded,
    Deleted,
}

impl AccountChange {
    /// As stored in `account_changes.change`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountChange::StaffGranted => "staff_granted",
            AccountChange::StaffRevoked => "staff_revoked",
            AccountChange::SessionsEnded => "sessions_ended",
            AccountChange::Deleted => "deleted",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            AccountChange::StaffGranted,
            AccountChange::StaffRevoked,
            AccountChange::SessionsEnded,
            AccountChange::Deleted,
        ]
        .into_iter()
        .find(|change| change.as_str() == stored)
    }

    /// Whether the user is signed out everywhere by it.
    pub fn ends_sessions(self) -> bool {
        matches!(self, AccountChange::SessionsEnded | AccountChange::Deleted)
    }
}

/// Sent when an account's rights or sessions change, or it is deleted.
#[derive(Debug, Clone, Copy)]
pub struct AccountChanged {
    pub user_id: UserId,
    pub change: AccountChange,
}
