//! Serving accepted connections, with the limits a slow or greedy client meets.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never runs: a client
//! that sends a request head one byte at a time (slowloris) holds its connection for ever, and
//! nothing bounds how many connections are held. Here each connection is served by hyper with
//! a timer, and connections past the cap are answered `503` at once. Graceful shutdown is
//! axum's: stop accepting when `shutdown` completes, ask every connection to finish its
//! request, and wait for them.
//!
//! A connection speaks HTTP/1.1, or HTTP/2 when it opens with HTTP/2's preface (cleartext
//! "prior knowledge", as a proxy in front speaks it to its upstreams). Over HTTP/2 many open
//! pages' event streams share one connection, so the streams one server follows are not
//! bounded by the sockets (open files) a process may hold.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::Request;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::shutdown::Connections;

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// How long a client has to send a whole request head, counted from when the server
    /// starts waiting for it (so an idle keep-alive connection is closed after it too).
    pub header_read_timeout: Duration,
    /// Requests (streams) one HTTP/2 connection carries at once.
    pub streams_per_connection: u32,
}

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take: a peer
/// that went away without closing frees its streams within a minute.
const HTTP2_PING_EVERY: Duration = Duration::from_secs(30);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The answer to a connection past the cap, sent without reading its request.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 52\r\n\
\r\n\
The server is at capacity. Please try again shortly.";

/// How long a refused connection is given to take its answer.
const REFUSAL_WITHIN: Duration = Duration::from_secs(2);

/// Serves `router` on the connections `listener` accepts until `shutdown` completes, then
/// lets the open requests finish.
pub async fn serve<L, F>(
    mut listener: L,
    router: Router,
    limits: Limits,
    connections: Connections,
    shutdown: F,
) where
    L: Listener<Addr = SocketAddr>,
    F: Future<Output = ()> + Send,
{
    let http = std::sync::Arc::new(builder(&limits));
    // Tells the connections to finish gracefully; each holds a receiver until it ends, so the
    // sender sees when the last one has.
    let (finish, finishing) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // The accepted connection is counted already.
        if connections.open() > limits.max_connections {
            tokio::spawn(refuse(io));
            continue;
        }
        // As `into_make_service_with_connect_info` does: the peer's address, for the throttle.
        let service = tower::Layer::layer(&axum::Extension(ConnectInfo(remote)), router.clone())
            .map_request(|request: Request<Incoming>| request.map(Body::new));
        let service = TowerToHyperService::new(service);
        let mut finishing = finishing.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let connection = http.serve_connection(TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(err) = served {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    changed = finishing.wait_for(|finish| *finish), if !asked => {
                        asked = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = finish.send(true);
    drop(finishing);
    finish.closed().await;
}

/// HTTP/1.1 with its header-read timeout, and HTTP/2 with bounded streams and pings.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.streams_per_connection)
        .keep_alive_interval(HTTP2_PING_EVERY)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT);
    http
}

/// Answers `503` without reading the request, then reads what the client sent so that
/// closing does not reset the connection before the answer arrives.
async fn refuse<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
    let answered = tokio::time::timeout(REFUSAL_WITHIN, async {
        io.write_all(OVER_CAPACITY).await?;
        io.shutdown().await?;
        let mut sink = [0_u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    if let Ok(Err(err)) = answered {
        tracing::debug!(error = %err, "a refused connection failed");
    }
}

/// Descriptors kept for what is not a client connection: database files, the listening
/// socket, logs.
const RESERVED_FILES: u64 = 128;

/// The connection cap actually applied: `configured`, but never more connections than the
/// process may open files (past that, accepting fails and clients would wait unanswered in
/// the backlog rather than get their `503`). Raises the soft open-file limit to the hard one
/// first, as servers commonly do.
pub fn connection_cap(configured: usize) -> usize {
    let Some(files) = raise_open_file_limit() else {
        return configured;
    };
    let allowed =
        usize::try_from(files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
    if allowed < configured {
        tracing::warn!(
            configured,
            applied = allowed,
            open_file_limit = files,
            "MAX_CONNECTIONS is above what the open-file limit allows"
        );
    }
    configured.min(allowed)
}

/// The open-file limit after raising the soft limit to the hard one; `None` where it cannot
/// be read.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}
