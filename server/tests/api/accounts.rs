//! Accounts, sessions and request guards, over HTTP against the real server binary.

use crate::support::{
    count_sql, execute_sql, expect_redirect, location, topic_names, TestServer, PASSWORD,
};
use reqwest::header::SET_COOKIE;
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
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("alice").await, "/topics/").await;

    let page = client.get("/topics/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
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
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let html = short.text().await.expect("body");
    assert!(html.contains("at least 8 characters"), "{html}");
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
    assert_eq!(bad_name.status(), StatusCode::BAD_REQUEST);
    assert!(bad_name
        .text()
        .await
        .expect("body")
        .contains("only letters, digits"));

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
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let html = again.text().await.expect("body");
    assert!(html.contains("is taken"), "{html}");
}

#[tokio::test]
async fn login_with_right_and_wrong_password() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("dave").await, "/topics/").await;

    let client = server.client();
    let wrong = client.login("dave", "not the password", "").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong
        .text()
        .await
        .expect("body")
        .contains("Wrong username or password"));
    expect_redirect(client.get("/topics/").await, "/login?next=/topics/").await;

    let unknown = client.login("nobody", PASSWORD, "").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    expect_redirect(client.login("dave", PASSWORD, "").await, "/topics/").await;
    assert_eq!(client.get("/topics/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_sets_a_fresh_http_only_session_cookie() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("erin").await, "/topics/").await;
    // An attacker who planted a session id in the victim's browser must not see it used.
    let planted = "subscriptions_session=AAAAAAAAAAAAAAAAAAAAAA";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = http
        .post(server.url("/login"))
        .header("Cookie", planted)
        .form(&[("username", "erin"), ("password", PASSWORD), ("next", "")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("login sets a session cookie");
    assert!(cookie.starts_with("subscriptions_session="), "{cookie}");
    assert!(!cookie.starts_with(planted), "a new id is issued: {cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure unless configured");
}

#[tokio::test]
async fn a_login_password_too_long_to_hash_is_refused_with_a_reason() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("ivan").await, "/topics/").await;
    let response = server.client().login("ivan", &"p".repeat(1025), "").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.expect("body");
    assert!(body.contains("at most 1024 bytes"), "{body}");
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
        .send()
        .await
        .expect("POST");
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

/// The session cookie a response sets, as `name=value`.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("subscriptions_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_login_over_a_valid_logged_in_session_still_gets_a_new_id() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("gina").await, "/topics/").await;
    expect_redirect(server.client().signup("hank").await, "/topics/").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = |cookie: Option<String>, username: &'static str| {
        let mut request = http.post(server.url("/login")).form(&[
            ("username", username),
            ("password", PASSWORD),
            ("next", ""),
        ]);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send()
    };
    let visit = |cookie: String| {
        http.get(server.url("/topics/"))
            .header("Cookie", cookie)
            .send()
    };

    // An id planted while it is valid and logged in (say, read off a shared machine).
    let planted = session_cookie(&login(None, "gina").await.expect("POST")).expect("cookie");
    assert_eq!(
        visit(planted.clone()).await.expect("GET").status(),
        StatusCode::OK,
        "the planted id is a valid logged-in session"
    );
    for username in ["gina", "hank"] {
        let response = login(Some(planted.clone()), username).await.expect("POST");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let fresh = session_cookie(&response).expect("login sets a session cookie");
        assert_ne!(fresh, planted, "{username}: a new id is issued");
        assert_eq!(
            visit(fresh).await.expect("GET").status(),
            StatusCode::OK,
            "{username}: the new id works"
        );
    }
    let old = visit(planted).await.expect("GET");
    assert_eq!(
        old.status(),
        StatusCode::SEE_OTHER,
        "the planted id is dead"
    );
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
    assert_eq!(login_page.status(), StatusCode::OK);
    let html = login_page.text().await.expect("body");
    assert!(html.contains("name=\"next\""));
    assert!(html.contains("value=\"/topics/\""), "{html}");

    // Server functions refuse anonymous callers too.
    let api = client.post_form("/api/unsubscribe_all", &[]).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("grace").await, "/topics/").await;
    assert_eq!(client.get("/topics/").await.status(), StatusCode::OK);

    expect_redirect(client.post_form("/logout", &[]).await, "/topics/").await;
    expect_redirect(client.get("/topics/").await, "/login?next=/topics/").await;
}

#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let server = TestServer::start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = [("username", "mallory"), ("password", PASSWORD)];

    let evil_origin = http
        .post(server.url("/signup"))
        .header("Origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(evil_origin.status(), StatusCode::FORBIDDEN);

    let evil_referer = http
        .post(server.url("/login"))
        .header("Referer", "http://evil.example/page")
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(evil_referer.status(), StatusCode::FORBIDDEN);

    let evil_server_fn = http
        .post(server.url("/api/list_topics"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(evil_server_fn.status(), StatusCode::FORBIDDEN);

    // The refused signup created nothing.
    expect_redirect(server.client().signup("mallory").await, "/topics/").await;
}

#[tokio::test]
async fn behind_an_https_public_origin_the_cookie_is_secure_and_that_origin_may_post() {
    let server = TestServer::start_with(&[("PUBLIC_ORIGIN", "https://Subs.Example.com")]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let post = |path: &str, origin: Option<&'static str>, username: &'static str| {
        let mut request = http
            .post(server.url(path))
            .form(&[("username", username), ("password", PASSWORD)]);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    // The proxy forwards to 127.0.0.1, so Host is not the public name: the origin is trusted.
    let signup = post("/signup", Some("https://subs.example.com"), "wanda")
        .await
        .expect("POST");
    assert_eq!(signup.status(), StatusCode::SEE_OTHER);
    let cookie = signup
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.starts_with("__Host-subscriptions_session="),
        "{cookie}"
    );
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );

    let evil = post("/login", Some("https://evil.example"), "wanda")
        .await
        .expect("POST");
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    // Neither Origin nor Referer: not from another site's page (browsers send Origin there).
    let bare = post("/login", None, "wanda").await.expect("POST");
    assert_eq!(bare.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("heidi").await, "/topics/").await;
    let cookie = client
        .http
        .get(server.url("/topics/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(cookie.status(), StatusCode::OK);

    let db = server.stop();
    let restarted = TestServer::start_on(&db);
    // Same cookie jar, new process on a new port: the cookie is sent to the same host.
    let page = client.against(&restarted).get("/topics/").await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "still logged in after the restart"
    );
    assert!(page.text().await.expect("body").contains("heidi"));
    drop(restarted);
    drop(db);
}

#[tokio::test]
async fn a_used_session_is_renewed_at_most_daily_and_an_idle_limit_counts_from_the_last_visit() {
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("ivan").await, "/topics/").await;
    let page = client.get("/topics/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers().get(SET_COOKIE).is_none(),
        "signing in counts as a renewal: the next page view writes nothing"
    );

    // The session as it stands after more than a day of use without a renewal, with an
    // hour left of its idle limit. Restarting empties the server's session memory.
    let db = server.stop();
    let sql = if db.is_postgres() {
        "UPDATE sessions
            SET data = convert_to(
                    jsonb_set(convert_from(data, 'UTF8')::jsonb, '{data,renewed_at}', '0')::text,
                    'UTF8'),
                expiry_date = extract(epoch FROM now())::bigint + 3600"
    } else {
        "UPDATE sessions
            SET data = CAST(json_set(CAST(data AS TEXT), '$.data.renewed_at', 0) AS BLOB),
                expiry_date = unixepoch() + 3600"
    };
    execute_sql(&db, sql).await;
    let restarted = TestServer::start_on(&db);
    let page = client.against(&restarted).get("/topics/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("Max-Age=1209600"),
        "the cookie is sent again with the full 14 days: {cookie:?}"
    );
    assert!(page.text().await.expect("body").contains("ivan"));
    assert_eq!(
        count_sql(
            &db,
            format!(
                "SELECT count(*) AS n FROM sessions WHERE expiry_date > {}",
                unix_now() + 13 * 86400
            )
        )
        .await,
        1,
        "the stored expiry moved 14 days past this visit"
    );
    let again = client.against(&restarted).get("/topics/").await;
    assert!(again.headers().get(SET_COOKIE).is_none(), "renewed once");
    drop(restarted);
    drop(db);
}

#[tokio::test]
async fn a_session_ends_thirty_days_after_sign_in_however_often_it_is_used() {
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("vera").await, "/topics/").await;
    // Signed in 31 days ago and used daily since (renewed an hour ago, idle limit far off).
    let db = server.stop();
    let sql = if db.is_postgres() {
        "UPDATE sessions
            SET data = convert_to(jsonb_set(jsonb_set(convert_from(data, 'UTF8')::jsonb,
                    '{data,signed_in_at}', to_jsonb(extract(epoch FROM now())::bigint - 31 * 86400)),
                    '{data,renewed_at}', to_jsonb(extract(epoch FROM now())::bigint - 3600))::text,
                    'UTF8'),
                expiry_date = extract(epoch FROM now())::bigint + 13 * 86400"
    } else {
        "UPDATE sessions
            SET data = CAST(json_set(CAST(data AS TEXT),
                    '$.data.signed_in_at', unixepoch() - 31 * 86400,
                    '$.data.renewed_at', unixepoch() - 3600) AS BLOB),
                expiry_date = unixepoch() + 13 * 86400"
    };
    execute_sql(&db, sql).await;
    let restarted = TestServer::start_on(&db);
    let page = client.against(&restarted).get("/topics/").await;
    assert_eq!(location(&page), "/login?next=/topics/");
    assert_eq!(
        count_sql(&db, "SELECT count(*) AS n FROM sessions").await,
        0,
        "the session is gone, not just refused"
    );
    let again = client.against(&restarted).get("/topics/").await;
    assert_eq!(location(&again), "/login?next=/topics/");
    drop(restarted);
    drop(db);
}

#[test]
fn a_sigterm_as_soon_as_the_server_listens_is_a_clean_shutdown() {
    // Process managers may stop a server the moment it is up; the handlers must already be
    // in place when "listening on" is printed, or SIGTERM kills the process mid-start.
    for _ in 0..5 {
        drop(TestServer::start().stop()); // asserts exit status 0
    }
}

#[tokio::test]
async fn unknown_paths_get_the_styled_404() {
    let server = TestServer::start();
    let response = server.client().get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("Page not found"));
}

#[tokio::test]
async fn an_unopenable_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").expect("write");
    let stderr = start_fails(&format!("sqlite://{}/app.db", blocker.display()));
    assert!(
        stderr.contains("cannot create the database folder"),
        "{stderr}"
    );
}

#[tokio::test]
async fn create_user_command_makes_staff_accounts() {
    let server = TestServer::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["create-user", "admin", "--staff"])
        .env("DATABASE_URL", server.db.url())
        .env("SUBSCRIPTIONS_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("created staff user"));

    let client = server.client();
    expect_redirect(client.login("admin", PASSWORD, "").await, "/topics/").await;
    let html = client.get("/topics/").await.text().await.expect("body");
    assert!(html.contains("(staff)"), "{html}");
}

#[test]
fn an_unreachable_postgres_is_a_startup_error_with_the_drivers_reason() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let stderr = start_fails("postgres://app:s3cret@127.0.0.1:1/subscriptions");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/subscriptions"),
        "names the database without its password: {stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_misconfigured_postgres_is_a_startup_error_with_the_drivers_reason() {
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| domain::db::scratch::DEFAULT_SERVER_URL.to_owned());
    let missing = format!(
        "{}/no_such_database_here",
        server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base)
    );
    let stderr = start_fails(&missing);
    assert!(
        stderr.contains("database \"no_such_database_here\" does not exist"),
        "{stderr}"
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Starts the server on `database_url`, expects it to exit with a failure; its stderr.
fn start_fails(database_url: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env("DATABASE_URL", database_url)
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!output.status.success(), "the server must not start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
