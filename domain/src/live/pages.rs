//! Routing count changes to the list pages that show them, before any stream wakes.
//!
//! Streams that follow the same list page (the same topics shown) share one channel. A bump
//! that says which counts moved goes only to the pages showing one of those topics, with only
//! their counts, and only the counts newer than those routed before (an instance hears its
//! own commits twice on PostgreSQL). A count carries its topic's own version, so counts need
//! no order among themselves: commits of two instances that did not see each other reach the
//! pages in either order and each page keeps the newer count per row. Every other shared bump
//! (a topic created, renamed or deleted; one that says nothing) goes to every stream, whose
//! page then refetches. So a page that none of a change's topics are on is not woken for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::count::Count;
use super::events::{Counts, LiveEvent};
use crate::ids::TopicId;

/// Described bumps buffered per followed page (one ring for all its streams).
const PAGE_BACKLOG: usize = 256;

/// The topics one page shows, sorted; `None`: not known, so every described change is heard.
pub(crate) type Shown = Option<Arc<[TopicId]>>;

#[derive(Default)]
pub(crate) struct Pages {
    /// The newest shared version told to every stream.
    seen: u64,
    /// The newest count version routed, by topic.
    counted: HashMap<TopicId, i64>,
    followed: HashMap<Shown, Followers>,
}

struct Followers {
    open: usize,
    events: broadcast::Sender<LiveEvent>,
}

/// Where one shared bump goes.
pub(crate) enum Route {
    /// Told already (an instance hears its own commits twice on PostgreSQL).
    Old,
    /// Sent to the pages showing what it moved.
    Pages,
    /// To every stream: its pages refetch.
    Everyone,
}

impl Pages {
    /// The newest shared version told to every stream.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    pub(crate) fn start_at(&mut self, version: u64) {
        self.seen = self.seen.max(version);
    }

    /// Routes the shared bump `version` that moved `counts` (`None`: it does not say).
    pub(crate) fn route(&mut self, version: u64, counts: Option<&Counts>) -> Route {
        let Some(counts) = counts else {
            if version <= self.seen {
                return Route::Old;
            }
            self.seen = version;
            return Route::Everyone;
        };
        let newer: Vec<(TopicId, Count)> = counts
            .iter()
            .filter(|(topic, count)| {
                self.counted
                    .get(topic)
                    .is_none_or(|&routed| count.version > routed)
            })
            .copied()
            .collect();
        if newer.is_empty() {
            return Route::Old;
        }
        for &(topic, count) in &newer {
            self.counted.insert(topic, count.version);
        }
        for (shown, followers) in &self.followed {
            let kept: Counts = match shown {
                None => newer.iter().copied().collect(),
                Some(shown) => newer
                    .iter()
                    .filter(|(topic, _)| shown.binary_search(topic).is_ok())
                    .copied()
                    .collect(),
            };
            if !kept.is_empty() {
                let _ = followers.events.send(LiveEvent::Shared {
                    version,
                    counts: Some(kept),
                });
            }
        }
        Route::Pages
    }

    /// Joins the followers of the page showing `shown`; the topics as the page's followers
    /// share them (one copy per page, not per stream), and the page's channel.
    fn join(&mut self, shown: Shown) -> (Shown, broadcast::Receiver<LiveEvent>) {
        if let Some((shared, followers)) = self.followed.get_key_value(&shown) {
            let shared = shared.clone();
            let events = followers.events.subscribe();
            if let Some(followers) = self.followed.get_mut(&shown) {
                followers.open += 1;
            }
            return (shared, events);
        }
        let (sender, events) = broadcast::channel(PAGE_BACKLOG);
        self.followed.insert(
            shown.clone(),
            Followers {
                open: 1,
                events: sender,
            },
        );
        (shown, events)
    }

    fn leave(&mut self, shown: &Shown) {
        if let Some(followers) = self.followed.get_mut(shown) {
            followers.open = followers.open.saturating_sub(1);
            if followers.open == 0 {
                self.followed.remove(shown);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn followed(&self) -> usize {
        self.followed.len()
    }
}

/// The pages table, locked (a panic while holding it leaves no half-made change: each
/// change is one insert, one removal or one count).
pub(crate) fn lock(pages: &Mutex<Pages>) -> MutexGuard<'_, Pages> {
    pages
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One stream's place among the followers of its page, until dropped.
pub struct PageFollow {
    pages: Arc<Mutex<Pages>>,
    shown: Shown,
    /// The described count changes of the page's topics.
    pub events: broadcast::Receiver<LiveEvent>,
}

impl PageFollow {
    pub(crate) fn join(pages: &Arc<Mutex<Pages>>, shown: Option<Vec<TopicId>>) -> PageFollow {
        let shown: Shown = shown.map(|mut ids| {
            ids.sort_unstable();
            ids.into()
        });
        let (shown, events) = lock(pages).join(shown);
        PageFollow {
            pages: pages.clone(),
            shown,
            events,
        }
    }

    /// The topics the page shows, sorted (`None`: not known).
    pub fn topics(&self) -> Option<&[TopicId]> {
        self.shown.as_deref()
    }

    /// The page's channel, beside the topics it shows (to hear from one while reading the
    /// other).
    pub fn parts(&mut self) -> (&mut broadcast::Receiver<LiveEvent>, Option<&[TopicId]>) {
        (&mut self.events, self.shown.as_deref())
    }

    /// Whether the page shows `topic` (every topic, while its topics are not known).
    pub fn shows(&self, topic: TopicId) -> bool {
        self.shown
            .as_ref()
            .is_none_or(|shown| shown.binary_search(&topic).is_ok())
    }
}

impl Drop for PageFollow {
    fn drop(&mut self) {
        lock(&self.pages).leave(&self.shown);
    }
}
