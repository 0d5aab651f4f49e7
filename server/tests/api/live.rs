//! The live stream (`/topics/events/`) over HTTP against the real server binary.

use std::time::Duration;

use crate::support::{header, member, TestClient, TestServer};
use domain::live::{Patch, ViewVersion};
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

    /// The version the next event moves the page to (a patch's or a plain version).
    pub async fn version(&mut self) -> ViewVersion {
        match self.next(PATIENCE).await {
            Next::Version(version) => version,
            Next::Patch(patch) => patch.to,
            other => panic!("expected a version within {PATIENCE:?}, got {other:?}"),
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
    for (path, form) in steps {
        bob.post_listed(&path, &form).await;
        let pushed = events.version().await;
        assert!(newer(pushed, last), "{pushed:?} after {last:?} ({path})");
        // Pushed after commit: the page it triggers already shows the change.
        let page = alice.topics().await;
        match path.as_str() {
            "/topics/create/" => {
                let name = form[0].1;
                assert!(
                    page.iter().any(|t| t.1 == name),
                    "{name} visible when pushed"
                );
            }
            p if p.starts_with("/topics/subscribe/") => {
                assert!(page.contains(&(python, "Python".into(), 1, false)));
            }
            _ => assert!(page.contains(&(python, "Python".into(), 0, false))),
        }
        last = pushed;
    }

    // The user's own change moves the user part as well.
    alice.subscribe(python).await;
    let own = events.version().await;
    assert!(
        own.user > last.user && own.shared >= last.shared,
        "{own:?} after {last:?}"
    );
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

/// What a page does with a patch (`TopicListing::apply`), on the rows the test client reads.
fn apply(rows: &mut Rows, patch: &Patch) {
    for (id, _, subscribers, subscribed) in rows.iter_mut() {
        if let Some(&(_, count)) = patch.counts.iter().find(|(t, _)| t.0 == *id) {
            *subscribers = count;
        }
        if let Some(&(_, flag)) = patch.flags.iter().find(|(t, _)| t.0 == *id) {
            *subscribed = flag;
        }
    }
}

/// The next event, expected to be a patch. On PostgreSQL it may be a plain version instead:
/// the instance can hear its own commit through the database before its own post-commit
/// work tells it (README, "Live updates"); the page then refetches, as `Err` says.
async fn patch_or_refetch(events: &mut Events, server: &TestServer) -> Result<Patch, ViewVersion> {
    match events.next(PATIENCE).await {
        Next::Patch(patch) => Ok(patch),
        Next::Version(version) if server.db.is_postgres() => Err(version),
        other => panic!("expected a patch within {PATIENCE:?}, got {other:?}"),
    }
}

/// What an open page does with the next event: applies a patch that leads from what it
/// shows, or refetches (`patch_or_refetch`) and then shows the version of the list it read.
/// An event no newer than that was on its way before the refetch, and changes nothing.
async fn follow(
    events: &mut Events,
    server: &TestServer,
    client: &TestClient,
    rows: &mut Rows,
    shown: &mut ViewVersion,
) {
    match patch_or_refetch(events, server).await {
        Ok(patch) if patch.applies_to(shown) => {
            apply(rows, &patch);
            *shown = patch.to;
        }
        Ok(patch) => assert!(!newer(patch.to, *shown), "{patch:?} from {shown:?}"),
        Err(version) if newer(version, *shown) => (*shown, *rows) = client.listing().await,
        Err(_) => {}
    }
}

/// Asserts that an open page, showing `shown`, is told nothing more: at most events still on
/// their way from before its last refetch, which it ignores.
async fn told_nothing_newer(events: &mut Events, shown: ViewVersion) {
    for _ in 0..4 {
        match events.next(Duration::from_millis(600)).await {
            Next::Quiet => return,
            Next::Patch(patch) if !newer(patch.to, shown) => {}
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
    let mut shown = events.version().await;
    let mut rows = alice.topics().await;

    // Another user's subscription: the count moves, Alice's flags do not.
    bob.subscribe(python).await;
    match patch_or_refetch(&mut events, &server).await {
        Ok(patch) => {
            assert_eq!(patch.from, shown);
            assert!(
                patch.to.shared > shown.shared && patch.to.user == shown.user,
                "{patch:?}"
            );
            assert_eq!(patch.counts, vec![(domain::ids::TopicId(python), 1)]);
            assert!(
                patch.flags.is_empty(),
                "Bob's flags are not Alice's business"
            );
            apply(&mut rows, &patch);
            shown = patch.to;
        }
        Err(version) => (shown, rows) = (version, alice.topics().await),
    }
    assert_eq!(rows, alice.topics().await);

    // Her own: the count and her flag.
    alice.subscribe(django).await;
    match patch_or_refetch(&mut events, &server).await {
        Ok(patch) => {
            assert_eq!(patch.from, shown);
            assert!(patch.to.user > shown.user);
            assert_eq!(patch.counts, vec![(domain::ids::TopicId(django), 1)]);
            assert_eq!(patch.flags, vec![(domain::ids::TopicId(django), true)]);
            apply(&mut rows, &patch);
            shown = patch.to;
        }
        Err(version) => (shown, rows) = (version, alice.topics().await),
    }
    assert_eq!(rows, alice.topics().await);

    // Unsubscribe from all, by Bob and by Alice.
    bob.post_listed("/topics/unsubscribe-all/", &[]).await;
    alice.post_listed("/topics/unsubscribe-all/", &[]).await;
    let reloaded = alice.topics().await;
    while rows != reloaded {
        follow(&mut events, &server, &alice, &mut rows, &mut shown).await;
    }

    // A new topic changes which rows a page holds: the page is told to refetch.
    bob.post_listed("/topics/create/", &[("name", "Zig")]).await;
    loop {
        match events.next(PATIENCE).await {
            // The end of the clears, coalesced into one event with the new topic or not.
            Next::Patch(patch) if patch.applies_to(&shown) => shown = patch.to,
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
    let mut shown = events.version().await;
    let mut rows = alice.topics().await;
    let ids: Vec<i64> = rows
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
    while rows != reloaded {
        received += 1;
        follow(&mut events, &server, &alice, &mut rows, &mut shown).await;
    }
    let heard = opened.elapsed();
    // One event per quarter second at most, counted from the first (sent at once).
    let bound = usize::try_from(heard.as_millis() / 250 + 1).unwrap_or(usize::MAX);
    assert!(
        received <= bound && received < writes,
        "{received} events for {writes} writes in {last_write:?} (heard by {heard:?})"
    );
    told_nothing_newer(&mut events, shown).await;
}
