//! Sessions: their cookie, renewal and end, across restarts, and the origin checks that guard them.

use crate::support::{
    count_sql, execute_sql, expect_redirect, header, location, Sent, TestServer, PASSWORD,
};
use reqwest::header::SET_COOKIE;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn login_sets_a_fresh_http_only_session_cookie() {
    let server = TestServer::start();
    expect_redirect(server.client().signup("erin").await, "/topics/").await;
    // An attacker who planted a session id in the victim's browser must not see it used.
    let planted = "subscriptions_session=AAAAAAAAAAAAAAAAAAAAAA";
    let http = crate::support::plain_http();
    let response = http
        .post(server.url("/login"))
        .header("Cookie", planted)
        .form(&[("username", "erin"), ("password", PASSWORD), ("next", "")])
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie =
        crate::support::header_of(&response, "set-cookie").expect("login sets a session cookie");
    assert!(cookie.starts_with("subscriptions_session="), "{cookie}");
    assert!(!cookie.starts_with(planted), "a new id is issued: {cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure unless configured");
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
    let http = crate::support::plain_http();
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
async fn cross_origin_posts_are_refused() {
    let server = TestServer::start();
    let http = crate::support::plain_http();
    let form = [("username", "mallory"), ("password", PASSWORD)];

    // A form from another site (by its Origin, or only its Referer), and a server function.
    for (path, header, value, form) in [
        ("/signup", "Origin", "http://evil.example", &form[..]),
        ("/login", "Referer", "http://evil.example/page", &form[..]),
        ("/api/list_topics", "Origin", "http://evil.example", &[]),
    ] {
        let refused = http
            .post(server.url(path))
            .header(header, value)
            .form(form)
            .sent()
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "{path} with {header}"
        );
    }

    // The refused signup created nothing.
    expect_redirect(server.client().signup("mallory").await, "/topics/").await;
}

#[tokio::test]
async fn behind_an_https_public_origin_the_cookie_is_secure_and_that_origin_may_post() {
    let server = TestServer::start_with(&[("PUBLIC_ORIGIN", "https://Subs.Example.com")]);
    let http = crate::support::plain_http();
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
    let cookie = header(&signup, "set-cookie").to_owned();
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
    let (server, client) = TestServer::with_member("heidi").await;
    let cookie = client.to(Method::GET, "/topics/").sent().await;
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
}

#[tokio::test]
async fn a_used_session_is_renewed_at_most_daily_and_an_idle_limit_counts_from_the_last_visit() {
    let (server, client) = TestServer::with_member("ivan").await;
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
    let cookie = header(&page, SET_COOKIE.as_str()).to_owned();
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
}

#[tokio::test]
async fn a_session_ends_thirty_days_after_sign_in_however_often_it_is_used() {
    let (server, client) = TestServer::with_member("vera").await;
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
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
