//! The live stream (`/topics/events/`) over HTTP against the real server binary.

use std::time::Duration;

use crate::support::{expect_redirect, member, TestClient, TestServer};
use app::live::ViewVersion;
use reqwest::StatusCode;

/// How long an expected event may take: a debug build on a loaded CI machine. Waits return
/// as soon as the event arrives, so this only lengthens a failing run.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Reads `version` events from an open stream.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, PartialEq)]
pub enum Next {
    Version(ViewVersion),
    Ended,
    Quiet,
}

impl Events {
    pub async fn open(client: &TestClient) -> Events {
        let response = client.get("/topics/events/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
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
                continue; // a heartbeat comment
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Next::Ended,
            }
        }
    }

    pub async fn version(&mut self) -> ViewVersion {
        match self.next(PATIENCE).await {
            Next::Version(version) => version,
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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
        expect_redirect(bob.post_form(&path, &form).await, "/topics/").await;
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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

    expect_redirect(
        bob.post_form("/topics/create/", &[("name", "Real")]).await,
        "/topics/",
    )
    .await;
    assert!(newer(events.version().await, first));
}

#[tokio::test]
async fn streams_are_bounded_counted_and_freed() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let mut open = Vec::new();
    for _ in 0..app::live::STREAMS_PER_USER {
        let mut events = Events::open(&alice).await;
        events.version().await;
        open.push(events);
    }
    let refused = alice.get("/topics/events/").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        server.metric("live_streams").await,
        app::live::STREAMS_PER_USER as u64
    );

    drop(open);
    // The server notices a closed stream on its next write (a heartbeat at the latest).
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let mut events = Events::open(&alice).await;
    events.version().await;
    expect_redirect(alice.post_form("/logout", &[]).await, "/topics/").await;
    assert_eq!(events.next(PATIENCE).await, Next::Ended);
}

#[tokio::test]
async fn shutdown_ends_streams_and_a_reconnect_catches_up() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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
    drop(again);
    drop(restarted);
    drop(db);
}
