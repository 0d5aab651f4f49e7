//! One open page of the load: its user's session, the stream it follows, and the requests
//! a page makes (log in, fetch the list, toggle a subscription).
//!
//! A session is a connection pool and a cookie: over HTTP/1.1 each user has pools of their
//! own (a browser: one connection per open stream), over HTTP/2 many users' requests share a
//! few connections, as behind a proxy that multiplexes its upstream connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use domain::live::{Patch, ViewVersion};
use domain::topics::TopicListing;
use reqwest::header::{HeaderValue, COOKIE, RETRY_AFTER, SET_COOKIE};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Counters, Seen, PASSWORD};

/// A logged-in user: where their requests go and the cookie they carry.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) client: reqwest::Client,
    pub(crate) cookie: HeaderValue,
}

impl Session {
    fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.client.get(url).header(COOKIE, self.cookie.clone())
    }

    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.client.post(url).header(COOKIE, self.cookie.clone())
    }
}

/// A client without a cookie jar (sessions carry their cookie); `http2`: HTTP/2 from the
/// first byte, all requests on one connection.
pub(crate) fn client(http2: bool) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder
    };
    builder.build().map_err(|e| e.to_string())
}

/// One open page: its user's session and the list page it shows, following the stream.
pub(crate) struct Page {
    pub(crate) session: Session,
    pub(crate) page: usize,
    pub(crate) base: String,
    pub(crate) counters: Arc<Counters>,
}

impl Page {
    /// Follows the stream until told to stop; what the page held, and when.
    pub(crate) async fn follow(
        self,
        opening: Arc<tokio::sync::Semaphore>,
        opened: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
        mut stopped: watch::Receiver<bool>,
    ) -> Vec<Seen> {
        let mut history = Vec::new();
        // Opened a few at a time, as pages of a crowd arriving, not all in one instant.
        let mut permit = opening.acquire().await.ok();
        let mut response = match self.open().await {
            Ok(response) => response,
            Err(err) => {
                let _ = opened.send(Err(err));
                return history;
            }
        };
        let mut buffer = String::new();
        let mut held: Option<ViewVersion> = None;
        loop {
            let chunk = tokio::select! {
                _ = stopped.changed() => return history,
                chunk = response.chunk() => chunk,
            };
            let Ok(Some(bytes)) = chunk else {
                if held.is_none() {
                    let _ = opened.send(Err("a stream ended before its first event".into()));
                }
                return history;
            };
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let data = block.lines().find_map(|line| line.strip_prefix("data: "));
                let (Some(data), Some(kind)) =
                    (data, block.lines().find_map(|l| l.strip_prefix("event: ")))
                else {
                    continue; // a heartbeat
                };
                let refetch = match kind {
                    "patch" => {
                        self.counters.patches.fetch_add(1, Ordering::Relaxed);
                        let Ok(patch) = serde_json::from_str::<Patch>(data) else {
                            continue;
                        };
                        let Some(shown) = held else {
                            continue;
                        };
                        // Counts apply to any list shown; the flags only when they lead from
                        // the user's version shown.
                        let applies = patch.flags_apply_to(&shown);
                        if applies {
                            held = Some(patch.after(&shown));
                        }
                        history.push(Seen {
                            at: Instant::now(),
                            user: held.map_or(0, |held| held.user),
                            counts: patch
                                .counts
                                .iter()
                                .map(|&(topic, count)| (topic, count.version))
                                .collect(),
                        });
                        !applies && patch.to > shown.user
                    }
                    _ => {
                        self.counters.versions.fetch_add(1, Ordering::Relaxed);
                        let Ok(version) = serde_json::from_str::<ViewVersion>(data) else {
                            continue;
                        };
                        match held {
                            None => {
                                // The first event: the page was just loaded at this version.
                                held = Some(version);
                                drop(permit.take());
                                let _ = opened.send(Ok(()));
                                false
                            }
                            Some(shown) => version.is_newer_than(&shown),
                        }
                    }
                };
                if !refetch {
                    continue;
                }
                self.counters.refetches.fetch_add(1, Ordering::Relaxed);
                match list(&self.session, &self.base, self.page).await {
                    Ok(listing) => {
                        held = Some(listing.version);
                        history.push(Seen {
                            at: Instant::now(),
                            user: listing.version.user,
                            counts: listing
                                .topics
                                .iter()
                                .map(|topic| (topic.id, topic.count_version))
                                .collect(),
                        });
                    }
                    Err(_) => {
                        self.counters
                            .failed_refetches
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Opens the page's stream. A `503` is tried again after its `Retry-After`, as
    /// EventSource does (counted); any other refusal ends the run.
    async fn open(&self) -> Result<reqwest::Response, String> {
        let url = format!("{}/topics/events/?page={}", self.base, self.page);
        for _ in 0..OPEN_ATTEMPTS {
            let response = self
                .session
                .get(url.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match response.status() {
                reqwest::StatusCode::OK => return Ok(response),
                reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    self.counters.open_retries.fetch_add(1, Ordering::Relaxed);
                    let wait = retry_after(&response).min(MAX_RETRY_WAIT);
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(refused("the stream", response).await),
            }
        }
        Err(format!("the stream was refused {OPEN_ATTEMPTS} times: 503"))
    }
}

/// How often a stream's opening is tried while the server answers `503`.
const OPEN_ATTEMPTS: usize = 20;
/// The longest wait between two tries, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// What a refused request reports: its status and the start of the server's message.
async fn refused(what: &str, response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message: String = body.chars().take(120).collect();
    format!("{what}: {status} {message}")
}

/// Logs in benchmark user `n` through `client`.
pub(crate) async fn log_in(
    client: reqwest::Client,
    base: &str,
    n: usize,
) -> Result<Session, String> {
    let response = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", format!("bench{n}").as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::SEE_OTHER {
        return Err(format!("login of bench{n}: {}", response.status()));
    }
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.split(';').next().filter(|pair| pair.contains('=')))
        .ok_or_else(|| format!("login of bench{n}: no session cookie"))?;
    let cookie = HeaderValue::from_str(cookie).map_err(|e| e.to_string())?;
    Ok(Session { client, cookie })
}

/// A page of the list, as an open page refetches it (its server function).
pub(crate) async fn list(
    session: &Session,
    base: &str,
    page: usize,
) -> Result<TopicListing, String> {
    let response = session
        .post(format!("{base}/api/list_topics"))
        .form(&[
            ("request[page]", page.to_string().as_str()),
            ("request[query]", ""),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(refused("list_topics", response).await);
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

pub(crate) async fn toggle(
    session: &Session,
    base: &str,
    topic_id: i64,
    subscribe: bool,
) -> Result<ViewVersion, String> {
    let action = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    let response = session
        .post(format!("{base}/api/{action}"))
        .form(&[("topic_id", topic_id.to_string())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(refused(action, response).await);
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
