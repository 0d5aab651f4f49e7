//! The topic routes and every signal effect, over HTTP against the real server binary.

use std::time::Duration;

use crate::support::{
    count_sql, execute_sql, expect_page, expect_redirect, location, member, staff, Sent,
    TestServer, PASSWORD,
};
use reqwest::{Method, StatusCode};

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
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    let python = alice.topic_id("Python").await;
    // Both users have loaded (and cached) the list.
    bob.topics().await;

    let path = format!("/topics/subscribe/{python}/");
    alice.post_listed(&path, &[]).await;
    alice.post_listed(&path, &[]).await; // idempotent
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

    alice
        .post_listed(&format!("/topics/unsubscribe/{python}/"), &[])
        .await;
    bob.expect_row(python, "Python", 0, false).await;
    alice.expect_row(python, "Python", 0, false).await;
}

#[tokio::test]
async fn unsubscribe_all_clears_every_subscription() {
    let (_server, alice) = TestServer::with_member("alice").await;
    for topic in alice.topics().await {
        alice.subscribe(topic.0).await;
    }
    assert!(alice.topics().await.iter().all(|t| t.3 && t.2 == 1));
    alice.post_listed("/topics/unsubscribe-all/", &[]).await;
    assert!(alice.topics().await.iter().all(|t| !t.3 && t.2 == 0));
}

#[tokio::test]
async fn create_shows_the_topic_to_everyone_and_logs_the_signal() {
    let (server, alice) = TestServer::with_member("alice").await;
    let bob = member(&server, "bob").await;
    bob.topics().await;

    alice
        .post_listed("/topics/create/", &[("name", "  Rust  ")])
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
    let (server, alice) = TestServer::with_member("alice").await;

    let blank = alice.post_form("/topics/create/", &[("name", "   ")]).await;
    let html = expect_page(
        blank,
        StatusCode::BAD_REQUEST,
        "Please give the topic a name.",
    )
    .await;
    assert!(html.contains("data-topic-id"), "the list is shown again");

    let long = "x".repeat(101);
    let too_long = alice.post_form("/topics/create/", &[("name", &long)]).await;
    expect_page(too_long, StatusCode::BAD_REQUEST, "at most 100 characters").await;

    let taken = alice
        .post_form("/topics/create/", &[("name", "PYTHON")])
        .await;
    let html = expect_page(taken, StatusCode::CONFLICT, "exists already").await;
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
    let (server, alice) = TestServer::with_member("alice").await;
    let root = staff(&server, "root").await;
    let django = alice.topic_id("Django").await;

    let refused = alice
        .post_form(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
        .await;
    expect_page(refused, StatusCode::FORBIDDEN, "not allowed").await;
    let refused = alice
        .post_form(&format!("/topics/delete/{django}/"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let staff_page = root.get("/topics/").await.text().await.expect("body");
    assert!(staff_page.contains(&format!("/topics/delete/{django}/")));
    let member_page = alice.get("/topics/").await.text().await.expect("body");
    assert!(!member_page.contains(&format!("/topics/delete/{django}/")));
    alice.expect_row(django, "Django", 0, false).await;
}

#[tokio::test]
async fn staff_rename_and_delete_signal_their_activity() {
    let (server, alice) = TestServer::with_member("alice").await;
    let root = staff(&server, "root").await;
    let django = alice.subscribe_to("Django").await;
    alice.topics().await;

    root.post_listed(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
        .await;
    alice.expect_row(django, "Flask", 1, true).await;
    assert!(wait_for_log(&server, &format!("Topic {django} changed: updated")).await);

    let clash = root
        .post_form(&format!("/topics/rename/{django}/"), &[("name", "python")])
        .await;
    assert_eq!(clash.status(), StatusCode::CONFLICT);

    root.post_listed(&format!("/topics/delete/{django}/"), &[])
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
    let (_server, alice) = TestServer::with_member("alice").await;
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
    let (server, alice) = TestServer::with_member("alice").await;
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
        .to(Method::POST, "/topics/create/")
        .header("Origin", "http://evil.example")
        .form(&[("name", "Forged")])
        .sent()
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let names: Vec<String> = alice.topics().await.into_iter().map(|t| t.1).collect();
    assert_eq!(names, vec!["DevOps", "Django", "Python"]);
}

#[tokio::test]
async fn server_functions_answer_with_typed_errors_and_4xx() {
    let (_server, alice) = TestServer::with_member("alice").await;
    for (path, field, status, says) in [
        ("/api/create_topic", ("name", "Rust"), StatusCode::OK, ""),
        (
            "/api/create_topic",
            ("name", "rust"),
            StatusCode::CONFLICT,
            "exists already",
        ),
        (
            "/api/subscribe",
            ("topic_id", "999999"),
            StatusCode::NOT_FOUND,
            "",
        ),
    ] {
        expect_page(alice.post_form(path, &[field]).await, status, says).await;
    }
    let garbage = alice
        .post_form("/api/subscribe", &[("topic_id", "abc")])
        .await;
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
}

/// Accounts `many1`…`many2500`, each subscribed to `topic` — more than a request deletes.
const MANY_SUBSCRIBE_TO: &str = "
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 2500)
    INSERT INTO users (username, password_hash) SELECT 'many' || i, 'not a hash' FROM k;
    INSERT INTO topic_subscribers (topic_id, user_id)
    SELECT t.id, u.id FROM topics t, users u WHERE t.name = 'TOPIC' AND u.username LIKE 'many%';";

#[tokio::test]
async fn a_topic_with_thousands_of_subscribers_goes_at_once_and_is_purged_after() {
    let (server, alice) = TestServer::with_member("alice").await;
    let root = staff(&server, "root").await;
    // Written behind the server's back, so before anything is cached.
    execute_sql(&server.db, MANY_SUBSCRIBE_TO.replace("TOPIC", "Python")).await;
    let python = alice.subscribe_to("Python").await;
    root.expect_row(python, "Python", 2501, false).await;

    root.post_listed(&format!("/topics/delete/{python}/"), &[])
        .await;
    assert!(alice.topics().await.iter().all(|t| t.0 != python));
    // The name is free again at once.
    root.post_listed("/topics/create/", &[("name", "Python")])
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
    alice.expect_row(again, "Python", 0, false).await;
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
}

#[tokio::test]
async fn names_compare_by_their_unicode_case_folded_form_and_invisible_characters_are_refused() {
    let (server, zoe) = TestServer::with_member("Zoë").await;
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
    zoe.post_listed("/topics/create/", &[("name", "Straße")])
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
