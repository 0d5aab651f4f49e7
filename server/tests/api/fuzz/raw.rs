//! Requests no HTTP library would send, written to a raw socket: broken request lines and
//! headers, lying lengths, bad chunking, huge heads, invalid UTF-8, other protocols, random
//! bytes. Each must be answered with a 4xx (or the connection closed) without a hang, and
//! the server must go on serving.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cases::Cases;
use super::HANG;
use crate::support::TestServer;

fn malformed() -> Vec<Vec<u8>> {
    let big = "A".repeat(100 * 1024);
    let many_headers: String = (0..5_000).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let texts = [
        "GARBAGE\r\n\r\n".to_owned(),
        "\r\n\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.0\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/9.9\r\nHost: x\r\n\r\n".to_owned(),
        "GET /topics/\r\n\r\n".to_owned(),
        "GET  /  HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.1\r\nHost: x\r\n : empty name\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.1\nHost: x\n\n".to_owned(),
        format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: subscriptions_session={big}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nusername=a"
            .to_owned(),
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_owned(),
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"
            .to_owned(),
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            .to_owned(),
        "POST /signup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\
         \r\n0\r\n\r\n"
            .to_owned(),
        "POST /signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n"
            .to_owned(),
        "POST /signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            .to_owned(),
        "POST /api/create_topic HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         FFFFFFFFFFFFFFFF\r\nabc\r\n"
            .to_owned(),
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        "GET http://evil.example/topics/ HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        "GET /topics/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_owned(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nJUNK\r\n\r\n"
            .to_owned(),
    ];
    let mut requests: Vec<Vec<u8>> = texts.into_iter().map(String::into_bytes).collect();
    requests.push(b"GET /\xff\xfe/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    requests.push(b"GET /topics/ HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n".to_vec());
    requests.push(b"GET /topics/ HTTP/1.1\r\nHost: \xc0\xaf\r\nCookie: \xff=\xfe\r\n\r\n".to_vec());
    requests.push(
        b"POST /api/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\n\xff\xfe\xfd\xfc\xfb\xfa"
            .to_vec(),
    );
    requests
}

/// Writes `request` on a new connection, closes the sending half, and reads what comes back
/// until the server closes; the status codes of every answer in it.
async fn statuses(server: &TestServer, request: &[u8]) -> Result<Vec<u16>, String> {
    let mut stream = server.raw_connection().await;
    // The server may close (or reset) before it has read everything; that is an answer too.
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(HANG, stream.read_to_end(&mut answer)).await;
    if read.is_err() {
        return Err(format!("no end within {HANG:?}"));
    }
    let text = String::from_utf8_lossy(&answer);
    Ok(text
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect())
}

#[tokio::test]
async fn malformed_requests_on_a_raw_socket_get_a_4xx_or_a_closed_connection() {
    let server = TestServer::start();
    let mut rng = Cases::new(super::env_number("FUZZ_SEED", 0x5EED_CAFE));
    let mut requests = malformed();
    for _ in 0..40 {
        let mut junk = b"POST /api/list_topics HTTP/1.1\r\nHost: x\r\n".to_vec();
        junk.extend(rng.bytes(2048));
        requests.push(junk);
        requests.push(rng.bytes(256));
    }
    for request in &requests {
        let shown = String::from_utf8_lossy(&request[..request.len().min(120)]).into_owned();
        let statuses = statuses(&server, request)
            .await
            .unwrap_or_else(|err| panic!("{shown:?}: {err}"));
        assert!(
            statuses.iter().all(|status| *status < 500),
            "{shown:?} got {statuses:?}"
        );
    }
    // The two pipelined health checks before the junk were answered.
    let pipelined = requests
        .iter()
        .find(|r| r.starts_with(b"GET /healthz"))
        .expect("the pipelined case");
    assert_eq!(
        statuses(&server, pipelined).await.expect("answers")[..2],
        [200, 200]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let page = server.client().get("/healthz").await;
    assert_eq!(page.status(), reqwest::StatusCode::OK, "still serving");
}
