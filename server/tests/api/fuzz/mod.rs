//! Hostile input to every form route and server function, logged out, as a member and as
//! staff: mutated paths and ids, every method, random and invalid-UTF-8 bodies, wrong content
//! types, huge fields, garbage and oversized cookies and headers; and malformed requests on a
//! raw socket ([`raw`]). None may answer a 5xx or hang; the server keeps serving; a refused
//! request changes nothing in the database; and afterwards every count a page shows is the
//! database's. A fixed seed keeps the run repeatable; run longer with e.g.
//! `FUZZ_CASES=20000 FUZZ_SEED=7 cargo test -p server --features app/ssr --test api fuzz`.

mod cases;
mod raw;

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{member, staff, Reader, TestClient, TestServer};
use cases::Cases;

/// Far past any answer this server gives; reaching it is a hang.
const HANG: Duration = Duration::from_secs(20);

const METHODS: &[&str] = &[
    "POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND",
];

const SERVER_FUNCTIONS: &[&str] = &[
    "list_topics",
    "create_topic",
    "rename_topic",
    "delete_topic",
    "subscribe",
    "unsubscribe",
    "unsubscribe_all",
    "list_activity",
    "no_such_function",
];

const FIELDS: &[&str] = &[
    "name",
    "username",
    "password",
    "next",
    "topic_id",
    "request",
    "request[page]",
    "request[query]",
    "page",
    "csrf",
];

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin1",
    "application/json",
    "application/cbor",
    "text/plain",
    "multipart/form-data; boundary=x",
    "multipart/form-data",
    ";;;",
    "",
];

const HEADERS: &[&str] = &[
    "cookie",
    "origin",
    "referer",
    "x-forwarded-for",
    "x-request-id",
    "accept",
    "accept-encoding",
    "accept-language",
    "if-none-match",
    "range",
    "host",
];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn path(rng: &mut Cases) -> String {
    match rng.below(14) {
        0 => "/signup".to_owned(),
        1 => "/login".to_owned(),
        2 => "/logout".to_owned(),
        3 => "/topics/create/".to_owned(),
        4 => format!("/topics/subscribe/{}/", rng.id()),
        5 => format!("/topics/unsubscribe/{}/", rng.id()),
        6 => format!("/topics/rename/{}/", rng.id()),
        7 => format!("/topics/delete/{}/", rng.id()),
        8 => "/topics/unsubscribe-all/".to_owned(),
        9 | 10 => format!("/api/{}", rng.pick(SERVER_FUNCTIONS)),
        11 => format!("/topics/?page={}&q={}", rng.id(), rng.text()),
        12 => format!("/topics/activity/?page={}", rng.id()),
        _ => format!("/{}/{}", rng.text(), rng.id()),
    }
}

fn body(rng: &mut Cases) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.bytes(512),
        1 => format!(
            "{{\"topic_id\": {}, \"name\": \"{}\"}}",
            rng.id(),
            rng.text()
        )
        .into_bytes(),
        _ => (0..rng.below(5))
            .map(|_| {
                let value = if rng.one_in(2) { rng.id() } else { rng.text() };
                format!("{}={value}", rng.pick(FIELDS))
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes(),
    }
}

/// What a refused request must not have moved: live rows and what pages count of them
/// (retired topics are left out, as the purge removes them in the background).
async fn fingerprint(db: &Reader) -> Vec<i64> {
    let mut values = Vec::new();
    for sql in [
        "SELECT COUNT(*) AS n FROM users",
        "SELECT COUNT(*) AS n FROM topics WHERE deleted_at IS NULL",
        "SELECT CAST(COALESCE(SUM(LENGTH(name) + subscriber_count), 0) AS BIGINT) AS n \
         FROM topics WHERE deleted_at IS NULL",
        "SELECT COUNT(*) AS n FROM topic_subscribers s JOIN topics t ON t.id = s.topic_id \
         WHERE t.deleted_at IS NULL",
        "SELECT COUNT(*) AS n FROM topic_activities a LEFT JOIN topics t ON t.id = a.topic_id \
         WHERE a.topic_id IS NULL OR t.deleted_at IS NULL",
    ] {
        values.push(db.count(sql).await);
    }
    values
}

/// Every count on every list page equals the database's COUNT(*) for that topic.
async fn pages_match_the_database(client: &TestClient, db: &Reader) {
    let mut seen = 0;
    for (id, name, shown, _) in client.all_topics().await {
        let counted = db
            .count(format!(
                "SELECT COUNT(*) AS n FROM topic_subscribers WHERE topic_id = {id}"
            ))
            .await;
        assert_eq!(shown, counted, "{name:?} (topic {id}) shows {shown}");
        seen += 1;
    }
    let live = db
        .count("SELECT COUNT(*) AS n FROM topics WHERE deleted_at IS NULL")
        .await;
    assert_eq!(seen, live, "every live topic is listed once");
}

#[tokio::test]
async fn hostile_requests_never_get_a_5xx_and_refused_ones_change_nothing() {
    let cases = env_number("FUZZ_CASES", 400);
    let mut rng = Cases::new(env_number("FUZZ_SEED", 0x5EED_CAFE));
    let (server, fuzzer) = TestServer::with_member("fuzzer").await;
    let root = staff(&server, "root").await;
    let anonymous = server.client();
    let db = Reader::open(&server.db).await;

    for case in 0..cases {
        let path = path(&mut rng);
        let body = body(&mut rng);
        let method = rng.pick(METHODS);
        let content_type = rng.pick(CONTENT_TYPES);
        let client = match rng.below(5) {
            0 => &anonymous,
            1 | 2 => &root,
            _ => &fuzzer,
        };
        let mut request = client.to(
            Method::from_bytes(method.as_bytes()).expect("method"),
            &path,
        );
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let mut sent_headers = Vec::new();
        for _ in 0..rng.below(3) {
            let name = rng.pick(HEADERS);
            let value = rng.header_value();
            if let Ok(value) = reqwest::header::HeaderValue::from_bytes(&value) {
                sent_headers.push((name, value.len()));
                request = request.header(name, value);
            }
        }
        let before = fingerprint(&db).await;
        let answer = tokio::time::timeout(HANG, request.body(body.clone()).send()).await;
        let described = || {
            format!(
                "case {case}: {method} {path:.200} ({content_type}, headers {sent_headers:?}) \
                 with {:.200}",
                String::from_utf8_lossy(&body)
            )
        };
        let Ok(sent) = answer else {
            panic!("{}: no answer within {HANG:?}", described());
        };
        let Ok(response) = sent else {
            // A request reqwest itself refuses to build or send never reached the server.
            continue;
        };
        let status = response.status();
        assert!(!status.is_server_error(), "{}: got {status}", described());
        if status.is_client_error() {
            assert_eq!(
                fingerprint(&db).await,
                before,
                "{}: refused with {status}, yet the database changed",
                described()
            );
        }
    }

    // Still serving, to someone who signs up now (the fuzz may have logged its clients out).
    assert_eq!(anonymous.get("/healthz").await.status(), StatusCode::OK);
    let auditor = member(&server, "auditor").await;
    pages_match_the_database(&auditor, &db).await;
}
