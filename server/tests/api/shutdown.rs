//! The way out of service: request deadlines, the drain at shutdown, readiness, and connections
//! closed at the door.

use crate::support::{
    body_of, expect_page, expect_redirect, header, member, settings, Sent, TestServer,
};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_request_past_its_deadline_gets_503() {
    // Signing up hashes a password, which a debug build may take longer than 1 s to do.
    let first = TestServer::start();
    let alice = member(&first, "alice").await;
    let db = first.stop();
    let server = TestServer::start_on_with(&db, &[("REQUEST_TIMEOUT_SECONDS", "1")]);
    let alice = alice.against(&server);
    // The write waits for the lock (up to its 5 s busy timeout); the request deadline is 1 s.
    let lock = crate::support::hold_write_lock(&server.db, std::time::Duration::from_secs(8));
    // (The same browser, now on the restarted server's origin.)
    let response = alice
        .to(Method::POST, "/topics/unsubscribe-all/")
        .header("Origin", server.base.clone())
        .sent()
        .await;
    let body = body_of(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        !body.contains("nothing was changed"),
        "the deadline answered, not the database's busy timeout: {body}"
    );
    lock.join().expect("lock holder");
    assert_eq!(alice.get("/topics/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_waits_for_open_requests_only_until_its_deadline() {
    let (server, alice) = TestServer::with_member_on(settings::A_SHORT_DEADLINE, "alice").await;
    let lock = crate::support::hold_write_lock(&server.db, std::time::Duration::from_secs(4));
    let stuck = tokio::spawn(async move {
        alice
            .to(Method::POST, "/topics/unsubscribe-all/")
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // it is waiting
    let stopping = std::thread::spawn(move || server.stop());
    let cut_off = stuck.await.expect("task");
    assert!(
        cut_off.is_err(),
        "the open request was cut off at the deadline, not answered: {cut_off:?}"
    );
    stopping.join().expect("the server exits with 0");
    lock.join().expect("lock holder");
}

#[tokio::test]
async fn readiness_turns_503_at_shutdown_while_requests_are_still_served() {
    let server = TestServer::start_with(&[("SHUTDOWN_DRAIN_SECONDS", "30")]);
    let client = server.client();
    wait_until_ready(&client).await;

    server.terminate();
    let mut answered = None;
    for _ in 0..100 {
        let response = client.get("/readyz").await;
        if response.status() != StatusCode::OK {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let draining = answered.expect("/readyz turned from 200 after SIGTERM");
    assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&draining, "retry-after"), "5");
    assert!(draining
        .text()
        .await
        .expect("body")
        .contains("shutting down"));
    // Still serving while the balancer takes the instance out.
    assert_eq!(client.get("/healthz").await.status(), StatusCode::OK);
    expect_redirect(client.signup("late").await, "/topics/").await;
    assert_eq!(client.get("/topics/").await.status(), StatusCode::OK);

    // A second signal ends the drain (the deadline is far away).
    server.terminate();
    server.wait_for_exit();
}

#[tokio::test]
async fn readiness_says_why_when_the_schema_is_behind_the_code() {
    let server = TestServer::start();
    let client = server.client();
    wait_until_ready(&client).await;
    crate::support::execute_sql(
        &server.db,
        "DELETE FROM __diesel_schema_migrations \
         WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
    )
    .await;
    let response = client.get("/readyz").await;
    expect_page(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "migrations are pending",
    )
    .await;
    // Liveness is not readiness: the process still answers.
    assert_eq!(client.get("/healthz").await.status(), StatusCode::OK);
}

/// An instance is ready once its database answers and (PostgreSQL) it hears other
/// instances' changes: the listening connection comes up just after start.
async fn wait_until_ready(client: &crate::support::TestClient) {
    let mut last = String::new();
    for _ in 0..100 {
        let response = client.get("/readyz").await;
        let status = response.status();
        last = response.text().await.expect("body");
        if status == StatusCode::OK {
            assert_eq!(last, "ready\n");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never ready: {last}");
}

#[tokio::test]
async fn once_the_door_closes_open_connections_are_served_and_then_closed() {
    let (server, alice) = TestServer::with_member("alice").await;
    // alice's client keeps its connection open (keep-alive).
    assert_eq!(alice.get("/topics/").await.status(), StatusCode::OK);

    server.terminate();
    // No drain here: the listening socket closes at once.
    let stranger = server.client();
    let mut refused = false;
    for _ in 0..100 {
        if stranger.to(Method::GET, "/healthz").send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are refused once shutting down");

    // The connection opened before is still served, and asked to close.
    let response = alice.get("/topics/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "connection"), "close");
    server.wait_for_exit();
}
