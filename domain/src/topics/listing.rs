//! What the topic page shows and the server sends it: one row per topic from the viewer's
//! point of view, which page of the list, and how an open page applies a pushed patch.

use serde::{Deserialize, Serialize};

use crate::ids::TopicId;
use crate::live::{Count, Patch, ViewVersion};

/// One row of the topic list, from the viewer's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: TopicId,
    pub name: String,
    pub subscribers: i64,
    /// The version of `subscribers` (see [`Count`]).
    pub count_version: i64,
    pub subscribed: bool,
}

impl TopicView {
    pub fn count(&self) -> Count {
        Count {
            subscribers: self.subscribers,
            version: self.count_version,
        }
    }

    /// Shows `count` if it is newer than the one shown; whether it was.
    pub fn take_count(&mut self, count: Count) -> bool {
        if !count.is_newer_than(&self.count()) {
            return false;
        }
        self.subscribers = count.subscribers;
        self.count_version = count.version;
        true
    }
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
    /// The request a page URL's query makes (`?page=2&q=rust`, its `page` and `q` values);
    /// the page and the server's page store both read it here, so they cannot disagree about
    /// which page a URL shows.
    pub fn from_query(page: Option<&str>, query: Option<String>) -> Self {
        PageRequest {
            page: page.and_then(|p| p.parse().ok()).unwrap_or(1),
            query: query.unwrap_or_default(),
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

impl TopicListing {
    /// Applies changes pushed to an open page: the new counts of the rows shown, where newer
    /// than theirs, and the user's new flags when they lead from the user's version shown
    /// (other topics are not on this page). `false` when the flags do not lead from there:
    /// the counts are applied, the flags are not, and the page refetches.
    pub fn apply(&mut self, patch: &Patch) -> bool {
        self.take_counts(&patch.counts);
        if !patch.flags_apply_to(&self.version) {
            return false;
        }
        for topic in &mut self.topics {
            if let Some(&(_, subscribed)) = patch.flags.iter().find(|(id, _)| *id == topic.id) {
                topic.subscribed = subscribed;
            }
        }
        self.version = patch.after(&self.version);
        true
    }

    /// Shows each of `counts` on its row where it is newer than the row's; whether any was.
    pub fn take_counts(&mut self, counts: &[(TopicId, Count)]) -> bool {
        let mut took = false;
        for topic in &mut self.topics {
            if let Some(&(_, count)) = counts.iter().find(|(id, _)| *id == topic.id) {
                took |= topic.take_count(count);
            }
        }
        took
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, subscribers: i64, count_version: i64, subscribed: bool) -> TopicView {
        TopicView {
            id: TopicId(id),
            name: format!("Topic {id}"),
            subscribers,
            count_version,
            subscribed,
        }
    }

    fn listing(version: ViewVersion) -> TopicListing {
        TopicListing {
            version,
            topics: vec![row(1, 2, 10, false), row(2, 5, 20, true)],
            page: 1,
            pages: 1,
            total: 2,
            query: String::new(),
        }
    }

    fn count(subscribers: i64, version: i64) -> Count {
        Count {
            subscribers,
            version,
        }
    }

    #[test]
    fn a_patch_moves_the_rows_it_names_and_the_user_s_version() {
        let from = ViewVersion { shared: 7, user: 3 };
        let mut shown = listing(from);
        let patch = Patch {
            from: 3,
            to: 4,
            counts: vec![(TopicId(1), count(3, 11)), (TopicId(40), count(1, 1))],
            flags: vec![(TopicId(1), true), (TopicId(2), false)],
        };
        assert!(shown.apply(&patch));
        assert_eq!(shown.version, ViewVersion { shared: 7, user: 4 });
        assert_eq!(
            shown.topics,
            vec![row(1, 3, 11, true), row(2, 5, 20, false)],
            "topics off the page are ignored"
        );
    }

    #[test]
    fn counts_apply_in_any_order_and_an_older_one_changes_nothing() {
        let version = ViewVersion { shared: 7, user: 3 };
        let mut shown = listing(version);
        let counts = |subscribers, version| Patch {
            from: 3,
            to: 3,
            counts: vec![(TopicId(2), count(subscribers, version))],
            flags: vec![],
        };
        // Two commits of topic 2 told the other way round (two instances, say).
        assert!(shown.apply(&counts(7, 22)));
        assert!(shown.apply(&counts(6, 21)));
        assert_eq!(
            shown.topics[1],
            row(2, 7, 22, true),
            "the newer count stays"
        );
        assert_eq!(shown.version, version);
    }

    #[test]
    fn flags_from_elsewhere_change_no_flag_but_counts_still_apply() {
        let version = ViewVersion { shared: 6, user: 3 };
        let mut shown = listing(version);
        let patch = Patch {
            from: 4,
            to: 5,
            counts: vec![(TopicId(1), count(9, 12))],
            flags: vec![(TopicId(1), true)],
        };
        assert!(!shown.apply(&patch), "the user's change to 4 was missed");
        assert_eq!(shown.topics[0], row(1, 9, 12, false));
        assert_eq!(shown.version, version);
    }
}
