//! What the topic page shows and the server sends it: one row per topic from the viewer's
//! point of view, which page of the list, and how an open page applies a pushed patch.

use serde::{Deserialize, Serialize};

use crate::ids::TopicId;
use crate::live::{Patch, ViewVersion};

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
    /// Applies changes pushed to an open page: the new counts and flags of the rows shown
    /// (other topics are not on this page). `false`, changing nothing, when the patch does not
    /// lead from the version shown: the page refetches instead.
    pub fn apply(&mut self, patch: &Patch) -> bool {
        if !patch.applies_to(&self.version) {
            return false;
        }
        for topic in &mut self.topics {
            if let Some(&(_, count)) = patch.counts.iter().find(|(id, _)| *id == topic.id) {
                topic.subscribers = count;
            }
            if let Some(&(_, subscribed)) = patch.flags.iter().find(|(id, _)| *id == topic.id) {
                topic.subscribed = subscribed;
            }
        }
        self.version = patch.to;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, subscribers: i64, subscribed: bool) -> TopicView {
        TopicView {
            id: TopicId(id),
            name: format!("Topic {id}"),
            subscribers,
            subscribed,
        }
    }

    fn listing(version: ViewVersion) -> TopicListing {
        TopicListing {
            version,
            topics: vec![row(1, 2, false), row(2, 5, true)],
            page: 1,
            pages: 1,
            total: 2,
            query: String::new(),
        }
    }

    #[test]
    fn a_patch_moves_the_rows_it_names_and_the_version() {
        let from = ViewVersion { shared: 7, user: 3 };
        let to = ViewVersion { shared: 9, user: 4 };
        let mut shown = listing(from);
        let patch = Patch {
            from,
            to,
            counts: vec![(TopicId(1), 3), (TopicId(40), 1)],
            flags: vec![(TopicId(1), true), (TopicId(2), false)],
        };
        assert!(shown.apply(&patch));
        assert_eq!(shown.version, to);
        assert_eq!(
            shown.topics,
            vec![row(1, 3, true), row(2, 5, false)],
            "topics off the page are ignored"
        );
    }

    #[test]
    fn a_patch_from_elsewhere_changes_nothing() {
        let shown_version = ViewVersion { shared: 6, user: 3 };
        let mut shown = listing(shown_version);
        let patch = Patch {
            from: ViewVersion { shared: 7, user: 3 },
            to: ViewVersion { shared: 8, user: 3 },
            counts: vec![(TopicId(1), 9)],
            flags: vec![],
        };
        assert!(!shown.apply(&patch), "the change to 7 was missed");
        assert_eq!(shown, listing(shown_version));
    }
}
