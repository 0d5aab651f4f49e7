//! One topic's count as pages are told it: with its own version.

use serde::{Deserialize, Serialize};

/// A topic's subscriber count and the version of that count: the topic's own, moved by
/// every change of the count in the same statement (`topics.count_version`). Counts of one
/// topic are ordered by it whichever instance committed them and in whatever order they
/// arrive; counts of different topics need no order at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Count {
    pub subscribers: i64,
    pub version: i64,
}

impl Count {
    /// Whether `self` (pushed by the server) is a later count than the one shown.
    pub fn is_newer_than(&self, shown: &Count) -> bool {
        self.version > shown.version
    }
}
