//! `GET /topics/events/`: a page's live stream (Server-Sent Events). On connect it sends the
//! version of what the user sees (`version`), so a reconnect after a restart catches up. Then,
//! whenever committed changes move what the page shows: a `patch` with the new counts and
//! flags when every change said what moved (the page patches its rows, no request), else the
//! new `version` (the page refetches). At most one event per [`COALESCE`]. It ends on logout
//! and shutdown, and when its client falls behind (the page reconnects and catches up).
//!
//! The page's query (`?page=2&q=rust`, as on `/topics/`) says which topics it shows. The hub
//! sends a stream only the count changes of those topics (`domain::live`'s pages), its own
//! user's flags are kept for those topics only, and a page none of whose rows moved is not
//! woken and told nothing.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use app::web::AppState;
use domain::ids::{TopicId, UserId};
use domain::live::{Count, LiveEvent, PageFollow, Patch, Refused, StreamGuard, ViewVersion};
use domain::services::Services;
use domain::topics::{topics_on_page, PageRequest};

use crate::security::Member;

/// Comment lines this often keep proxies from closing an idle stream: below the idle timeouts
/// proxies and load balancers commonly apply (55–60 s). Every open stream pays for it (at
/// 100,000 streams, 3,333 writes a second), so no more often. A closed tab does not wait for
/// it: the server sees the connection end (HTTP/1.1) or the stream reset (HTTP/2) at once.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How soon EventSource reconnects after the stream breaks.
const RECONNECT: Duration = Duration::from_secs(1);
/// A page is told at most this often: a burst of writes reaches it as one event, and the
/// work the server does for open pages stays bounded however often writes come.
const COALESCE: Duration = Duration::from_millis(250);

/// The page a stream follows, as the list page's URL gives it.
#[derive(Debug, Default, Deserialize)]
pub struct FollowedPage {
    page: Option<String>,
    q: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    Member(user): Member,
    Query(followed): Query<FollowedPage>,
) -> Response {
    let hub = state.services.live.clone();
    let stream = match hub.open_stream(user.id) {
        Ok(stream) => stream,
        Err(Refused::TooManyForUser) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many open pages are following live updates. Close one and reload.",
            )
                .into_response();
        }
        Err(Refused::Full) => {
            // EventSource retries by itself; the page works meanwhile, only not live.
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "30")],
                "The server follows as many open pages as it can right now.",
            )
                .into_response();
        }
    };
    // The first version sent is the database's when versions live there (another instance
    // may have moved them since this one last looked).
    if state.services.catch_up(user.id).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "The database cannot be reached right now.",
        )
            .into_response();
    }
    // The page's topics, read with the catalog if none is cached (with them unknown the
    // stream would be told every count); the page works on if that fails, told of all.
    let page = PageRequest::from_query(followed.page.as_deref(), followed.q);
    let shown = topics_on_page(&state.services, user.id, &page).await.ok();
    // The stream listens from here on, before the first version is read, so no bump falls
    // in between.
    let follower = Follower::new(&state.services, user.id, page, shown, stream);
    Sse::new(updates(follower))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

struct Follower {
    /// What the hub routes to this stream: bumps no page can patch, and this user's own.
    stream: StreamGuard,
    /// The count changes of the topics the page shows.
    page: PageFollow,
    shutdown: watch::Receiver<bool>,
    services: Services,
    user_id: UserId,
    request: PageRequest,
    /// Whether the first event (the current version) went out; what was told since is
    /// `heard.from`.
    opened: bool,
    heard: Heard,
    /// When the page was last told something: the next event waits [`COALESCE`] after it.
    last_told: Option<Instant>,
}

/// What a stream tells its page next.
enum Update {
    /// The current version: the page refetches if it shows an older one.
    Version(ViewVersion),
    /// What moved since the version last told, for the page to patch its rows.
    Patch(Patch),
}

/// What happened to the page's stream.
#[derive(Debug, PartialEq, Eq)]
enum Hearing {
    Nothing,
    Moved,
    End,
}

/// What a stream heard since it last told its page (`from`): the version reached, and what
/// moved on the way (of the topics the page shows) while every bump said so. Counts do not
/// move the version: each carries its own, and the page keeps the newer count per row.
#[derive(Debug)]
struct Heard {
    from: ViewVersion,
    to: ViewVersion,
    counts: BTreeMap<TopicId, Count>,
    flags: BTreeMap<TopicId, bool>,
    /// A bump that did not say what moved, or one that was missed: the page refetches.
    untold: bool,
}

/// Whether a page showing `shown` (sorted; `None`: unknown) shows `topic`.
fn on_page(shown: Option<&[TopicId]>, topic: TopicId) -> bool {
    shown.is_none_or(|shown| shown.binary_search(&topic).is_ok())
}

impl Heard {
    fn at(version: ViewVersion) -> Self {
        Heard {
            from: version,
            to: version,
            counts: BTreeMap::new(),
            flags: BTreeMap::new(),
            untold: false,
        }
    }

    /// Takes in one event of the hub; `user_id` is the page's user, `shown` its topics.
    ///
    /// Counts need no check for gaps: each is placed by its own version. A shared bump that
    /// says nothing is heard once it is newer than what the page was told.
    fn hear(&mut self, event: &LiveEvent, user_id: UserId, shown: Option<&[TopicId]>) -> Hearing {
        match event {
            LiveEvent::Shared {
                counts: Some(counts),
                ..
            } => {
                let mut moved = Hearing::Nothing;
                for &(topic, count) in counts.iter() {
                    if !on_page(shown, topic) {
                        continue;
                    }
                    let held = self.counts.entry(topic).or_insert(count);
                    if count.is_newer_than(held) {
                        *held = count;
                    }
                    moved = Hearing::Moved;
                }
                moved
            }
            LiveEvent::Shared {
                version,
                counts: None,
            } => {
                if *version <= self.from.shared {
                    return Hearing::Nothing;
                }
                self.to.shared = self.to.shared.max(*version);
                self.untold = true;
                Hearing::Moved
            }
            LiveEvent::User {
                user_id: whose,
                version,
                flags,
            } if *whose == user_id => {
                match step(&mut self.to.user, *version, flags.as_deref()) {
                    Step::Old => return Hearing::Nothing,
                    Step::Next(flags) => self.flags.extend(
                        flags
                            .iter()
                            .copied()
                            .filter(|&(topic, _)| on_page(shown, topic)),
                    ),
                    Step::Untold => self.untold = true,
                }
                Hearing::Moved
            }
            LiveEvent::User { .. } => Hearing::Nothing,
            // Every user's version moved by one; which one that is comes from the cache.
            LiveEvent::AllUsers(_) => {
                self.untold = true;
                Hearing::Moved
            }
            LiveEvent::LoggedOut(whose) if *whose == user_id => Hearing::End,
            LiveEvent::LoggedOut(_) => Hearing::Nothing,
        }
    }

    /// A stream that fell behind the hub's buffer missed bumps.
    fn missed(&mut self) {
        self.untold = true;
    }

    /// Leaves out what was heard of topics the page does not show (heard before that was
    /// known).
    fn keep_only(&mut self, shown: &[TopicId]) {
        self.counts.retain(|&topic, _| on_page(Some(shown), topic));
        self.flags.retain(|&topic, _| on_page(Some(shown), topic));
    }

    /// What to tell a page that was told `from`, given the cache's version `now`; clears
    /// what was heard. Nothing, when nothing the page shows moved: the page stays at `from`
    /// and a later patch leads from there.
    fn take(&mut self, now: ViewVersion) -> Option<Update> {
        let told = self.from;
        if self.untold {
            let version = self.to.max_with(&now);
            if version != told {
                *self = Heard::at(version);
                return Some(Update::Version(version));
            }
            // Missed, but nothing moved after all: what was heard still goes as a patch.
            self.untold = false;
        }
        if self.counts.is_empty() && self.flags.is_empty() {
            return None;
        }
        let patch = Patch {
            from: told.user,
            to: self.to.user,
            counts: std::mem::take(&mut self.counts).into_iter().collect(),
            flags: std::mem::take(&mut self.flags).into_iter().collect(),
        };
        *self = Heard::at(self.to);
        Some(Update::Patch(patch))
    }
}

/// A bump of one part of the version (shared or the user's), against what was heard so far.
enum Step<'a, T> {
    /// Heard already.
    Old,
    /// The very next version, saying what moved.
    Next(&'a [T]),
    /// Newer, but after a gap or without saying what moved.
    Untold,
}

/// Moves `heard` (one part of the version heard) to `version` if that is newer.
fn step<'a, T>(heard: &mut u64, version: u64, moved: Option<&'a [T]>) -> Step<'a, T> {
    if version <= *heard {
        return Step::Old;
    }
    let next = version == *heard + 1;
    *heard = version;
    match moved {
        Some(moved) if next => Step::Next(moved),
        _ => Step::Untold,
    }
}

impl Follower {
    /// The stream of the page showing `shown` (`None`: not known) of `request`.
    fn new(
        services: &Services,
        user_id: UserId,
        request: PageRequest,
        shown: Option<Vec<TopicId>>,
        stream: StreamGuard,
    ) -> Self {
        let page = services.live.follow_page(shown);
        Follower {
            stream,
            page,
            shutdown: services.live.shutdown_signal(),
            services: services.clone(),
            user_id,
            request,
            opened: false,
            heard: Heard::at(ViewVersion::default()),
            last_told: None,
        }
    }

    fn hear(&mut self, event: &LiveEvent) -> Hearing {
        self.heard.hear(event, self.user_id, self.page.topics())
    }

    /// Takes in what a receiver gave while the stream waited for it. Falling behind then
    /// means the client did not take what it was sent: the stream ends.
    fn waited_for(&mut self, received: Result<LiveEvent, RecvError>) -> Option<Hearing> {
        match received {
            Ok(event) => Some(self.hear(&event)),
            Err(RecvError::Lagged(_)) => {
                self.stream.fell_behind();
                None
            }
            Err(RecvError::Closed) => None,
        }
    }

    /// Waits for the next event of the hub that concerns this page.
    async fn next_relevant(&mut self) -> Option<()> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            // In this order: a stream not polled for long finds its page's or its user's
            // channel overrun before the one for everyone, which carries the fewest bumps.
            let hearing = tokio::select! {
                biased;
                _ = self.shutdown.changed() => return None,
                received = self.page.events.recv() => self.waited_for(received)?,
                received = self.stream.own.recv() => self.waited_for(received)?,
                received = self.stream.shared.recv() => self.waited_for(received)?,
            };
            match hearing {
                Hearing::Nothing => {}
                Hearing::Moved => return Some(()),
                Hearing::End => return None,
            }
        }
    }

    /// Takes in every event already waiting, without waiting for more. Falling behind here
    /// is a burst of writes while the stream coalesced: the page refetches.
    ///
    /// The page's and the user's channels are read before the one every stream hears, round
    /// after round until all are empty: whatever the hub published before a bump this
    /// stream heard is then heard too (it publishes under one lock, in order).
    fn drain(&mut self) -> Option<()> {
        let Follower {
            page,
            stream,
            heard,
            user_id,
            ..
        } = self;
        let (page_events, shown) = page.parts();
        loop {
            let mut heard_any = false;
            for receiver in [&mut *page_events, &mut stream.own, &mut stream.shared] {
                loop {
                    match receiver.try_recv() {
                        Ok(event) => {
                            heard_any = true;
                            if heard.hear(&event, *user_id, shown) == Hearing::End {
                                return None;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(_)) => {
                            heard_any = true;
                            heard.missed();
                        }
                        Err(TryRecvError::Closed) => return None,
                    }
                }
            }
            if !heard_any {
                return Some(());
            }
        }
    }

    /// Follows the topics the page shows now (before the version the page is told is read:
    /// what moves after it reaches this stream), reading the catalog if the change that made
    /// the page refetch dropped it: with its topics unknown the stream would be told every
    /// count until it next looked.
    async fn follow_page_anew(&mut self) {
        let shown = topics_on_page(&self.services, self.user_id, &self.request)
            .await
            .ok();
        let unknown = self.page.topics().is_none();
        if shown.is_none() && unknown {
            return;
        }
        let mut page = self.services.live.follow_page(shown);
        std::mem::swap(&mut self.page, &mut page);
        // What the old channel still holds was sent before the new one was joined.
        if unknown && !self.heard.untold {
            while let Ok(event) = page.events.try_recv() {
                self.heard.hear(&event, self.user_id, None);
            }
            if let Some(shown) = self.page.topics() {
                self.heard.keep_only(shown);
            }
        }
    }

    async fn next_update(&mut self) -> Option<Update> {
        if !self.opened {
            let now = self.services.view_version(self.user_id);
            self.opened = true;
            self.heard = Heard::at(now);
            self.last_told = Some(Instant::now());
            return Some(Update::Version(now));
        }
        loop {
            self.next_relevant().await?;
            // A page is told at most once per COALESCE: what else arrives meanwhile waits in
            // the hub's buffers (no wake-up per write) and goes out with it, as one event.
            if let Some(due) = self.last_told.map(|last| last + COALESCE) {
                tokio::select! {
                    _ = self.shutdown.changed() => return None,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            self.drain()?;
            // A page about to refetch may show other topics; a page whose topics were not
            // known may be known now.
            if self.heard.untold || self.page.topics().is_none() {
                self.follow_page_anew().await;
            }
            let now = self.services.view_version(self.user_id);
            if let Some(update) = self.heard.take(now) {
                self.last_told = Some(Instant::now());
                return Some(update);
            }
        }
    }
}

fn updates(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follower, |mut follower| async move {
        let update = follower.next_update().await?;
        let event = match update {
            Update::Version(version) => Event::default().event("version").json_data(version),
            Update::Patch(patch) => Event::default().event("patch").json_data(patch),
        }
        .map(|event| event.retry(RECONNECT))
        .unwrap_or_else(|_| Event::default().comment("update unavailable"));
        Some((Ok(event), follower))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);

    fn at(shared: u64, user: u64) -> ViewVersion {
        ViewVersion { shared, user }
    }

    /// `(topic, subscribers, count version)`.
    fn counts(version: u64, counts: &[(i64, i64, i64)]) -> LiveEvent {
        LiveEvent::Shared {
            version,
            counts: Some(
                counts
                    .iter()
                    .map(|&(t, subscribers, version)| (TopicId(t), count(subscribers, version)))
                    .collect(),
            ),
        }
    }

    fn count(subscribers: i64, version: i64) -> Count {
        Count {
            subscribers,
            version,
        }
    }

    fn flags(user_id: UserId, version: u64, flags: &[(i64, bool)]) -> LiveEvent {
        LiveEvent::User {
            user_id,
            version,
            flags: Some(flags.iter().map(|&(t, f)| (TopicId(t), f)).collect()),
        }
    }

    fn patch_of(update: Option<Update>) -> Patch {
        match update {
            Some(Update::Patch(patch)) => patch,
            Some(Update::Version(version)) => panic!("expected a patch, got version {version:?}"),
            None => panic!("expected a patch, got nothing"),
        }
    }

    #[tokio::test]
    async fn a_stream_whose_client_stops_taking_events_ends_and_is_counted() {
        let (_place, services) = domain::testing::test_services().await;
        let alice = domain::testing::account(&services.db, "alice", false).await;
        // The test database holds the seeded topics.
        let listing = domain::topics::list(&services, alice.id, PageRequest::default())
            .await
            .expect("list");
        let python = listing.topics[0].id;
        let stream = services.live.open_stream(alice.id).expect("open");
        let mut follower = Follower::new(&services, alice.id, PageRequest::default(), None, stream);
        assert!(matches!(
            follower.next_update().await,
            Some(Update::Version(_))
        ));
        // The client takes nothing (its stream is not polled) while more bumps come than the
        // hub keeps for it.
        for _ in 0..150 {
            domain::subscriptions::subscribe(&services, alice.id, python)
                .await
                .expect("subscribe");
            domain::subscriptions::unsubscribe(&services, alice.id, python)
                .await
                .expect("unsubscribe");
        }
        assert!(follower.next_update().await.is_none(), "the stream ends");
        assert_eq!(services.live.streams_dropped(), 1);
        drop(follower);
        assert_eq!(services.live.open_streams(), 0);
    }

    #[test]
    fn described_bumps_merge_into_one_patch_with_the_newest_counts_in_any_order() {
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(
            heard.hear(&counts(11, &[(1, 4, 40)]), ALICE, None),
            Hearing::Moved
        );
        assert_eq!(
            heard.hear(&counts(13, &[(1, 5, 41), (2, 1, 7)]), ALICE, None),
            Hearing::Moved
        );
        // Committed before the bump above, told after it (another instance's commit).
        assert_eq!(
            heard.hear(&counts(12, &[(2, 2, 6)]), ALICE, None),
            Hearing::Moved
        );
        assert_eq!(
            heard.hear(&flags(ALICE, 4, &[(2, true)]), ALICE, None),
            Hearing::Moved
        );
        let patch = patch_of(heard.take(at(13, 4)));
        assert_eq!((patch.from, patch.to), (3, 4), "the user's versions");
        assert_eq!(
            patch.counts,
            vec![(TopicId(1), count(5, 41)), (TopicId(2), count(1, 7))]
        );
        assert_eq!(patch.flags, vec![(TopicId(2), true)]);
        assert!(
            heard.take(at(13, 4)).is_none(),
            "taking clears what was heard"
        );
        assert_eq!(heard.from, at(10, 4), "counts leave the shared version");
    }

    #[test]
    fn other_users_flags_and_bumps_already_told_are_not_heard() {
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(
            heard.hear(&flags(UserId(2), 4, &[(1, true)]), ALICE, None),
            Hearing::Nothing
        );
        let untold = |version| LiveEvent::Shared {
            version,
            counts: None,
        };
        assert_eq!(heard.hear(&untold(10), ALICE, None), Hearing::Nothing);
        assert_eq!(
            heard.hear(&LiveEvent::LoggedOut(UserId(2)), ALICE, None),
            Hearing::Nothing
        );
        assert_eq!(
            heard.hear(&LiveEvent::LoggedOut(ALICE), ALICE, None),
            Hearing::End
        );
        assert!(heard.take(at(10, 3)).is_none());
    }

    #[test]
    fn a_page_hears_only_of_the_topics_it_shows() {
        let shown = [TopicId(2), TopicId(5)];
        let mut heard = Heard::at(at(10, 3));
        // Topic 1 and Alice's flag of topic 7 are on other pages.
        assert_eq!(
            heard.hear(&counts(11, &[(1, 4, 4)]), ALICE, Some(&shown)),
            Hearing::Nothing
        );
        heard.hear(&flags(ALICE, 4, &[(7, true)]), ALICE, Some(&shown));
        assert!(
            heard.take(at(11, 4)).is_none(),
            "nothing the page shows moved: it is told nothing"
        );
        heard.hear(&counts(12, &[(1, 5, 5), (5, 9, 9)]), ALICE, Some(&shown));
        let patch = patch_of(heard.take(at(12, 4)));
        assert_eq!(
            (patch.from, patch.to),
            (3, 4),
            "from what the page was told, to the user's version heard, off the page too"
        );
        assert_eq!(patch.counts, vec![(TopicId(5), count(9, 9))]);
        assert!(patch.flags.is_empty());
        // Heard before the page's topics were known: left out once they are.
        let mut heard = Heard::at(at(12, 4));
        heard.hear(&counts(13, &[(1, 6, 6), (2, 1, 1)]), ALICE, None);
        heard.keep_only(&shown);
        assert_eq!(
            patch_of(heard.take(at(13, 4))).counts,
            vec![(TopicId(2), count(1, 1))]
        );
    }

    #[test]
    fn a_gap_an_untold_bump_or_a_missed_one_makes_the_page_refetch() {
        let version_of = |update: Option<Update>| match update {
            Some(Update::Version(version)) => version,
            _ => panic!("expected a plain version"),
        };
        // A bump of the user's own skipped.
        let mut heard = Heard::at(at(10, 3));
        heard.hear(&flags(ALICE, 5, &[(1, true)]), ALICE, None);
        assert_eq!(version_of(heard.take(at(10, 3))), at(10, 5));
        // A bump that did not say what moved (a rename).
        let mut heard = Heard::at(at(10, 3));
        heard.hear(&counts(11, &[(1, 4, 4)]), ALICE, None);
        heard.hear(
            &LiveEvent::Shared {
                version: 12,
                counts: None,
            },
            ALICE,
            None,
        );
        assert_eq!(version_of(heard.take(at(12, 3))), at(12, 3));
        // Every user's version moved: the cache says to where.
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(
            heard.hear(&LiveEvent::AllUsers(7), ALICE, None),
            Hearing::Moved
        );
        assert_eq!(version_of(heard.take(at(10, 4))), at(10, 4));
        // The hub's buffer overflowed.
        let mut heard = Heard::at(at(10, 3));
        heard.missed();
        assert_eq!(version_of(heard.take(at(11, 3))), at(11, 3));
        // Missed, but nothing moved after all: nothing to tell, or only what was heard.
        let mut heard = Heard::at(at(10, 3));
        heard.missed();
        assert!(heard.take(at(10, 3)).is_none());
        heard.missed();
        heard.hear(&counts(11, &[(1, 2, 2)]), ALICE, None);
        assert_eq!(
            patch_of(heard.take(at(10, 3))).counts,
            vec![(TopicId(1), count(2, 2))]
        );
        // After a refetch, described bumps are patches again.
        let mut heard = Heard::at(at(12, 3));
        heard.hear(&counts(13, &[(1, 2, 3)]), ALICE, None);
        assert_eq!(
            patch_of(heard.take(at(13, 3))).counts,
            vec![(TopicId(1), count(2, 3))]
        );
    }
}
