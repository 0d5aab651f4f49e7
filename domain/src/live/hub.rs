//! Live versions: the post-commit receivers publish version bumps here, and every open page's
//! event stream (Server-Sent Events) listens to this one broadcast source — no polling and no
//! database work per connected client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use crate::ids::{TopicId, UserId};
use crate::signals::token::Receiving;

/// How many pages one user may follow at once.
pub const STREAMS_PER_USER: usize = 8;
/// How many pages one server follows at once: an open stream costs a task and a buffer, and
/// a crowd of them must not starve the requests that render pages.
pub const MAX_OPEN_STREAMS: usize = 20_000;

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This user follows [`STREAMS_PER_USER`] pages already.
    TooManyForUser,
    /// The server follows as many pages as it takes.
    Full,
}
/// Bumps buffered per listener; a listener that falls further behind catches up from the
/// current versions instead.
const BACKLOG: usize = 256;

/// New subscriber counts, by topic (absolute values: see [`super::Patch`]).
pub type Counts = Arc<[(TopicId, i64)]>;
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

#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    events: broadcast::Sender<LiveEvent>,
    per_user: Mutex<HashMap<UserId, usize>>,
    open: AtomicUsize,
    capacity: usize,
    shutdown: watch::Sender<bool>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::with_capacity(MAX_OPEN_STREAMS)
    }
}

impl LiveHub {
    /// A hub that follows at most `capacity` streams at once.
    pub fn with_capacity(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(BACKLOG);
        let (shutdown, _) = watch::channel(false);
        LiveHub {
            inner: Arc::new(HubInner {
                events,
                per_user: Mutex::new(HashMap::new()),
                open: AtomicUsize::new(0),
                capacity,
                shutdown,
            }),
        }
    }

    /// Called after the cache moved a generation. Bumps of one process's SQLite writes go
    /// out in commit order (`db::write_transaction_then`); a stream that sees a gap refetches.
    pub(crate) fn publish(&self, event: LiveEvent) {
        // No listener is not an error: nobody has a page open.
        let _ = self.inner.events.send(event);
    }

    /// Ends the streams of a user who logged out. Receivers only.
    pub fn end_user_streams(&self, user_id: UserId, _: &Receiving) {
        self.publish(LiveEvent::LoggedOut(user_id));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.events.subscribe()
    }

    /// Registers a stream for `user_id`, unless the user or the server has too many open.
    pub fn open_stream(&self, user_id: UserId) -> Result<StreamGuard, Refused> {
        // Counted under the per-user lock, so the total cannot overshoot either.
        let mut per_user = self.per_user();
        if self.inner.open.load(Ordering::Relaxed) >= self.inner.capacity {
            return Err(Refused::Full);
        }
        let count = per_user.entry(user_id).or_insert(0);
        if *count >= STREAMS_PER_USER {
            return Err(Refused::TooManyForUser);
        }
        *count += 1;
        self.inner.open.fetch_add(1, Ordering::Relaxed);
        Ok(StreamGuard {
            hub: self.clone(),
            user_id,
        })
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Ends every stream (graceful shutdown must not wait for pages that never close).
    pub fn shut_down(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    fn per_user(&self) -> MutexGuard<'_, HashMap<UserId, usize>> {
        self.inner
            .per_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts one open stream until dropped (the client went away or the stream ended).
pub struct StreamGuard {
    hub: LiveHub,
    user_id: UserId,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut per_user = self.hub.per_user();
        if let Some(count) = per_user.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_user.remove(&self.user_id);
            }
        }
        self.hub.inner.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_per_user_and_counted_until_dropped() {
        let hub = LiveHub::default();
        let guards: Vec<_> = (0..STREAMS_PER_USER)
            .map(|_| hub.open_stream(UserId(1)).expect("within the bound"))
            .collect();
        assert_eq!(
            hub.open_stream(UserId(1)).err(),
            Some(Refused::TooManyForUser),
            "one more is refused"
        );
        let other = hub
            .open_stream(UserId(2))
            .expect("other users are not affected");
        assert_eq!(hub.open_streams(), STREAMS_PER_USER + 1);
        drop(guards);
        drop(other);
        assert_eq!(hub.open_streams(), 0);
        assert!(hub.open_stream(UserId(1)).is_ok());
    }

    #[test]
    fn the_server_follows_at_most_its_capacity() {
        let hub = LiveHub::with_capacity(3);
        let guards: Vec<_> = (1..=3)
            .map(|id| hub.open_stream(UserId(id)).expect("within capacity"))
            .collect();
        assert_eq!(hub.open_stream(UserId(9)).err(), Some(Refused::Full));
        drop(guards);
        assert!(
            hub.open_stream(UserId(9)).is_ok(),
            "room again once pages close"
        );
    }
}
