//! Transport details a browser depends on: compressed responses, static files with long-lived
//! caching and no session work.

use crate::support::{expect_redirect, TestServer};
use reqwest::StatusCode;

#[tokio::test]
async fn static_files_are_precompressed_cacheable_and_sessionless() {
    let site = tempfile::tempdir().expect("site dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg dir");
    let script = "console.log('hello');".repeat(100);
    std::fs::write(pkg.join("app.abc123.js"), &script).expect("write js");
    std::fs::write(pkg.join("app.abc123.js.gz"), b"pretend gzip").expect("write gz");
    let root = site.path().display().to_string();
    let server = TestServer::start_with(&[
        ("LEPTOS_SITE_ROOT", root.as_str()),
        ("LEPTOS_HASH_FILES", "true"),
    ]);
    let client = reqwest::Client::new();

    let plain = client
        .get(server.url("/pkg/app.abc123.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );
    assert!(plain.headers().get("set-cookie").is_none());
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.expect("body"), script);

    let gzipped = client
        .get(server.url("/pkg/app.abc123.js"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        gzipped
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    assert_eq!(
        gzipped.bytes().await.expect("body").as_ref(),
        b"pretend gzip",
        "the file compressed ahead of time is served as it is"
    );

    let missing = client
        .get(server.url("/pkg/nope.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_are_compressed_when_asked_and_streams_never() {
    let server = TestServer::start();
    let client = server.client();
    expect_redirect(client.signup("zip").await, "/topics/").await;

    let page = client
        .http
        .get(server.url("/topics/"))
        .header("Accept-Encoding", "br, gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let encoding = page
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(
        matches!(encoding.as_deref(), Some("br" | "gzip")),
        "{encoding:?}"
    );

    let identity = client.get("/topics/").await;
    assert!(identity.headers().get("content-encoding").is_none());

    let mut events = client
        .http
        .get(server.url("/topics/events/"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert!(events.headers().get("content-encoding").is_none());
    let first = events.chunk().await.expect("chunk").expect("data");
    assert!(String::from_utf8_lossy(&first).contains("event: version"));
}
