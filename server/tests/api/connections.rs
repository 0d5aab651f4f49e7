//! Connections on a raw socket: a client that drips its request head, and the cap on open
//! connections.

use crate::support::TestServer;

/// Sends one request on `stream` and reads its answer's head.
async fn ask_health(stream: &mut tokio::net::TcpStream, close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connection = if close { "close" } else { "keep-alive" };
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    // Deadlines here only stop a broken server from hanging the suite.
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut buffer))
                .await
                .expect("an answer")
                .expect("read");
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_dripping_its_request_head_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(&[("HEADER_READ_TIMEOUT_SECONDS", "1")]);
    let mut slow = server.raw_connection().await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .expect("send");
    // One header byte every 100 ms: the connection is never idle, its head never ends.
    let started = std::time::Instant::now();
    let mut cut_off = false;
    let mut buffer = [0_u8; 1024];
    while started.elapsed() < std::time::Duration::from_secs(30) {
        if slow.write_all(b"X").await.is_err() {
            cut_off = true;
            break;
        }
        // An answer (hyper may say 408) is read on; the end of the connection cuts it off.
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            slow.read(&mut buffer),
        )
        .await;
        if let Ok(Ok(0) | Err(_)) = read {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "a request head dripped for 30 s was still being read"
    );

    let mut other = server.raw_connection().await;
    assert!(ask_health(&mut other, true)
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_past_the_cap_get_503_at_once_and_room_comes_back() {
    let server = TestServer::start_with(&[("MAX_CONNECTIONS", "3")]);
    // Three clients hold keep-alive connections (each asked once, so each is counted).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = server.raw_connection().await;
        assert!(ask_health(&mut stream, false)
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(stream);
    }

    let mut fourth = server.raw_connection().await;
    let answer = ask_health(&mut fourth, true).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    // One client leaves: the next connection is served (once the server saw it go).
    drop(held.pop());
    let mut served = false;
    for _ in 0..300 {
        let mut stream = server.raw_connection().await;
        if ask_health(&mut stream, true)
            .await
            .starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "room for a connection did not come back");
}
