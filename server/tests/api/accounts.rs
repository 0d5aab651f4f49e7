//! Accounts, sessions and request guards, over HTTP against the real server binary.

use crate::support::{
    body_of, count_sql, expect_page, expect_redirect, location, run_ok, topic_names, Sent,
    TestServer, PASSWORD,
};
use reqwest::StatusCode;

#[tokio::test]
async fn healthz_answers_without_a_session() {
    let server = TestServer::start();
    let response = server.client().get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn signup_logs_in_and_shows_the_seeded_topics() {
    let (_server, client) = TestServer::with_member("alice").await;

    let page = client.get("/topics/").await;
    let html = body_of(page, StatusCode::OK).await;
    assert_eq!(topic_names(&html), vec!["DevOps", "Django", "Python"]);
    assert!(html.contains("data-subscribers=\"0\""), "{html}");
    assert!(html.contains("data-subscribed=\"false\""));
    assert!(html.contains("alice"), "the layout names the user");
}

#[tokio::test]
async fn signup_rejects_bad_input_with_a_message_and_keeps_nothing() {
    let server = TestServer::start();
    let client = server.client();

    let short = client
        .post_form("/signup", &[("username", "bob"), ("password", "short")])
        .await;
    let html = expect_page(short, StatusCode::BAD_REQUEST, "at least 8 characters").await;
    assert!(
        html.contains("value=\"bob\""),
        "the username is kept in the form"
    );

    let bad_name = client
        .post_form(
            "/signup",
            &[("username", "bob smith"), ("password", PASSWORD)],
        )
        .await;
    expect_page(bad_name, StatusCode::BAD_REQUEST, "only letters, digits").await;

    let missing = client.post_form("/signup", &[]).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    // Nothing was created: the name is still free.
    expect_redirect(client.signup("bob").await, "/topics/").await;
}

#[tokio::test]
async fn a_taken_username_is_a_clear_error() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("carol").await, "/topics/").await;

    let again = server.client().signup("Carol").await;
    expect_page(again, StatusCode::CONFLICT, "is taken").await;
}

#[tokio::test]
async fn login_with_right_and_wrong_password() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("dave").await, "/topics/").await;

    let client = server.client();
    let wrong = client.login("dave", "not the password", "").await;
    expect_page(
        wrong,
        StatusCode::UNAUTHORIZED,
        "Wrong username or password",
    )
    .await;
    expect_redirect(client.get("/topics/").await, "/login?next=/topics/").await;

    let unknown = client.login("nobody", PASSWORD, "").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    expect_redirect(client.login("dave", PASSWORD, "").await, "/topics/").await;
    assert_eq!(client.get("/topics/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_login_password_too_long_to_hash_is_refused_with_a_reason() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("ivan").await, "/topics/").await;
    let response = server.client().login("ivan", &"p".repeat(1025), "").await;
    expect_page(response, StatusCode::BAD_REQUEST, "at most 1024 bytes").await;
}

#[tokio::test]
async fn weak_passwords_are_refused_at_signup_with_the_reason() {
    let server = TestServer::start();
    for (password, reason) in [
        ("2718281828459", "only digits"),
        ("rosalind.franklin", "close to your username"),
        ("password123", "too common"),
    ] {
        let response = server
            .client()
            .post_form(
                "/signup",
                &[("username", "rosalind.franklin"), ("password", password)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{password}");
        let body = response.text().await.expect("body");
        assert!(body.contains(reason), "{password}: {body}");
    }
    assert_eq!(
        count_sql(&server.db, "SELECT count(*) AS n FROM users").await,
        0,
        "no account was made"
    );
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds")
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_before_any_hashing() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("judy").await, "/topics/").await;
    let guesser = server.client();
    for n in 0..5 {
        let response = guesser
            .login("judy", &format!("guess number {n}"), "")
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let refused = guesser.login("JUDY", "guess number 6", "").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "{wait}");
    let body = refused.text().await.expect("body");
    assert!(body.contains("Too many failed logins"), "{body}");
    assert!(body.contains("try again in"), "{body}");
    // While refused, even the right password is not checked; another account is not held up.
    let right = server.client().login("judy", PASSWORD, "").await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    expect_redirect(server.client().signup("kim").await, "/topics/").await;
    expect_redirect(server.client().login("kim", PASSWORD, "").await, "/topics/").await;
}

#[tokio::test]
async fn signups_are_throttled_per_client_address() {
    let server = TestServer::start_with(&[("SIGNUPS_PER_IP_PER_HOUR", "2")]);
    expect_redirect(server.client().signup("leo").await, "/topics/").await;
    // Without a trusted proxy header configured, a forged one changes nothing.
    let forged = server
        .client()
        .http
        .post(server.url("/signup"))
        .header("X-Forwarded-For", "203.0.113.50")
        .form(&[("username", "mia"), ("password", PASSWORD)])
        .sent()
        .await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    let refused = server.client().signup("ned").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused) > 60);
    let body = refused.text().await.expect("body");
    assert!(body.contains("Too many accounts"), "{body}");
    assert_eq!(
        count_sql(
            &server.db,
            "SELECT count(*) AS n FROM users WHERE username = 'ned'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn behind_a_proxy_the_trusted_header_names_the_client() {
    let server = TestServer::start_with(&[
        ("SIGNUPS_PER_IP_PER_HOUR", "1"),
        ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
    ]);
    let signup = |name: &'static str, client: &'static str| {
        server
            .client()
            .http
            .post(server.url("/signup"))
            .header("X-Forwarded-For", format!("198.51.100.1, {client}"))
            .form(&[("username", name), ("password", PASSWORD)])
            .send()
    };
    let first = signup("olga", "203.0.113.1").await.expect("POST");
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let other_client = signup("pete", "203.0.113.2").await.expect("POST");
    assert_eq!(other_client.status(), StatusCode::SEE_OTHER);
    let same_client = signup("quin", "203.0.113.1").await.expect("POST");
    assert_eq!(same_client.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn next_is_honoured_only_for_local_paths() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("frank").await, "/topics/").await;

    let local = server.client();
    expect_redirect(
        local.login("frank", PASSWORD, "/topics/?from=login").await,
        "/topics/?from=login",
    )
    .await;

    for external in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let client = server.client();
        expect_redirect(client.login("frank", PASSWORD, external).await, "/topics/").await;
    }
}

#[tokio::test]
async fn login_is_required_for_topics() {
    let server = TestServer::start();
    let client = server.client();
    let response = client.get("/topics/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?next=/topics/");

    let login_page = client.get("/login?next=/topics/").await;
    let html = body_of(login_page, StatusCode::OK).await;
    assert!(html.contains("name=\"next\""));
    assert!(html.contains("value=\"/topics/\""), "{html}");

    // Server functions refuse anonymous callers too.
    let api = client.post_form("/api/unsubscribe_all", &[]).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (_server, client) = TestServer::with_member("grace").await;
    assert_eq!(client.get("/topics/").await.status(), StatusCode::OK);

    client.post_listed("/logout", &[]).await;
    expect_redirect(client.get("/topics/").await, "/login?next=/topics/").await;
}

#[tokio::test]
async fn unknown_paths_get_the_styled_404() {
    let server = TestServer::start();
    let response = server.client().get("/no/such/page").await;
    expect_page(response, StatusCode::NOT_FOUND, "Page not found").await;
}

#[tokio::test]
async fn create_user_command_makes_staff_accounts() {
    let server = TestServer::start();
    let output = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["create-user", "admin", "--staff"])
            .env("DATABASE_URL", server.db.url())
            .env("SUBSCRIPTIONS_PASSWORD", PASSWORD),
    );
    assert!(output.contains("created staff user"));

    let client = server.client();
    expect_redirect(client.login("admin", PASSWORD, "").await, "/topics/").await;
    let html = client.get("/topics/").await.text().await.expect("body");
    assert!(html.contains("(staff)"), "{html}");
}
