//! Live versions: the post-commit receivers publish version bumps here, and every open page's
//! event stream (Server-Sent Events) listens — no polling and no database work per connected
//! client.
//!
//! Events are routed before any stream wakes: a count change only to the streams of the list
//! pages that show its topics (`pages`), a bump of one user's own view only to that user's
//! streams, and only what no page can patch (a topic created, renamed or deleted; a bump that says nothing) to
//! every stream. So an idle page costs nothing for changes it does not show, however many
//! there are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use super::events::LiveEvent;
use super::pages::{self, PageFollow, Pages, Route};
use crate::ids::{TopicId, UserId};
use crate::signals::token::Receiving;

/// How many pages one user may follow at once.
pub const STREAMS_PER_USER: usize = 8;
/// How many pages one server follows at once unless configured otherwise: an open stream
/// costs a task and a few KiB, and a crowd of them must not starve the requests that render
/// pages.
pub const MAX_OPEN_STREAMS: u32 = 100_000;

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This user follows [`STREAMS_PER_USER`] pages already.
    TooManyForUser,
    /// The server follows as many pages as it takes.
    Full,
}
/// Bumps every stream hears, buffered for all of them at once (one ring, not one per stream);
/// a stream that falls further behind cannot keep up and is ended (its page reconnects and is
/// told the current version).
const BACKLOG: usize = 256;
/// Bumps of one user's own view, buffered for that user's streams.
const USER_BACKLOG: usize = 32;

#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// What every stream hears: shared bumps no page can patch.
    shared: broadcast::Sender<LiveEvent>,
    /// The list pages followed, and the newest shared version published.
    pages: Arc<Mutex<Pages>>,
    /// The users with open streams: how many, and what only those streams hear.
    users: Mutex<HashMap<UserId, UserStreams>>,
    /// Every event, for whoever taps the whole hub ([`LiveHub::subscribe`]).
    all: broadcast::Sender<LiveEvent>,
    open: AtomicUsize,
    /// Streams ended because they fell behind.
    dropped: AtomicU64,
    /// Shared bumps sent to the pages that show their topics, and to every stream.
    to_pages: AtomicU64,
    to_everyone: AtomicU64,
    capacity: AtomicUsize,
    shutdown: watch::Sender<bool>,
}

struct UserStreams {
    open: usize,
    events: broadcast::Sender<LiveEvent>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::with_capacity(MAX_OPEN_STREAMS as usize)
    }
}

impl LiveHub {
    /// A hub that follows at most `capacity` streams at once.
    pub fn with_capacity(capacity: usize) -> Self {
        let (shared, _) = broadcast::channel(BACKLOG);
        let (all, _) = broadcast::channel(BACKLOG);
        let (shutdown, _) = watch::channel(false);
        LiveHub {
            inner: Arc::new(HubInner {
                shared,
                pages: Arc::new(Mutex::new(Pages::default())),
                users: Mutex::new(HashMap::new()),
                all,
                open: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                to_pages: AtomicU64::new(0),
                to_everyone: AtomicU64::new(0),
                capacity: AtomicUsize::new(capacity),
                shutdown,
            }),
        }
    }

    /// Sets how many streams the hub follows at once (configuration, at start-up).
    pub fn set_capacity(&self, capacity: usize) {
        self.inner.capacity.store(capacity, Ordering::Relaxed);
    }

    /// Called after the cache moved a generation. Bumps of one process's SQLite writes go
    /// out in commit order (`db::write_transaction_then`); on PostgreSQL in any order, which
    /// counts need not know (their own versions place them) and a user's flags do (a stream
    /// that sees a gap in a user's versions refetches).
    pub(crate) fn publish(&self, event: LiveEvent) {
        if self.inner.all.receiver_count() > 0 {
            let _ = self.inner.all.send(event.clone());
        }
        // No listener is not an error: nobody has a page open.
        match (&event, event.addressee()) {
            (LiveEvent::Shared { version, counts }, _) => {
                // Sent under the pages' lock: a stream that hears a later bump of its page
                // finds every earlier bump for everyone waiting already (see `pages`).
                let mut pages = self.pages();
                let last = pages.seen();
                match pages.route(*version, counts.as_ref()) {
                    Route::Old => {}
                    Route::Pages => {
                        self.inner.to_pages.fetch_add(1, Ordering::Relaxed);
                    }
                    Route::Everyone => {
                        // Every open page refetches: worth seeing when it happens often.
                        tracing::debug!(version, last, "a change told to every open page");
                        self.inner.to_everyone.fetch_add(1, Ordering::Relaxed);
                        let _ = self.inner.shared.send(LiveEvent::Shared {
                            version: *version,
                            counts: None,
                        });
                    }
                }
            }
            (_, None) => {
                let _pages = self.pages();
                let _ = self.inner.shared.send(event);
            }
            (_, Some(user_id)) => {
                if let Some(streams) = self.users().get(&user_id) {
                    let _ = streams.events.send(event);
                }
            }
        }
    }

    /// Ends the streams of a user who logged out. Receivers only.
    pub fn end_user_streams(&self, user_id: UserId, _: &Receiving) {
        self.publish(LiveEvent::LoggedOut(user_id));
    }

    /// Every event the hub publishes, whoever it is for (tests and diagnostics; a page's
    /// stream hears only its own through [`Self::open_stream`]).
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.all.subscribe()
    }

    /// Registers a stream for `user_id`, unless the user or the server has too many open.
    pub fn open_stream(&self, user_id: UserId) -> Result<StreamGuard, Refused> {
        // Counted under the users' lock, so the total cannot overshoot either.
        let mut users = self.users();
        if self.inner.open.load(Ordering::Relaxed) >= self.inner.capacity.load(Ordering::Relaxed) {
            return Err(Refused::Full);
        }
        let streams = users.entry(user_id).or_insert_with(|| UserStreams {
            open: 0,
            events: broadcast::channel(USER_BACKLOG).0,
        });
        if streams.open >= STREAMS_PER_USER {
            return Err(Refused::TooManyForUser);
        }
        streams.open += 1;
        let own = streams.events.subscribe();
        self.inner.open.fetch_add(1, Ordering::Relaxed);
        Ok(StreamGuard {
            hub: self.clone(),
            user_id,
            shared: self.inner.shared.subscribe(),
            own,
        })
    }

    /// The shared version the cache starts from (before any bump is published).
    pub(crate) fn start_at(&self, version: u64) {
        self.pages().start_at(version);
    }

    /// Follows the list page showing `shown` (`None`: not known; it then hears every count
    /// change that can be patched).
    pub fn follow_page(&self, shown: Option<Vec<TopicId>>) -> PageFollow {
        PageFollow::join(&self.inner.pages, shown)
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Streams ended since start-up because they could not keep up.
    pub fn streams_dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Shared bumps since start-up: told as counts to the pages showing their topics, and
    /// told to every stream (each open page then refetches its list).
    pub fn shared_bumps(&self) -> (u64, u64) {
        (
            self.inner.to_pages.load(Ordering::Relaxed),
            self.inner.to_everyone.load(Ordering::Relaxed),
        )
    }

    /// Ends every stream (graceful shutdown must not wait for pages that never close).
    pub fn shut_down(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    pub(crate) fn pages(&self) -> MutexGuard<'_, Pages> {
        pages::lock(&self.inner.pages)
    }

    fn users(&self) -> MutexGuard<'_, HashMap<UserId, UserStreams>> {
        self.inner
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One open stream: what it hears, counted until dropped (the client went away or the
/// stream ended).
pub struct StreamGuard {
    hub: LiveHub,
    user_id: UserId,
    /// Bumps every user sees.
    pub shared: broadcast::Receiver<LiveEvent>,
    /// Bumps of this stream's user only (their flags, their logout).
    pub own: broadcast::Receiver<LiveEvent>,
}

impl StreamGuard {
    /// Counts this stream as ended for falling behind: its client did not take events as
    /// fast as they came, and buffering them for it without bound is what a server must not.
    pub fn fell_behind(&self) {
        self.hub.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut users = self.hub.users();
        if let Some(streams) = users.get_mut(&self.user_id) {
            streams.open = streams.open.saturating_sub(1);
            if streams.open == 0 {
                users.remove(&self.user_id);
            }
        }
        self.hub.inner.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Count;

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
    fn a_stream_hears_shared_bumps_and_its_own_users_only() {
        let hub = LiveHub::default();
        let mut alice = hub.open_stream(UserId(1)).expect("open");
        let mut bob = hub.open_stream(UserId(2)).expect("open");
        let flags = |user_id| LiveEvent::User {
            user_id,
            version: 4,
            flags: None,
        };
        hub.publish(flags(UserId(2)));
        hub.publish(LiveEvent::LoggedOut(UserId(2)));
        hub.publish(LiveEvent::Shared {
            version: 9,
            counts: None,
        });
        hub.publish(LiveEvent::AllUsers(3));
        assert_eq!(alice.own.try_recv().ok(), None, "nothing of Bob's");
        assert_eq!(bob.own.try_recv().ok(), Some(flags(UserId(2))));
        assert_eq!(
            bob.own.try_recv().ok(),
            Some(LiveEvent::LoggedOut(UserId(2)))
        );
        for stream in [&mut alice, &mut bob] {
            assert!(matches!(
                stream.shared.try_recv(),
                Ok(LiveEvent::Shared { version: 9, .. })
            ));
            assert_eq!(stream.shared.try_recv().ok(), Some(LiveEvent::AllUsers(3)));
            assert!(stream.shared.try_recv().is_err(), "nothing else");
        }
    }

    #[test]
    fn a_users_channel_lives_while_one_of_their_streams_does() {
        let hub = LiveHub::default();
        let first = hub.open_stream(UserId(1)).expect("open");
        let mut second = hub.open_stream(UserId(1)).expect("open");
        drop(first);
        hub.publish(LiveEvent::LoggedOut(UserId(1)));
        assert_eq!(
            second.own.try_recv().ok(),
            Some(LiveEvent::LoggedOut(UserId(1)))
        );
        drop(second);
        assert!(hub.users().is_empty(), "no channel kept for a user gone");
        // Published with no stream open: nobody hears it, and a later stream does not either.
        hub.publish(LiveEvent::LoggedOut(UserId(1)));
        let mut later = hub.open_stream(UserId(1)).expect("open");
        assert!(later.own.try_recv().is_err());
    }

    /// A bump of `version` that moved the topics' counts: `(topic, subscribers, version)`.
    fn counts(version: u64, counts: &[(i64, i64, i64)]) -> LiveEvent {
        LiveEvent::Shared {
            version,
            counts: Some(
                counts
                    .iter()
                    .map(|&(t, subscribers, version)| {
                        (
                            TopicId(t),
                            Count {
                                subscribers,
                                version,
                            },
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn a_count_change_reaches_only_the_pages_showing_its_topics_with_their_counts_only() {
        let hub = LiveHub::default();
        hub.publish(counts(10, &[]));
        let mut first = hub.follow_page(Some(vec![TopicId(3), TopicId(1)]));
        let mut second = hub.follow_page(Some(vec![TopicId(7)]));
        let mut unknown = hub.follow_page(None);
        let mut everyone = hub.open_stream(UserId(1)).expect("open");

        hub.publish(counts(11, &[(1, 5, 20), (9, 2, 4)]));
        assert_eq!(
            first.events.try_recv().ok(),
            Some(counts(11, &[(1, 5, 20)]))
        );
        assert!(second.events.try_recv().is_err(), "topic 7 did not move");
        assert_eq!(
            unknown.events.try_recv().ok(),
            Some(counts(11, &[(1, 5, 20), (9, 2, 4)]))
        );
        assert!(everyone.shared.try_recv().is_err(), "nobody refetches");

        // Out of the shared versions' order (two instances' commits that did not see each
        // other): still only the pages showing it, since each count carries its own version.
        hub.publish(counts(13, &[(7, 1, 3)]));
        hub.publish(counts(12, &[(1, 6, 21)]));
        assert_eq!(
            second.events.try_recv().ok(),
            Some(counts(13, &[(7, 1, 3)]))
        );
        assert_eq!(
            first.events.try_recv().ok(),
            Some(counts(12, &[(1, 6, 21)]))
        );
        assert!(everyone.shared.try_recv().is_err(), "nobody refetches");

        // Heard already (PostgreSQL: an instance hears its own commits twice), or older than
        // a count routed: dropped; what is newer in the same bump still goes.
        hub.publish(counts(14, &[(7, 1, 3), (1, 5, 20)]));
        assert!(second.events.try_recv().is_err());
        assert!(first.events.try_recv().is_err());
        hub.publish(counts(15, &[(7, 1, 3), (1, 7, 22)]));
        assert!(second.events.try_recv().is_err());
        assert_eq!(
            first.events.try_recv().ok(),
            Some(counts(15, &[(1, 7, 22)]))
        );

        // A bump that says nothing (a topic renamed, say): every stream hears it, once.
        let untold = |version| LiveEvent::Shared {
            version,
            counts: None,
        };
        hub.publish(untold(16));
        hub.publish(untold(16));
        hub.publish(untold(15));
        assert_eq!(everyone.shared.try_recv().ok(), Some(untold(16)));
        assert!(everyone.shared.try_recv().is_err(), "told already");
        assert!(second.events.try_recv().is_err());
    }

    #[test]
    fn streams_of_one_page_share_its_channel_while_one_of_them_is_open() {
        let hub = LiveHub::default();
        let one = hub.follow_page(Some(vec![TopicId(2), TopicId(1)]));
        let two = hub.follow_page(Some(vec![TopicId(1), TopicId(2)]));
        assert_eq!(hub.pages().followed(), 1, "the same topics, in any order");
        assert_eq!(
            one.topics().map(<[TopicId]>::as_ptr),
            two.topics().map(<[TopicId]>::as_ptr),
            "one copy of a page's topics for all its streams"
        );
        assert!(one.shows(TopicId(2)) && !one.shows(TopicId(3)));
        drop(one);
        assert_eq!(hub.pages().followed(), 1);
        drop(two);
        assert_eq!(
            hub.pages().followed(),
            0,
            "no channel kept for a page nobody follows"
        );
    }

    #[test]
    fn the_capacity_can_be_set_at_start_up() {
        let hub = LiveHub::with_capacity(1);
        let one = hub.open_stream(UserId(1)).expect("within capacity");
        assert_eq!(hub.open_stream(UserId(2)).err(), Some(Refused::Full));
        hub.set_capacity(2);
        assert!(hub.open_stream(UserId(2)).is_ok());
        drop(one);
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
