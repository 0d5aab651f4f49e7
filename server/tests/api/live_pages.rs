//! Which page a live stream follows (`/topics/events/?page=…&q=…`), and many streams on one
//! HTTP/2 connection, against the real server binary.

use std::time::Duration;

use domain::ids::TopicId;
use reqwest::{StatusCode, Version};

use crate::live::{Events, Next, PATIENCE};
use crate::support::{member, TestClient, TestServer, PASSWORD};

/// Long enough for a stream to have told its page (one event per 250 ms at most).
const TOLD_BY: Duration = Duration::from_millis(1500);

/// The subscriber counts a patch tells, without their versions.
fn counts_of(patch: &domain::live::Patch) -> Vec<(TopicId, i64)> {
    patch
        .counts
        .iter()
        .map(|&(topic, count)| (topic, count.subscribers))
        .collect()
}

#[tokio::test]
async fn a_stream_is_told_only_of_the_rows_its_page_shows() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    bob.post_listed("/topics/create/", &[("name", "Rust")])
        .await;
    let (python, rust) = (bob.topic_id("Python").await, bob.topic_id("Rust").await);

    // A change that drops the cached catalog, and no page read since: the stream reads the
    // catalog itself to know its page's rows (else it would be told every count).
    let created = bob.post_form("/topics/create/", &[("name", "Zig")]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    // One page filtered to Python, one of the whole list.
    let mut python_page = Events::open_at(&alice, "/topics/events/?page=1&q=pyth").await;
    let mut whole_list = Events::open(&alice).await;
    let told = python_page.version().await;
    whole_list.version().await;

    bob.subscribe(rust).await;
    assert_eq!(
        python_page.next(TOLD_BY).await,
        Next::Quiet,
        "Rust is not on the Python page"
    );
    assert_eq!(
        counts_of(&whole_list.patch().await),
        vec![(TopicId(rust), 1)]
    );

    bob.subscribe(python).await;
    let patch = python_page.patch().await;
    assert_eq!(counts_of(&patch), vec![(TopicId(python), 1)], "{patch:?}");
    assert_eq!(
        (patch.from, patch.to),
        (told.user, told.user),
        "Alice's own version did not move"
    );
    let filtered = alice.get("/topics/?q=pyth").await;
    let rows = crate::support::topics(&filtered.text().await.expect("body"));
    assert_eq!(
        rows,
        vec![(python, "Python".into(), 1, false)],
        "as a reload shows it"
    );
}

#[tokio::test]
async fn many_streams_share_one_http2_connection_and_each_hears_every_change() {
    let (server, _alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let python = bob.topic_id("Python").await;
    let client = TestClient::over_http2(&server.base);
    let login = client.login("alice", PASSWORD, "/topics/").await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(login.version(), Version::HTTP_2);

    let mut streams = Vec::new();
    for _ in 0..domain::live::STREAMS_PER_USER {
        let mut events = Events::open(&client).await;
        events.version().await;
        streams.push(events);
    }
    assert_eq!(
        server.metric("live_streams").await,
        domain::live::STREAMS_PER_USER as u64
    );
    // Requests still pass beside the open streams on the same connection.
    let page = client.get("/topics/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.version(), Version::HTTP_2);

    let subscribed = bob.toggle(python, true).await;
    assert_eq!(subscribed.status(), StatusCode::SEE_OTHER);
    for events in &mut streams {
        match events.next(PATIENCE).await {
            Next::Patch(patch) => assert_eq!(counts_of(&patch), vec![(TopicId(python), 1)]),
            other => panic!("every stream hears the change, got {other:?}"),
        }
    }
    let refused = client.get("/topics/events/").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}
