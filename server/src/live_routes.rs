//! `GET /topics/events/`: a page's live stream (Server-Sent Events). On connect it sends the
//! version of what the user sees (`version`), so a reconnect after a restart catches up. Then,
//! whenever committed changes move it: a `patch` with the new counts and flags when every
//! change said what moved (the page patches its rows, no request), else the new `version`
//! (the page refetches). At most one event per [`COALESCE`]. It ends on logout and shutdown.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use app::web::AppState;
use domain::ids::{TopicId, UserId};
use domain::live::{LiveEvent, Patch, Refused, StreamGuard, ViewVersion};
use domain::services::Services;

use crate::security::Member;

/// Comment lines this often keep proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How soon EventSource reconnects after the stream breaks.
const RECONNECT: Duration = Duration::from_secs(1);
/// A page is told at most this often: a burst of writes reaches it as one event, and the
/// work the server does for open pages stays bounded however often writes come.
const COALESCE: Duration = Duration::from_millis(250);

pub async fn events(State(state): State<AppState>, Member(user): Member) -> Response {
    let hub = state.services.live.clone();
    let guard = match hub.open_stream(user.id) {
        Ok(guard) => guard,
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
    // Subscribe before reading the first version, so no bump falls in between.
    let follower = Follower {
        events: hub.subscribe(),
        shutdown: hub.shutdown_signal(),
        services: state.services.clone(),
        user_id: user.id,
        told: None,
        heard: Heard::at(ViewVersion::default()),
        last_told: None,
        _guard: guard,
    };
    Sse::new(updates(follower))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

struct Follower {
    events: broadcast::Receiver<LiveEvent>,
    shutdown: watch::Receiver<bool>,
    services: Services,
    user_id: UserId,
    /// The version the page was last told (none before the first event).
    told: Option<ViewVersion>,
    heard: Heard,
    /// When the page was last told something: the next event waits [`COALESCE`] after it.
    last_told: Option<Instant>,
    _guard: StreamGuard,
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

/// What a stream heard since it last told its page: the version reached, and what moved on
/// the way while every bump said so.
#[derive(Debug)]
struct Heard {
    to: ViewVersion,
    counts: BTreeMap<TopicId, i64>,
    flags: BTreeMap<TopicId, bool>,
    /// A bump that did not say what moved, or one that was missed: the page refetches.
    untold: bool,
}

impl Heard {
    fn at(version: ViewVersion) -> Self {
        Heard {
            to: version,
            counts: BTreeMap::new(),
            flags: BTreeMap::new(),
            untold: false,
        }
    }

    /// Takes in one event of the hub; `user_id` is the page's user.
    fn hear(&mut self, event: &LiveEvent, user_id: UserId) -> Hearing {
        match event {
            LiveEvent::Shared { version, counts } => {
                match step(&mut self.to.shared, *version, counts.as_deref()) {
                    Step::Old => return Hearing::Nothing,
                    Step::Next(counts) => self.counts.extend(counts.iter().copied()),
                    Step::Untold => self.untold = true,
                }
                Hearing::Moved
            }
            LiveEvent::User {
                user_id: whose,
                version,
                flags,
            } if *whose == user_id => {
                match step(&mut self.to.user, *version, flags.as_deref()) {
                    Step::Old => return Hearing::Nothing,
                    Step::Next(flags) => self.flags.extend(flags.iter().copied()),
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

    /// What to tell a page that was told `told`, given the cache's version `now`; clears what
    /// was heard.
    fn take(&mut self, told: ViewVersion, now: ViewVersion) -> Option<Update> {
        let update = if self.untold {
            let version = ViewVersion {
                shared: self.to.shared.max(now.shared),
                user: self.to.user.max(now.user),
            };
            (version != told).then_some(Update::Version(version))
        } else {
            (self.to != told).then(|| {
                Update::Patch(Patch {
                    from: told,
                    to: self.to,
                    counts: std::mem::take(&mut self.counts).into_iter().collect(),
                    flags: std::mem::take(&mut self.flags).into_iter().collect(),
                })
            })
        };
        let to = match &update {
            Some(Update::Version(version)) => *version,
            Some(Update::Patch(patch)) => patch.to,
            None => told,
        };
        *self = Heard::at(to);
        update
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
    fn hear(&mut self, event: &LiveEvent) -> Hearing {
        self.heard.hear(event, self.user_id)
    }

    /// Waits for the next event of the hub that concerns this page.
    async fn next_relevant(&mut self) -> Option<()> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = self.shutdown.changed() => return None,
                received = self.events.recv() => match received {
                    Ok(event) => match self.hear(&event) {
                        Hearing::Nothing => {}
                        Hearing::Moved => return Some(()),
                        Hearing::End => return None,
                    },
                    Err(RecvError::Lagged(_)) => {
                        self.heard.missed();
                        return Some(());
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Takes in every event already waiting, without waiting for more.
    fn drain(&mut self) -> Option<()> {
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    if self.hear(&event) == Hearing::End {
                        return None;
                    }
                }
                Err(TryRecvError::Empty) => return Some(()),
                Err(TryRecvError::Lagged(_)) => self.heard.missed(),
                Err(TryRecvError::Closed) => return None,
            }
        }
    }

    async fn next_update(&mut self) -> Option<Update> {
        let Some(told) = self.told else {
            let now = self.services.view_version(self.user_id);
            self.told = Some(now);
            self.heard = Heard::at(now);
            self.last_told = Some(Instant::now());
            return Some(Update::Version(now));
        };
        let mut told = told;
        loop {
            self.next_relevant().await?;
            // A page is told at most once per COALESCE: what else arrives meanwhile waits in
            // the hub's buffer (no wake-up per write) and goes out with it, as one event.
            if let Some(due) = self.last_told.map(|last| last + COALESCE) {
                tokio::select! {
                    _ = self.shutdown.changed() => return None,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            self.drain()?;
            let now = self.services.view_version(self.user_id);
            if let Some(update) = self.heard.take(told, now) {
                told = match &update {
                    Update::Version(version) => *version,
                    Update::Patch(patch) => patch.to,
                };
                self.told = Some(told);
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

    fn counts(version: u64, counts: &[(i64, i64)]) -> LiveEvent {
        LiveEvent::Shared {
            version,
            counts: Some(counts.iter().map(|&(t, n)| (TopicId(t), n)).collect()),
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

    #[test]
    fn consecutive_described_bumps_merge_into_one_patch_with_the_latest_values() {
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(heard.hear(&counts(11, &[(1, 4)]), ALICE), Hearing::Moved);
        assert_eq!(
            heard.hear(&counts(12, &[(1, 5), (2, 1)]), ALICE),
            Hearing::Moved
        );
        assert_eq!(
            heard.hear(&flags(ALICE, 4, &[(2, true)]), ALICE),
            Hearing::Moved
        );
        let patch = patch_of(heard.take(at(10, 3), at(12, 4)));
        assert_eq!(patch.from, at(10, 3));
        assert_eq!(patch.to, at(12, 4));
        assert_eq!(patch.counts, vec![(TopicId(1), 5), (TopicId(2), 1)]);
        assert_eq!(patch.flags, vec![(TopicId(2), true)]);
        assert!(
            heard.take(at(12, 4), at(12, 4)).is_none(),
            "taking clears what was heard"
        );
    }

    #[test]
    fn other_users_flags_and_bumps_already_told_are_not_heard() {
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(
            heard.hear(&flags(UserId(2), 4, &[(1, true)]), ALICE),
            Hearing::Nothing
        );
        assert_eq!(heard.hear(&counts(10, &[(1, 4)]), ALICE), Hearing::Nothing);
        assert_eq!(
            heard.hear(&LiveEvent::LoggedOut(UserId(2)), ALICE),
            Hearing::Nothing
        );
        assert_eq!(
            heard.hear(&LiveEvent::LoggedOut(ALICE), ALICE),
            Hearing::End
        );
        assert!(heard.take(at(10, 3), at(10, 3)).is_none());
    }

    #[test]
    fn a_gap_an_untold_bump_or_a_missed_one_makes_the_page_refetch() {
        let version_of = |update: Option<Update>| match update {
            Some(Update::Version(version)) => version,
            _ => panic!("expected a plain version"),
        };
        // A bump skipped (another instance's, or one published out of order).
        let mut heard = Heard::at(at(10, 3));
        heard.hear(&counts(12, &[(1, 4)]), ALICE);
        assert_eq!(version_of(heard.take(at(10, 3), at(12, 3))), at(12, 3));
        // A bump that did not say what moved (a rename).
        let mut heard = Heard::at(at(10, 3));
        heard.hear(&counts(11, &[(1, 4)]), ALICE);
        heard.hear(
            &LiveEvent::Shared {
                version: 12,
                counts: None,
            },
            ALICE,
        );
        assert_eq!(version_of(heard.take(at(10, 3), at(12, 3))), at(12, 3));
        // Every user's version moved: the cache says to where.
        let mut heard = Heard::at(at(10, 3));
        assert_eq!(heard.hear(&LiveEvent::AllUsers(7), ALICE), Hearing::Moved);
        assert_eq!(version_of(heard.take(at(10, 3), at(10, 4))), at(10, 4));
        // The hub's buffer overflowed.
        let mut heard = Heard::at(at(10, 3));
        heard.missed();
        assert_eq!(version_of(heard.take(at(10, 3), at(11, 3))), at(11, 3));
        // Missed, but nothing moved after all: nothing to tell.
        let mut heard = Heard::at(at(10, 3));
        heard.missed();
        assert!(heard.take(at(10, 3), at(10, 3)).is_none());
        // After a refetch, described bumps are patches again.
        let mut heard = Heard::at(at(12, 3));
        heard.hear(&counts(13, &[(1, 2)]), ALICE);
        assert_eq!(
            patch_of(heard.take(at(12, 3), at(13, 3))).counts,
            vec![(TopicId(1), 2)]
        );
    }
}
