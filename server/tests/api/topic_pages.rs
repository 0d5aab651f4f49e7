//! What the topic pages show and when they are served from the cache: activity, paging, stored
//! pages, a busy database.

use crate::support::{self, body_of, expect_redirect, header, member, staff, TestServer};
use reqwest::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn repeated_loads_run_no_topic_sql_until_something_changes() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    alice.topics().await;
    let warm = server.metric("sql_topic_statements_total").await;
    let all_warm = server.metric("sql_statements_total").await;
    let hits =
        server.metric("cache_hits_total").await + server.metric("page_cache_hits_total").await;
    for _ in 0..5 {
        alice.topics().await;
    }
    assert_eq!(server.metric("sql_topic_statements_total").await, warm);
    // On PostgreSQL each request reads the cache versions other instances may have moved
    // (one primary-key read); on SQLite the versions are in memory.
    let probes = if server.db.is_postgres() { 5 } else { 0 };
    assert_eq!(
        server.metric("sql_statements_total").await,
        all_warm + probes,
        "a cache hit runs no SQL beyond the version read, session and user lookups included"
    );
    let served_from_memory =
        server.metric("cache_hits_total").await + server.metric("page_cache_hits_total").await;
    assert!(
        served_from_memory >= hits + 5,
        "{served_from_memory} after {hits}"
    );

    let python = bob.subscribe_to("Python").await;
    let written = server.metric("sql_topic_statements_total").await;
    assert!(written > warm);
    alice.expect_row(python, "Python", 1, false).await;
    bob.expect_row(python, "Python", 1, true).await;
    // The subscription patched the cached catalog and bob's ids: both pages come from memory.
    let read = server.metric("sql_topic_statements_total").await - written;
    assert_eq!(
        read, 0,
        "the pages after a subscription read no topic table"
    );
    assert!(server.metric("cache_patches_total").await >= 2);
}

#[tokio::test]
async fn logout_drops_the_users_cache_entry() {
    let (server, alice) = TestServer::with_member("alice").await;
    alice.topics().await;
    let before = server.metric("cache_invalidations_total").await;
    alice.post_listed("/logout", &[]).await;
    assert_eq!(server.metric("cache_invalidations_total").await, before + 1);
}

#[tokio::test]
async fn the_activity_feed_lists_newest_first() {
    let (server, alice) = TestServer::with_member("alice").await;
    for name in ["One", "Two", "Three"] {
        alice
            .post_listed("/topics/create/", &[("name", name)])
            .await;
    }
    let page = alice.get("/topics/activity/").await;
    let html = body_of(page, StatusCode::OK).await;
    let three = html.find("data-topic-name=\"Three\"").expect("Three");
    let one = html.find("data-topic-name=\"One\"").expect("One");
    assert!(three < one, "newest first");
    assert!(html.contains("data-action=\"created\""));
    expect_redirect(
        server.client().get("/topics/activity/").await,
        "/login?next=/topics/activity/",
    )
    .await;
}

#[tokio::test]
async fn the_activity_feed_is_not_paged_past_its_depth() {
    let (server, alice) = TestServer::with_member("alice").await;
    let last = alice.get("/topics/activity/?page=200").await;
    assert_eq!(last.status(), StatusCode::OK);
    let before = server.metric("sql_topic_statements_total").await;
    for deep in ["201", "9223372036854775807"] {
        let page = alice.get(&format!("/topics/activity/?page={deep}")).await;
        let html = page.text().await.expect("body");
        assert!(
            html.contains("The feed goes back 200 pages"),
            "page {deep} says how deep the feed goes"
        );
        assert!(!html.contains("rel=\"next\""));
    }
    assert_eq!(
        server.metric("sql_topic_statements_total").await,
        before,
        "pages past the depth are not read from the database"
    );
}

#[tokio::test]
async fn the_list_pages_and_filters_through_the_url() {
    let (_server, alice) = TestServer::with_member("alice").await;
    for n in 0..103 {
        alice
            .post_listed("/topics/create/", &[("name", &format!("Extra {n:03}"))])
            .await;
    }
    let first = alice.get("/topics/").await.text().await.expect("body");
    assert_eq!(support::topics(&first).len(), 100);
    assert!(first.contains("Page 1 of 2"), "{first}");
    let second = alice
        .get("/topics/?page=2")
        .await
        .text()
        .await
        .expect("body");
    let names: Vec<String> = support::topics(&second).into_iter().map(|t| t.1).collect();
    assert_eq!(
        names,
        [
            "Extra 098",
            "Extra 099",
            "Extra 100",
            "Extra 101",
            "Extra 102",
            "Python"
        ]
    );
    let filtered = alice
        .get("/topics/?q=djan")
        .await
        .text()
        .await
        .expect("body");
    let names: Vec<String> = support::topics(&filtered)
        .into_iter()
        .map(|t| t.1)
        .collect();
    assert_eq!(names, vec!["Django"]);
}

#[tokio::test]
async fn stored_pages_are_replayed_only_while_nothing_changed() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let first = alice.get("/topics/").await.text().await.expect("body");
    let hits = server.metric("page_cache_hits_total").await;
    let again = alice.get("/topics/").await.text().await.expect("body");
    assert_eq!(again, first);
    assert_eq!(server.metric("page_cache_hits_total").await, hits + 1);
    // Another user's page is their own.
    let bobs = bob.get("/topics/").await.text().await.expect("body");
    assert!(bobs.contains("bob") && !bobs.contains(">alice<"));

    let python = bob.subscribe_to("Python").await;
    alice.expect_row(python, "Python", 1, false).await;
}

#[tokio::test]
async fn a_database_busy_past_its_timeout_answers_503_changes_nothing_and_recovers() {
    let (server, alice) = TestServer::with_member("alice").await;
    let python = alice.topic_id("Python").await;
    let lock = crate::support::hold_write_lock(&server.db, Duration::from_secs(8));
    let response = alice
        .post_form(&format!("/topics/subscribe/{python}/"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    let body = response.text().await.expect("body");
    assert!(body.contains("nothing was changed"), "{body}");
    assert!(
        body.contains("data-topic-id"),
        "the page, styled, with its list: {body}"
    );
    lock.join().expect("lock holder");
    assert!(alice
        .topics()
        .await
        .iter()
        .any(|t| t.0 == python && !t.3 && t.2 == 0));
    alice.subscribe(python).await;
    assert!(alice.topics().await.iter().any(|t| t.0 == python && t.3));
}

/// A page assembled around the user's last rendered one (`server/src/page_templates.rs`) is
/// the page a render gives: the same bytes as a server on the same database that renders every
/// page, once the scripts' nonce (drawn anew by every render) and the version numbers (which
/// count from each process's start) are set aside.
#[tokio::test]
async fn a_page_assembled_after_subscriptions_is_the_page_a_render_gives() {
    let db = support::Database::new();
    let server = TestServer::start_on(&db);
    let alice = member(&server, "alice").await;
    let bob = member(&server, "bob").await;
    let root = staff(&server, "root").await;
    // The first loads are rendered, and each is cut into its user's template.
    let python = alice.topic_id("Python").await;
    let django = root.topic_id("Django").await;
    bob.subscribe(python).await;
    alice.subscribe(django).await;

    let before = server.metric("page_cache_assembled_total").await;
    let mut assembled = Vec::new();
    for client in [&alice, &root] {
        let response = client.get("/topics/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let policy = header(&response, "content-security-policy").to_owned();
        assembled.push((policy, response.text().await.expect("body")));
    }
    assert_eq!(
        server.metric("page_cache_assembled_total").await,
        before + 2,
        "both pages were assembled, not rendered"
    );
    assert!(assembled[0]
        .1
        .contains(r#"data-topic-name="Django" data-subscribers="1" data-subscribed="true""#));

    let renderer = TestServer::start_on_with(&db, &[("TOPIC_CACHE_TTL_SECONDS", "0")]);
    for (client, (policy, page)) in [&alice, &root].into_iter().zip(&assembled) {
        let response = client.against(&renderer).get("/topics/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let rendered_policy = header(&response, "content-security-policy").to_owned();
        let rendered = response.text().await.expect("body");
        assert_eq!(
            comparable(page, policy),
            comparable(&rendered, &rendered_policy)
        );
    }
}

/// `page` with its nonce (named by its `policy`) and its version numbers blanked.
fn comparable(page: &str, policy: &str) -> String {
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the policy names a nonce");
    let mut page = page.replace(nonce, "NONCE");
    for field in [r#"\"shared\":"#, r#"\"user\":"#] {
        let mut out = String::with_capacity(page.len());
        let mut rest = page.as_str();
        while let Some(at) = rest.find(field) {
            let (head, tail) = rest.split_at(at + field.len());
            out.push_str(head);
            out.push('0');
            rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        out.push_str(rest);
        page = out;
    }
    page
}
