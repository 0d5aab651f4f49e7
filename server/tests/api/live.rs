//! The live stream (`/topics/events/`) over HTTP against the real server binary.

use std::time::Duration;

use std::collections::HashMap;

use crate::support::{header, member, TestClient, TestServer};
use domain::ids::TopicId;
use domain::live::{Count, Patch, ViewVersion};
use domain::topics::TopicListing;
use reqwest::StatusCode;

/// How long an expected event may take: a debug build on a loaded CI machine. Waits return
/// as soon as the event arrives, so this only lengthens a failing run.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Reads `version` and `patch` events from an open stream.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, PartialEq)]
pub enum Next {
    Version(ViewVersion),
    Patch(Patch),
    Ended,
    Quiet,
}

impl Events {
    pub async fn open(client: &TestClient) -> Events {
        Events::open_at(client, "/topics/events/").await
    }

    /// The stream of the list page `path` names (`/topics/events/?page=…&q=…`).
    pub async fn open_at(client: &TestClient, path: &str) -> Events {
        let response = client.get(path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), "text/event-stream");
        Events {
            response,
            buffer: String::new(),
        }
    }

    pub async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data = block
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .map(str::to_owned);
                if block.lines().any(|line| line == "event: version") {
                    let data = data.expect("a version event has data");
                    return Next::Version(serde_json::from_str(&data).expect("version json"));
                }
                if block.lines().any(|line| line == "event: patch") {
                    let data = data.expect("a patch event has data");
                    return Next::Patch(serde_json::from_str(&data).expect("patch json"));
                }
                continue; // a heartbeat comment
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Next::Ended,
            }
        }
    }

    /// The next event, expected to be a plain version (the first one, or a refetch).
    pub async fn version(&mut self) -> ViewVersion {
        match self.next(PATIENCE).await {
            Next::Version(version) => version,
            other => panic!("expected a version within {PATIENCE:?}, got {other:?}"),
        }
    }

    /// The next event, expected to be a patch.
    pub async fn patch(&mut self) -> Patch {
        match self.next(PATIENCE).await {
            Next::Patch(patch) => patch,
            other => panic!("expected a patch within {PATIENCE:?}, got {other:?}"),
        }
    }
}

fn newer(after: ViewVersion, before: ViewVersion) -> bool {
    after.shared >= before.shared
        && after.user >= before.user
        && (after.shared > before.shared || after.user > before.user)
}

#[tokio::test]
async fn other_users_changes_arrive_after_commit_and_only_grow() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let mut events = Events::open(&alice).await;
    let mut last = events.version().await;
    let python = bob.topic_id("Python").await;

    let steps: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/topics/subscribe/{python}/"), vec![]),
        ("/topics/create/".into(), vec![("name", "Rust")]),
        (format!("/topics/unsubscribe/{python}/"), vec![]),
        ("/topics/create/".into(), vec![("name", "Go")]),
    ];
    let mut python_count = Count::default();
    for (path, form) in steps {
        bob.post_listed(&path, &form).await;
        // Pushed after commit: the page it triggers already shows the change.
        let page = alice.topics().await;
        match path.as_str() {
            "/topics/create/" => {
                let pushed = events.version().await;
                assert!(newer(pushed, last), "{pushed:?} after {last:?} ({path})");
                last = pushed;
                let name = form[0].1;
                assert!(
                    page.iter().any(|t| t.1 == name),
                    "{name} visible when pushed"
                );
            }
            p => {
                // A count: told with its own version, which only grows; Alice's own version
                // stays.
                let patch = events.patch().await;
                assert_eq!((patch.from, patch.to), (last.user, last.user), "{patch:?}");
                let [(topic, count)] = patch.counts[..] else {
                    panic!("one count: {patch:?}");
                };
                assert_eq!(topic, TopicId(python));
                assert!(
                    count.is_newer_than(&python_count),
                    "{count:?} after {python_count:?}"
                );
                python_count = count;
                let subscribers = i64::from(p.starts_with("/topics/subscribe/"));
                assert_eq!(count.subscribers, subscribers);
                assert!(page.contains(&(python, "Python".into(), subscribers, false)));
            }
        }
    }

    // The user's own change moves the user part as well.
    alice.subscribe(python).await;
    let own = events.patch().await;
    assert!(own.to > last.user, "{own:?} after {last:?}");
    assert_eq!(own.flags, vec![(TopicId(python), true)]);
}

#[tokio::test]
async fn a_change_that_fails_sends_nothing() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let mut events = Events::open(&alice).await;
    let first = events.version().await;

    let refused = bob
        .post_form("/topics/create/", &[("name", "python")])
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let no_op = bob.post_form("/topics/unsubscribe-all/", &[]).await;
    assert_eq!(no_op.status(), StatusCode::SEE_OTHER);
    assert_eq!(events.next(Duration::from_millis(800)).await, Next::Quiet);

    bob.post_listed("/topics/create/", &[("name", "Real")])
        .await;
    assert!(newer(events.version().await, first));
}

#[tokio::test]
async fn streams_are_bounded_counted_and_freed() {
    let (server, alice) = TestServer::with_member("alice").await;
    let mut open = Vec::new();
    for _ in 0..domain::live::STREAMS_PER_USER {
        let mut events = Events::open(&alice).await;
        events.version().await;
        open.push(events);
    }
    let refused = alice.get("/topics/events/").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        server.metric("live_streams").await,
        domain::live::STREAMS_PER_USER as u64
    );

    drop(open);
    // The server notices a closed connection when it reads its end, long before the next
    // heartbeat (30 s): within the 25 s waited here.
    let mut streams = u64::MAX;
    for _ in 0..250 {
        streams = server.metric("live_streams").await;
        if streams == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(streams, 0, "closing the pages freed their streams");

    let anonymous = server.client().get("/topics/events/").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logout_ends_the_users_streams() {
    let (_server, alice) = TestServer::with_member("alice").await;
    let mut events = Events::open(&alice).await;
    events.version().await;
    alice.post_listed("/logout", &[]).await;
    assert_eq!(events.next(PATIENCE).await, Next::Ended);
}

#[tokio::test]
async fn shutdown_ends_streams_and_a_reconnect_catches_up() {
    let (server, alice) = TestServer::with_member("alice").await;
    let mut events = Events::open(&alice).await;
    let before = events.version().await;

    let db = server.stop(); // asserts a clean exit within the deadline
    assert_eq!(events.next(PATIENCE).await, Next::Ended);

    let restarted = TestServer::start_on(&db);
    let client = alice.against(&restarted);
    let mut again = Events::open(&client).await;
    let after = again.version().await;
    assert!(
        after.shared >= before.shared && after.user >= before.user,
        "versions never go backwards across a restart: {after:?} after {before:?}"
    );
    if !db.is_postgres() {
        // In memory they start from the boot time; on PostgreSQL they are the stored ones.
        assert!(after.shared > before.shared && after.user > before.user);
    }
}

/// Rows as the test client reads them from a page: (id, name, subscribers, subscribed).
type Rows = Vec<(i64, String, i64, bool)>;

/// An open list page (the first) as the browser holds it (`app::topics::page`): the list it
/// read, patched by what it is pushed, and the newest count pushed per topic, which a list
/// read before that count moved takes on arrival.
struct OpenPage {
    listing: TopicListing,
    pushed: HashMap<TopicId, Count>,
}

impl OpenPage {
    async fn read(client: &TestClient) -> OpenPage {
        OpenPage {
            listing: client.list_topics().await,
            pushed: HashMap::new(),
        }
    }

    fn rows(&self) -> Rows {
        crate::support::rows_of(&self.listing)
    }

    async fn refetch(&mut self, client: &TestClient) {
        self.listing = client.list_topics().await;
        let pushed: Vec<(TopicId, Count)> = self.pushed.iter().map(|(&t, &c)| (t, c)).collect();
        self.listing.take_counts(&pushed);
    }

    /// What the page does with the next event: applies a patch (its counts where newer than
    /// the rows', its flags when they lead from the user's version shown, else it refetches);
    /// refetches on a newer version. An event no newer than what it shows was on its way
    /// before its last refetch, and changes nothing.
    async fn follow(&mut self, events: &mut Events, client: &TestClient) {
        match events.next(PATIENCE).await {
            Next::Patch(patch) => {
                for &(topic, count) in &patch.counts {
                    let held = self.pushed.entry(topic).or_insert(count);
                    if count.is_newer_than(held) {
                        *held = count;
                    }
                }
                let shown = self.listing.version;
                if !self.listing.apply(&patch) && patch.to > shown.user {
                    self.refetch(client).await;
                }
            }
            Next::Version(version) if version.is_newer_than(&self.listing.version) => {
                self.refetch(client).await;
            }
            Next::Version(_) => {}
            other => panic!("expected an event within {PATIENCE:?}, got {other:?}"),
        }
    }
}

/// Asserts that an open page is told nothing more that would change it: at most events still
/// on their way from before its last refetch, which it ignores.
async fn told_nothing_newer(events: &mut Events, page: &OpenPage) {
    let shown = page.listing.version;
    for _ in 0..4 {
        match events.next(Duration::from_millis(600)).await {
            Next::Quiet => return,
            Next::Patch(patch) => {
                let mut patched = page.listing.clone();
                let applied = patched.apply(&patch);
                assert!(
                    applied && patched == page.listing,
                    "nothing more to tell {shown:?}, got {patch:?}"
                );
            }
            Next::Version(version) if !newer(version, shown) => {}
            other => panic!("nothing more to tell {shown:?}, got {other:?}"),
        }
    }
    panic!("events kept coming after {shown:?}");
}

#[tokio::test]
async fn subscriptions_arrive_as_patches_that_leave_the_page_as_a_reload_shows_it() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let python = bob.topic_id("Python").await;
    let django = bob.topic_id("Django").await;
    let mut events = Events::open(&alice).await;
    events.version().await;
    let mut page = OpenPage::read(&alice).await;

    // Another user's subscription: the count moves, Alice's flags do not.
    bob.subscribe(python).await;
    let patch = events.patch().await;
    let user = page.listing.version.user;
    assert_eq!((patch.from, patch.to), (user, user), "{patch:?}");
    let [(topic, count)] = patch.counts[..] else {
        panic!("one count: {patch:?}");
    };
    assert_eq!((topic, count.subscribers), (TopicId(python), 1));
    assert!(
        patch.flags.is_empty(),
        "Bob's flags are not Alice's business"
    );
    assert!(page.listing.apply(&patch));
    assert_eq!(page.rows(), alice.topics().await);

    // Her own: the count and her flag.
    alice.subscribe(django).await;
    let patch = events.patch().await;
    assert!(patch.to > page.listing.version.user, "{patch:?}");
    assert_eq!(
        patch
            .counts
            .iter()
            .map(|&(t, c)| (t, c.subscribers))
            .collect::<Vec<_>>(),
        vec![(TopicId(django), 1)]
    );
    assert_eq!(patch.flags, vec![(TopicId(django), true)]);
    assert!(page.listing.apply(&patch));
    assert_eq!(page.rows(), alice.topics().await);

    // Unsubscribe from all, by Bob and by Alice.
    bob.post_listed("/topics/unsubscribe-all/", &[]).await;
    alice.post_listed("/topics/unsubscribe-all/", &[]).await;
    let reloaded = alice.topics().await;
    while page.rows() != reloaded {
        page.follow(&mut events, &alice).await;
    }

    // A new topic changes which rows a page holds: the page is told to refetch.
    bob.post_listed("/topics/create/", &[("name", "Zig")]).await;
    let shown = page.listing.version;
    loop {
        match events.next(PATIENCE).await {
            // The end of the clears, coalesced into one event with the new topic or not.
            Next::Patch(patch) => assert!(page.listing.apply(&patch), "{patch:?}"),
            Next::Version(version) => break assert!(newer(version, shown)),
            other => panic!("expected a plain version, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_burst_of_writes_reaches_an_open_page_in_few_events_that_add_up() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    // The toggles below pass through the same few states again and again; the last write,
    // subscribing to this topic, leads to a state none of them had. So the page holds what a
    // reload shows only once it has heard the last write, not at an earlier pass through it.
    bob.post_listed("/topics/create/", &[("name", "Zig")]).await;
    let last = bob.topic_id("Zig").await;
    // From before the stream opens: its first event starts the stream's 250 ms turns.
    let opened = std::time::Instant::now();
    let mut events = Events::open(&alice).await;
    events.version().await;
    let mut page = OpenPage::read(&alice).await;
    let ids: Vec<i64> = page
        .rows()
        .iter()
        .map(|row| row.0)
        .filter(|&id| id != last)
        .collect();

    let started = std::time::Instant::now();
    let toggles = 40;
    for write in 0..toggles {
        let topic = ids[write % ids.len()];
        let path = if (write / ids.len()).is_multiple_of(2) {
            format!("/topics/subscribe/{topic}/")
        } else {
            format!("/topics/unsubscribe/{topic}/")
        };
        bob.post_listed(&path, &[]).await;
    }
    bob.post_listed(&format!("/topics/subscribe/{last}/"), &[])
        .await;
    let writes = toggles + 1;
    let last_write = started.elapsed();
    let reloaded = alice.topics().await;
    // What a refetch reads (`follow`) is what a reload shows.
    assert_eq!(alice.listing().await.1, reloaded);

    let mut received = 0;
    while page.rows() != reloaded {
        received += 1;
        page.follow(&mut events, &alice).await;
    }
    let heard = opened.elapsed();
    // One event per quarter second at most, counted from the first (sent at once).
    let bound = usize::try_from(heard.as_millis() / 250 + 1).unwrap_or(usize::MAX);
    assert!(
        received <= bound && received < writes,
        "{received} events for {writes} writes in {last_write:?} (heard by {heard:?})"
    );
    told_nothing_newer(&mut events, &page).await;
}
