//! Routing count changes to the list pages that show them, before any stream wakes.
//!
//! Streams that follow the same list page (the same topics shown) share one channel. A bump
//! every user sees that says which counts moved, and is the very next shared version, goes
//! only to the pages showing one of those topics, with only their counts; every other bump
//! every user sees (a gap, or one that says nothing) goes to every stream, whose page then
//! refetches. So a page that none of a change's topics are on is not woken for it, and a
//! stream needs no version check of its own for the counts it hears: the hub checked that
//! every shared version between two it hears was either one it was sent, or one that touched
//! none of its topics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::events::LiveEvent;
use crate::ids::TopicId;

/// Described bumps buffered per followed page (one ring for all its streams).
const PAGE_BACKLOG: usize = 256;

/// The topics one page shows, sorted; `None`: not known, so every described change is heard.
pub(crate) type Shown = Option<Arc<[TopicId]>>;

#[derive(Default)]
pub(crate) struct Pages {
    /// The newest shared version published.
    seen: u64,
    followed: HashMap<Shown, Followers>,
}

struct Followers {
    open: usize,
    events: broadcast::Sender<LiveEvent>,
}

/// Where one shared bump goes.
pub(crate) enum Route {
    /// Published already (an instance hears its own commits twice on PostgreSQL).
    Old,
    /// Sent to the pages showing what it moved.
    Pages,
    /// To every stream: its pages refetch.
    Everyone,
}

impl Pages {
    /// The newest shared version published.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    pub(crate) fn start_at(&mut self, version: u64) {
        self.seen = self.seen.max(version);
    }

    /// Routes the shared bump `version` that moved `counts` (`None`: it does not say).
    pub(crate) fn route(&mut self, version: u64, counts: Option<&Arc<[(TopicId, i64)]>>) -> Route {
        if version <= self.seen {
            return Route::Old;
        }
        let next = version == self.seen + 1;
        self.seen = version;
        let Some(counts) = counts.filter(|_| next) else {
            return Route::Everyone;
        };
        for (shown, followers) in &self.followed {
            let kept: Arc<[(TopicId, i64)]> = match shown {
                None => counts.clone(),
                Some(shown) => counts
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
