//! Transport details a browser depends on: compressed responses, static files with long-lived
//! caching and no session work.

use crate::support::{expect_page, header, settings, Sent, TestServer};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn static_files_are_precompressed_cacheable_and_sessionless() {
    let site = tempfile::tempdir().expect("site dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg dir");
    let script = "console.log('hello');".repeat(100);
    std::fs::write(pkg.join("app.abc123.js"), &script).expect("write js");
    std::fs::write(pkg.join("app.abc123.js.gz"), b"pretend gzip").expect("write gz");
    // A debug build's wasm: several megabytes, nothing compressed ahead of time.
    let wasm: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
    std::fs::write(pkg.join("app.abc123.wasm"), &wasm).expect("write wasm");
    let root = site.path().display().to_string();
    let server = TestServer::start_with(&[
        ("LEPTOS_SITE_ROOT", root.as_str()),
        ("LEPTOS_HASH_FILES", "true"),
    ]);
    let client = reqwest::Client::new();

    let plain = client.get(server.url("/pkg/app.abc123.js")).sent().await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        header(&plain, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers().get("set-cookie").is_none());
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.expect("body"), script);

    let gzipped = client
        .get(server.url("/pkg/app.abc123.js"))
        .header("Accept-Encoding", "gzip")
        .sent()
        .await;
    assert_eq!(header(&gzipped, "content-encoding"), "gzip");
    assert_eq!(
        gzipped.bytes().await.expect("body").as_ref(),
        b"pretend gzip",
        "the file compressed ahead of time is served as it is"
    );

    // Compressing it per request took seconds; sent as it is, it arrives at once.
    let debug_wasm = client
        .get(server.url("/pkg/app.abc123.wasm"))
        .header("Accept-Encoding", "br, gzip")
        .sent()
        .await;
    assert_eq!(debug_wasm.status(), StatusCode::OK);
    assert!(
        debug_wasm.headers().get("content-encoding").is_none(),
        "wasm without a precompressed file is not compressed on the fly"
    );
    assert_eq!(debug_wasm.bytes().await.expect("body").as_ref(), wasm);

    let missing = client.get(server.url("/pkg/nope.js")).sent().await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_are_compressed_when_asked_and_streams_never() {
    let (_server, client) = TestServer::with_member("zip").await;

    let page = client
        .to(Method::GET, "/topics/")
        .header("Accept-Encoding", "br, gzip")
        .sent()
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let encoding = crate::support::header_of(&page, "content-encoding");
    assert!(
        matches!(encoding.as_deref(), Some("br" | "gzip")),
        "{encoding:?}"
    );

    let identity = client.get("/topics/").await;
    assert!(identity.headers().get("content-encoding").is_none());

    let mut events = client
        .to(Method::GET, "/topics/events/")
        .header("Accept-Encoding", "gzip")
        .sent()
        .await;
    assert!(events.headers().get("content-encoding").is_none());
    let first = events.chunk().await.expect("chunk").expect("data");
    assert!(String::from_utf8_lossy(&first).contains("event: version"));
}

/// The nonce on a page's inline scripts (Leptos puts one on each).
fn script_nonce(html: &str) -> Option<String> {
    let start = html.find("<script")?;
    let tag = &html[start..start + html[start..].find('>')?];
    let value = tag.split("nonce=\"").nth(1)?;
    Some(value[..value.find('"')?].to_owned())
}

#[tokio::test]
async fn pages_carry_security_headers_and_a_policy_naming_their_own_nonce() {
    let (server, alice) = TestServer::with_member("alice").await;
    // The second load of the list is a stored page: it must bring its own policy along.
    let mut nonces = Vec::new();
    for path in ["/login", "/topics/", "/topics/", "/topics/activity/"] {
        let response = alice.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert_eq!(header(&response, "referrer-policy"), "same-origin");
        assert_eq!(header(&response, "cache-control"), "private, no-store");
        let policy = header(&response, "content-security-policy").to_owned();
        let html = response.text().await.expect("body");
        let nonce = script_nonce(&html).unwrap_or_else(|| panic!("{path}: no nonce in {html}"));
        assert!(
            policy.contains(&format!("'nonce-{nonce}'")),
            "{path}: {policy} names the scripts' nonce {nonce}"
        );
        for directive in [
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "each render has its own nonce");
    assert_eq!(
        server.metric("page_cache_hits_total").await,
        1,
        "the second list was a stored page"
    );

    let health = reqwest::get(server.url("/healthz")).await.expect("GET");
    assert_eq!(header(&health, "x-content-type-options"), "nosniff");
    assert!(header(&health, "content-security-policy").starts_with("default-src 'none'"));
}

#[tokio::test]
async fn metrics_are_for_the_operator_only() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let anonymous = http.get(server.url("/metrics")).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let with_token = |token: &str| http.get(server.url("/metrics")).bearer_auth(token).sent();
    assert_eq!(
        with_token("not-the-token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let operator = with_token(crate::support::METRICS_TOKEN).await;
    expect_page(operator, StatusCode::OK, "sql_statements_total").await;

    // Without a token configured the route is not there at all.
    let unconfigured = TestServer::start_with(&[("METRICS_TOKEN", "")]);
    let response = http
        .get(unconfigured.url("/metrics"))
        .bearer_auth("")
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_over_long_body_is_refused_before_it_is_read() {
    let (_server, alice) = TestServer::with_member("alice").await;
    let huge = "x".repeat(200 * 1024);
    for path in ["/topics/create/", "/api/create_topic", "/login"] {
        let response = alice.post_form(path, &[("name", huge.as_str())]).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    assert!(!alice
        .get("/topics/")
        .await
        .text()
        .await
        .expect("body")
        .contains("xxxxxxxx"));
}

#[tokio::test]
async fn junk_in_the_query_string_is_served_the_same_stored_page() {
    let (server, alice) = TestServer::with_member("alice").await;
    let first = alice.get("/topics/").await.text().await.expect("body");
    for junk in [
        "/topics/?utm_source=x",
        "/topics/?page=1&ref=mail",
        "/topics/?q=",
    ] {
        let again = alice.get(junk).await.text().await.expect("body");
        assert_eq!(
            crate::support::topics(&again),
            crate::support::topics(&first),
            "{junk}"
        );
    }
    assert_eq!(server.metric("page_cache_misses_total").await, 1);
    assert_eq!(server.metric("page_cache_hits_total").await, 3);
}

/// The JSON log lines whose message contains `needle`, waiting briefly for them.
async fn json_log_lines(server: &TestServer, needle: &str) -> Vec<serde_json::Value> {
    for _ in 0..40 {
        let found: Vec<serde_json::Value> = server
            .logs()
            .iter()
            .filter(|line| line.contains(needle))
            .map(|line| serde_json::from_str(line).expect("each log line is JSON"))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no log line contains {needle:?}: {:?}", server.logs());
}

/// The outermost span of a JSON log line: the request's.
fn request_span(line: &serde_json::Value) -> &serde_json::Value {
    let span = &line["spans"][0];
    assert_eq!(span["name"], "request", "{line}");
    span
}

async fn create_with_id(
    client: &crate::support::TestClient,
    name: &str,
    id: &str,
) -> reqwest::Response {
    client
        .to(Method::POST, "/topics/create/")
        .header("x-request-id", id)
        .form(&[("name", name)])
        .sent()
        .await
}

#[tokio::test]
async fn every_request_has_an_id_that_its_log_lines_carry() {
    let (server, alice) = TestServer::with_member_on(&[("LOG_FORMAT", "json")], "alice").await;

    // Not behind a trusted proxy: a client's id is replaced by one made here.
    let response = create_with_id(&alice, "Traced", "chosen-by-the-client").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = header(&response, "x-request-id").to_owned();
    assert_ne!(id, "chosen-by-the-client");
    assert_eq!(id.len(), 32, "32 hex digits: {id}");
    let topic = crate::support::count_sql(
        &server.db,
        "SELECT id AS n FROM topics WHERE name = 'Traced'",
    )
    .await;

    // The signal receiver's line, written on a database thread, names the request.
    let lines = json_log_lines(&server, &format!("Topic {topic} changed: created")).await;
    assert_eq!(lines.len(), 1);
    let request = request_span(&lines[0]);
    assert_eq!(request["request_id"], id.as_str(), "{}", lines[0]);
    assert_eq!(request["path"], "/topics/create/");
    // Every response has one, pages and probes alike.
    let page = alice.get("/topics/").await;
    assert_eq!(header(&page, "x-request-id").len(), 32);
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_when_it_is_plain() {
    let (server, alice) =
        TestServer::with_member_on(settings::JSON_LOGS_BEHIND_A_PROXY, "alice").await;

    let response = create_with_id(&alice, "Proxied", "lb-7f3a.42").await;
    assert_eq!(header(&response, "x-request-id"), "lb-7f3a.42");
    let topic = crate::support::count_sql(
        &server.db,
        "SELECT id AS n FROM topics WHERE name = 'Proxied'",
    )
    .await;
    let lines = json_log_lines(&server, &format!("Topic {topic} changed: created")).await;
    assert_eq!(request_span(&lines[0])["request_id"], "lb-7f3a.42");

    // Anything that could forge a log entry is replaced.
    let forged = create_with_id(&alice, "Forged", "x\",\"level\":\"ERROR").await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&forged, "x-request-id").len(), 32);
}

/// One series of the metrics text, by its exact name and labels.
async fn series(server: &TestServer, name_and_labels: &str) -> Option<f64> {
    let (value, _) = server.metric_series(name_and_labels).await;
    value.and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_time_every_route_and_show_the_pool_and_queues() {
    let (server, alice) = TestServer::with_member("alice").await;
    let topic = alice.topics().await[0].0;
    for _ in 0..3 {
        alice.subscribe(topic).await;
    }
    assert_eq!(
        alice.get("/topics/subscribe/nope/").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let subscribed =
        r#"http_request_duration_seconds_count{route="/topics/subscribe/{id}/",status="3xx"}"#;
    assert_eq!(
        series(&server, subscribed).await,
        Some(3.0),
        "one series per route, ids folded"
    );
    let bucket = r#"http_request_duration_seconds_bucket{route="/topics/subscribe/{id}/",status="3xx",le="+Inf"}"#;
    assert_eq!(series(&server, bucket).await, Some(3.0));
    assert_eq!(
        series(
            &server,
            r#"http_request_duration_seconds_count{route="/topics/subscribe/{id}/",status="4xx"}"#
        )
        .await,
        Some(1.0)
    );
    // The scrape itself is the one request in flight.
    assert_eq!(series(&server, "http_requests_in_flight").await, Some(1.0));
    assert_eq!(series(&server, "db_pool_connections_max").await, Some(8.0));
    assert!(series(&server, "db_pool_connections")
        .await
        .is_some_and(|open| open >= 1.0));
    assert_eq!(series(&server, "db_pool_waiting").await, Some(0.0));
    assert_eq!(series(&server, "password_checks_pending").await, Some(0.0));
    assert_eq!(series(&server, "purge_backlog_topics").await, Some(0.0));
    assert_eq!(series(&server, "live_streams").await, Some(0.0));
}
