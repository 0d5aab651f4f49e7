//! The topic routes and every signal effect, over HTTP against the real server binary.

use std::time::Duration;

use crate::support::{
    self, count_sql, execute_sql, expect_redirect, location, member, staff, TestServer, PASSWORD,
};
use reqwest::StatusCode;

async fn wait_for_log(server: &TestServer, needle: &str) -> bool {
    // Generous: a debug build on a loaded CI machine; a pass returns as soon as the line shows.
    for _ in 0..300 {
        if server.logs().iter().any(|line| line.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn subscribe_and_unsubscribe_move_the_count_for_every_user() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let bob = member(&server, "bob").await;
    let python = alice.topic_id("Python").await;
    // Both users have loaded (and cached) the list.
    bob.topics().await;

    let path = format!("/topics/subscribe/{python}/");
    expect_redirect(alice.post_form(&path, &[]).await, "/topics/").await;
    expect_redirect(alice.post_form(&path, &[]).await, "/topics/").await; // idempotent
    let mine = alice.topics().await;
    assert!(
        mine.contains(&(python, "Python".into(), 1, true)),
        "{mine:?}"
    );
    let theirs = bob.topics().await;
    assert!(
        theirs.contains(&(python, "Python".into(), 1, false)),
        "{theirs:?}"
    );

    expect_redirect(
        alice
            .post_form(&format!("/topics/unsubscribe/{python}/"), &[])
            .await,
        "/topics/",
    )
    .await;
    assert!(bob
        .topics()
        .await
        .contains(&(python, "Python".into(), 0, false)));
    assert!(alice
        .topics()
        .await
        .contains(&(python, "Python".into(), 0, false)));
}

#[tokio::test]
async fn unsubscribe_all_clears_every_subscription() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    for topic in alice.topics().await {
        alice.subscribe(topic.0).await;
    }
    assert!(alice.topics().await.iter().all(|t| t.3 && t.2 == 1));
    expect_redirect(
        alice.post_form("/topics/unsubscribe-all/", &[]).await,
        "/topics/",
    )
    .await;
    assert!(alice.topics().await.iter().all(|t| !t.3 && t.2 == 0));
}

#[tokio::test]
async fn create_shows_the_topic_to_everyone_and_logs_the_signal() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let bob = member(&server, "bob").await;
    bob.topics().await;

    expect_redirect(
        alice
            .post_form("/topics/create/", &[("name", "  Rust  ")])
            .await,
        "/topics/",
    )
    .await;
    let names: Vec<String> = bob.topics().await.into_iter().map(|t| t.1).collect();
    assert_eq!(names, vec!["DevOps", "Django", "Python", "Rust"]);
    let rust = bob.topic_id("Rust").await;
    assert_eq!(
        server.activity_rows().await,
        vec![(Some(rust), "Rust".to_owned(), "created".to_owned())]
    );
    assert!(wait_for_log(&server, &format!("Topic {rust} changed: created")).await);
}

#[tokio::test]
async fn create_rejects_bad_names_with_the_form_and_a_4xx() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;

    let blank = alice.post_form("/topics/create/", &[("name", "   ")]).await;
    assert_eq!(blank.status(), StatusCode::BAD_REQUEST);
    let html = blank.text().await.expect("body");
    assert!(html.contains("Please give the topic a name."), "{html}");
    assert!(html.contains("data-topic-id"), "the list is shown again");

    let long = "x".repeat(101);
    let too_long = alice.post_form("/topics/create/", &[("name", &long)]).await;
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    assert!(too_long
        .text()
        .await
        .expect("body")
        .contains("at most 100 characters"));

    let taken = alice
        .post_form("/topics/create/", &[("name", "PYTHON")])
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let html = taken.text().await.expect("body");
    assert!(html.contains("exists already"), "{html}");
    assert!(
        html.contains("value=\"PYTHON\""),
        "what was typed stays in the field"
    );

    let missing = alice.post_form("/topics/create/", &[]).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    assert_eq!(alice.topics().await.len(), 3, "nothing was created");
    assert!(server.activity_rows().await.is_empty());
}

#[tokio::test]
async fn rename_and_delete_are_refused_to_members_and_not_offered_to_them() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let root = staff(&server, "root").await;
    let django = alice.topic_id("Django").await;

    let refused = alice
        .post_form(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("body").contains("not allowed"));
    let refused = alice
        .post_form(&format!("/topics/delete/{django}/"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let staff_page = root.get("/topics/").await.text().await.expect("body");
    assert!(staff_page.contains(&format!("/topics/delete/{django}/")));
    let member_page = alice.get("/topics/").await.text().await.expect("body");
    assert!(!member_page.contains(&format!("/topics/delete/{django}/")));
    assert!(alice
        .topics()
        .await
        .contains(&(django, "Django".into(), 0, false)));
}

#[tokio::test]
async fn staff_rename_and_delete_signal_their_activity() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let root = staff(&server, "root").await;
    let django = alice.topic_id("Django").await;
    alice.subscribe(django).await;
    alice.topics().await;

    expect_redirect(
        root.post_form(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
            .await,
        "/topics/",
    )
    .await;
    assert!(alice
        .topics()
        .await
        .contains(&(django, "Flask".into(), 1, true)));
    assert!(wait_for_log(&server, &format!("Topic {django} changed: updated")).await);

    let clash = root
        .post_form(&format!("/topics/rename/{django}/"), &[("name", "python")])
        .await;
    assert_eq!(clash.status(), StatusCode::CONFLICT);

    expect_redirect(
        root.post_form(&format!("/topics/delete/{django}/"), &[])
            .await,
        "/topics/",
    )
    .await;
    assert!(alice.topics().await.iter().all(|t| t.0 != django));
    assert!(wait_for_log(&server, &format!("Topic {django} changed: deleted")).await);
    // The updated row went with the topic; the tombstone keeps the last name.
    assert_eq!(
        server.activity_rows().await,
        vec![(None, "Flask".to_owned(), "deleted".to_owned())]
    );
}

#[tokio::test]
async fn an_action_on_a_topic_that_is_not_listed_says_why_on_the_page() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    for path in ["/topics/subscribe/999999/", "/topics/subscribe/abc/"] {
        let response = alice.post_form(path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = response.text().await.expect("body");
        assert!(
            body.contains("data-form-error") && body.contains("That does not exist (any more)."),
            "{path}: the message is shown above the list:\n{body}"
        );
    }
}

#[tokio::test]
async fn unknown_and_non_numeric_ids_are_404_and_get_is_405() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let root = staff(&server, "root").await;
    for path in [
        "/topics/subscribe/999999/",
        "/topics/unsubscribe/999999/",
        "/topics/subscribe/abc/",
        "/topics/unsubscribe/1x/",
    ] {
        let response = alice.post_form(path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/topics/delete/999999/", "/topics/delete/abc/"] {
        assert_eq!(
            root.post_form(path, &[]).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let rename = root
        .post_form("/topics/rename/999999/", &[("name", "New")])
        .await;
    assert_eq!(rename.status(), StatusCode::NOT_FOUND);

    for path in [
        "/topics/subscribe/1/",
        "/topics/unsubscribe/1/",
        "/topics/create/",
        "/topics/delete/1/",
        "/topics/rename/1/",
        "/topics/unsubscribe-all/",
    ] {
        let response = alice.get(path).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "GET {path}"
        );
    }
}

#[tokio::test]
async fn anonymous_and_cross_origin_topic_posts_change_nothing() {
    let server = TestServer::start();
    let anonymous = server.client();
    let response = anonymous
        .post_form("/topics/create/", &[("name", "Spam")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?next=/topics/");

    let alice = member(&server, "alice").await;
    let forged = alice
        .http
        .post(server.url("/topics/create/"))
        .header("Origin", "http://evil.example")
        .form(&[("name", "Forged")])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let names: Vec<String> = alice.topics().await.into_iter().map(|t| t.1).collect();
    assert_eq!(names, vec!["DevOps", "Django", "Python"]);
}

#[tokio::test]
async fn repeated_loads_run_no_topic_sql_until_something_changes() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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

    let python = bob.topic_id("Python").await;
    bob.subscribe(python).await;
    let written = server.metric("sql_topic_statements_total").await;
    assert!(written > warm);
    assert!(alice
        .topics()
        .await
        .contains(&(python, "Python".into(), 1, false)));
    assert!(bob
        .topics()
        .await
        .contains(&(python, "Python".into(), 1, true)));
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    alice.topics().await;
    let before = server.metric("cache_invalidations_total").await;
    expect_redirect(alice.post_form("/logout", &[]).await, "/topics/").await;
    assert_eq!(server.metric("cache_invalidations_total").await, before + 1);
}

#[tokio::test]
async fn server_functions_answer_with_typed_errors_and_4xx() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let created = alice
        .post_form("/api/create_topic", &[("name", "Rust")])
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let again = alice
        .post_form("/api/create_topic", &[("name", "rust")])
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.expect("body").contains("exists already"));
    let missing = alice
        .post_form("/api/subscribe", &[("topic_id", "999999")])
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let garbage = alice
        .post_form("/api/subscribe", &[("topic_id", "abc")])
        .await;
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
}

#[tokio::test]
async fn the_activity_feed_lists_newest_first() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    for name in ["One", "Two", "Three"] {
        expect_redirect(
            alice.post_form("/topics/create/", &[("name", name)]).await,
            "/topics/",
        )
        .await;
    }
    let page = alice.get("/topics/activity/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    for n in 0..103 {
        expect_redirect(
            alice
                .post_form("/topics/create/", &[("name", &format!("Extra {n:03}"))])
                .await,
            "/topics/",
        )
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
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let bob = member(&server, "bob").await;
    let first = alice.get("/topics/").await.text().await.expect("body");
    let hits = server.metric("page_cache_hits_total").await;
    let again = alice.get("/topics/").await.text().await.expect("body");
    assert_eq!(again, first);
    assert_eq!(server.metric("page_cache_hits_total").await, hits + 1);
    // Another user's page is their own.
    let bobs = bob.get("/topics/").await.text().await.expect("body");
    assert!(bobs.contains("bob") && !bobs.contains(">alice<"));

    let python = bob.topic_id("Python").await;
    bob.subscribe(python).await;
    assert!(alice
        .topics()
        .await
        .contains(&(python, "Python".into(), 1, false)));
}

/// Accounts `many1`…`many2500`, each subscribed to `topic` — more than a request deletes.
const MANY_SUBSCRIBE_TO: &str = "
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 2500)
    INSERT INTO users (username, password_hash) SELECT 'many' || i, 'not a hash' FROM k;
    INSERT INTO topic_subscribers (topic_id, user_id)
    SELECT t.id, u.id FROM topics t, users u WHERE t.name = 'TOPIC' AND u.username LIKE 'many%';";

#[tokio::test]
async fn a_topic_with_thousands_of_subscribers_goes_at_once_and_is_purged_after() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
    let root = staff(&server, "root").await;
    // Written behind the server's back, so before anything is cached.
    execute_sql(&server.db, MANY_SUBSCRIBE_TO.replace("TOPIC", "Python")).await;
    let python = alice.topic_id("Python").await;
    alice.subscribe(python).await;
    assert!(root
        .topics()
        .await
        .contains(&(python, "Python".into(), 2501, false)));

    expect_redirect(
        root.post_form(&format!("/topics/delete/{python}/"), &[])
            .await,
        "/topics/",
    )
    .await;
    assert!(alice.topics().await.iter().all(|t| t.0 != python));
    // The name is free again at once.
    expect_redirect(
        root.post_form("/topics/create/", &[("name", "Python")])
            .await,
        "/topics/",
    )
    .await;
    let again = alice.topic_id("Python").await;
    assert_ne!(again, python);

    assert!(wait_for_log(&server, "retired topic purged").await);
    let left = count_sql(
        &server.db,
        "SELECT (SELECT count(*) FROM topic_subscribers WHERE topic_id NOT IN
                       (SELECT id FROM topics WHERE deleted_at IS NULL))
                  + (SELECT count(*) FROM topics WHERE deleted_at IS NOT NULL) AS n",
    )
    .await;
    assert_eq!(left, 0, "no retired row and no subscription of it left");
    assert!(alice
        .topics()
        .await
        .contains(&(again, "Python".into(), 0, false)));
    assert_eq!(
        server.activity_rows().await.first(),
        Some(&(Some(again), "Python".to_owned(), "created".to_owned()))
    );
}

#[tokio::test]
async fn a_purge_cut_short_resumes_when_the_server_starts_again() {
    let server = TestServer::start();
    let db = server.stop();
    execute_sql(&db, MANY_SUBSCRIBE_TO.replace("TOPIC", "Django")).await;
    // What a process killed between the retirement and the end of the purge leaves behind.
    execute_sql(
        &db,
        "UPDATE topics SET deleted_at = CURRENT_TIMESTAMP WHERE name = 'Django'",
    )
    .await;

    let restarted = TestServer::start_on(&db);
    assert!(wait_for_log(&restarted, "retired topic purged").await);
    assert_eq!(
        count_sql(&db, "SELECT count(*) AS n FROM topic_subscribers").await,
        0
    );
    assert_eq!(
        count_sql(
            &db,
            "SELECT count(*) AS n FROM topics WHERE name = 'Django'"
        )
        .await,
        0
    );
    drop(restarted);
    drop(db);
}

#[tokio::test]
async fn names_compare_by_their_unicode_case_folded_form_and_invisible_characters_are_refused() {
    let server = TestServer::start();
    let zoe = server.client();
    expect_redirect(zoe.signup("Zoë").await, "/topics/").await;
    let twin = server.client().signup("ZOË").await;
    assert_eq!(twin.status(), StatusCode::CONFLICT);
    let full_width = server.client().signup("ｚｏë").await;
    assert_eq!(full_width.status(), StatusCode::CONFLICT);
    expect_redirect(server.client().login("ZOË", PASSWORD, "").await, "/topics/").await;

    for (name, status, reason) in [
        ("ＰＹＴＨＯＮ", StatusCode::CONFLICT, "exists already"),
        ("Py\u{200B}thon", StatusCode::BAD_REQUEST, "invisible"),
        ("\u{202E}nohtyP", StatusCode::BAD_REQUEST, "invisible"),
    ] {
        let response = zoe.post_form("/topics/create/", &[("name", name)]).await;
        assert_eq!(response.status(), status, "{name:?}");
        let body = response.text().await.expect("body");
        assert!(body.contains(reason), "{name:?}: {body}");
    }
    expect_redirect(
        zoe.post_form("/topics/create/", &[("name", "Straße")])
            .await,
        "/topics/",
    )
    .await;
    let folded = zoe
        .post_form("/topics/create/", &[("name", "STRASSE")])
        .await;
    assert_eq!(folded.status(), StatusCode::CONFLICT);
    assert_eq!(
        count_sql(
            &server.db,
            "SELECT count(*) AS n FROM topics WHERE name_key IS NULL"
        )
        .await,
        0,
        "every topic, the seeded ones included, has its key"
    );
}

#[tokio::test]
async fn a_database_busy_past_its_timeout_answers_503_changes_nothing_and_recovers() {
    let server = TestServer::start();
    let alice = member(&server, "alice").await;
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
        let policy = header_of(&response, "content-security-policy");
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
        let rendered_policy = header_of(&response, "content-security-policy");
        let rendered = response.text().await.expect("body");
        assert_eq!(
            comparable(page, policy),
            comparable(&rendered, &rendered_policy)
        );
    }
}

fn header_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
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
