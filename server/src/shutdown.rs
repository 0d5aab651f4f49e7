//! Stopping without failing a request, behind a load balancer or not.
//!
//! HTTP/1.1 keep-alive has one unsafe moment: a server that closes an idle connection just as
//! the proxy sends a request down it fails that request, and a proxy does not resend a POST it
//! has sent. So the server never closes a connection its client may be about to use:
//!
//! 1. **Drain** (`SHUTDOWN_DRAIN_SECONDS`): `/readyz` answers 503, everything else is served
//!    as usual, so that balancers probing readiness stop sending requests here.
//! 2. **Close the door**: the listening socket closes (new connections are refused, which a
//!    proxy retries elsewhere, POSTs included: nothing was sent); connections already queued
//!    in the socket's backlog are accepted first and served. Open live streams end (pages
//!    reconnect, elsewhere). Each response now says `Connection: close`, and idle
//!    connections are left for their client to close (nginx's idle keep-alive timeout is
//!    shorter than [`CLIENTS_CLOSE_WITHIN`]), until none is open.
//! 3. **Finish**: whatever is still open is shut down gracefully (idle connections closed,
//!    open requests finished). From the moment the door closed, stages 2 and 3 together
//!    take at most `SHUTDOWN_DEADLINE_SECONDS`; what is still open then is cut off.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// How long, after the door closed, idle connections are left for their clients to close.
pub const CLIENTS_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// What the stages share: whether the door is closed, and how many connections are open.
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    closing: AtomicBool,
    /// Woken whenever a connection ends.
    ended: Notify,
}

impl Connections {
    /// From now on each response asks its client to close the connection.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Relaxed)
    }

    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Waits until no connection is open, or `limit` passed. Returns how many remain.
    pub async fn wait_until_closed(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ended = self.inner.ended.notified();
            let open = self.open();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.open();
            }
        }
    }
}

/// The listening socket, which can be closed while the server goes on serving the
/// connections it accepted.
pub struct DoorListener {
    listener: Option<TcpListener>,
    close: watch::Receiver<bool>,
    /// Accepted from the backlog while closing, handed out one by one.
    queued: VecDeque<(TcpStream, SocketAddr)>,
    connections: Connections,
    local: SocketAddr,
}

impl DoorListener {
    /// Returns the listener and the switch that closes it (send `true`).
    pub fn new(
        listener: TcpListener,
        connections: Connections,
    ) -> io::Result<(Self, watch::Sender<bool>)> {
        let (switch, close) = watch::channel(false);
        let local = listener.local_addr()?;
        Ok((
            DoorListener {
                listener: Some(listener),
                close,
                queued: VecDeque::new(),
                connections,
                local,
            },
            switch,
        ))
    }

    fn counted(&self, (stream, addr): (TcpStream, SocketAddr)) -> (Counted, SocketAddr) {
        self.connections.inner.open.fetch_add(1, Ordering::Relaxed);
        (
            Counted {
                stream,
                connections: self.connections.clone(),
            },
            addr,
        )
    }

    /// Takes every connection already waiting in the backlog, then closes the socket: a
    /// connection completed but never accepted would be reset after its client sent a request.
    fn close_door(&mut self) {
        if let Some(listener) = self.listener.take() {
            while let Some(Ok(accepted)) = listener.accept().now_or_never() {
                self.queued.push_back(accepted);
            }
            drop(listener);
            self.connections
                .inner
                .closing
                .store(true, Ordering::Relaxed);
            tracing::info!(
                accepted_while_closing = self.queued.len(),
                "no longer accepting connections"
            );
        }
    }
}

impl axum::serve::Listener for DoorListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(accepted) = self.queued.pop_front() {
                return self.counted(accepted);
            }
            let Some(listener) = &self.listener else {
                // Closed: the server serves what it has until it is told to stop.
                std::future::pending::<()>().await;
                continue;
            };
            let close = &mut self.close;
            let closing = async {
                // A dropped switch means nobody will close the door: wait for ever.
                if close.wait_for(|close| *close).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => Some(accepted),
                () = closing => None,
            };
            match accepted {
                Some(Ok(accepted)) => return self.counted(accepted),
                Some(Err(err)) => {
                    // Per-connection errors are the client's; running out of descriptors
                    // passes with time (as axum's own listener treats them).
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => self.close_door(),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A connection, counted while open.
pub struct Counted {
    stream: TcpStream,
    connections: Connections,
}

impl Counted {
    /// Small responses must leave at once: without NODELAY, Nagle's algorithm meets the
    /// client's delayed ACK and a keep-alive connection stalls ~40 ms per response.
    pub fn send_without_delay(&mut self) {
        if let Err(err) = self.stream.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.connections.inner.open.fetch_sub(1, Ordering::Relaxed);
        self.connections.inner.ended.notify_waiters();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
