//! `GET /topics/events/`: a page's live stream (Server-Sent Events). It sends the versions of
//! what the user sees — at once on connect (so a reconnect after a restart catches up), then
//! whenever a committed change moves them — and ends on logout and on shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use app::ids::UserId;
use app::live::{LiveEvent, Refused, StreamGuard, ViewVersion};
use app::services::Services;
use app::web::AppState;

use crate::security::Member;

/// Comment lines this often keep proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How soon EventSource reconnects after the stream breaks.
const RECONNECT: Duration = Duration::from_secs(1);

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
        last: None,
        _guard: guard,
    };
    Sse::new(versions(follower))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

struct Follower {
    events: broadcast::Receiver<LiveEvent>,
    shutdown: watch::Receiver<bool>,
    services: Services,
    user_id: UserId,
    last: Option<ViewVersion>,
    _guard: StreamGuard,
}

impl Follower {
    /// The current version if it moved since the last one sent (versions only grow).
    fn moved(&mut self) -> Option<ViewVersion> {
        let now = self.services.view_version(self.user_id);
        (self.last != Some(now)).then(|| {
            self.last = Some(now);
            now
        })
    }

    async fn next_version(&mut self) -> Option<ViewVersion> {
        if self.last.is_none() {
            return self.moved();
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let relevant = tokio::select! {
                _ = self.shutdown.changed() => return None,
                received = self.events.recv() => match received {
                    Ok(LiveEvent::Shared(_) | LiveEvent::AllUsers(_))
                    | Err(RecvError::Lagged(_)) => true,
                    Ok(LiveEvent::User { user_id, .. }) => user_id == self.user_id,
                    Ok(LiveEvent::LoggedOut(user_id)) if user_id == self.user_id => return None,
                    Ok(LiveEvent::LoggedOut(_)) => false,
                    Err(RecvError::Closed) => return None,
                },
            };
            if relevant {
                if let Some(version) = self.moved() {
                    return Some(version);
                }
            }
        }
    }
}

fn versions(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follower, |mut follower| async move {
        let version = follower.next_version().await?;
        let event = Event::default()
            .event("version")
            .retry(RECONNECT)
            .json_data(version)
            .unwrap_or_else(|_| Event::default().comment("version unavailable"));
        Some((Ok(event), follower))
    })
}
