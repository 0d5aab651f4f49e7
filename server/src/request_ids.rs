//! Every request gets an id, returned in `x-request-id` and carried by every log line the
//! request causes (the request's span), so one request can be found across an instance's log
//! and, with the proxy's id, across the load balancer's.
//!
//! An id a client sends is kept only from a trusted proxy (`TRUSTED_PROXY_HEADER` set: the
//! server sits behind one) and only when it is short and plain; anything else is replaced, so
//! no client can write into the log or pass itself off as another request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::HeaderValue;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Span;

/// Longest id taken from a proxy (a UUID is 36 characters; proxies' own formats vary).
const MAX_ID_LEN: usize = 128;

pub const HEADER: &str = "x-request-id";

/// Makes ids for requests that arrive without a usable one: 32 hex digits, a random number
/// drawn once per process followed by a counter, so ids never repeat across instances and
/// restarts, and making one costs no system call (a random id per request cost measurable
/// throughput).
#[derive(Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{process:016x}{n:016x}"))
            .ok()
            .map(RequestId::new)
    }
}

/// Drops an incoming id unless `trust_proxy` and it is plain (letters, digits, `-_.:`),
/// so that [`MakeId`] makes one instead.
pub fn keep_only_trusted(
    trust_proxy: bool,
) -> impl Fn(Request) -> std::future::Ready<Request> + Clone {
    move |mut request: Request| {
        let usable = trust_proxy
            && request
                .headers()
                .get(HEADER)
                .is_some_and(|id| is_plain(id.as_bytes()));
        if !usable {
            request.headers_mut().remove(HEADER);
        }
        std::future::ready(request)
    }
}

fn is_plain(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The span every log line of a request sits in.
pub fn span_for<B>(request: &http::Request<B>) -> Span {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::is_plain;

    #[test]
    fn only_plain_short_ids_are_kept() {
        assert!(is_plain(b"4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_plain(b"req-1.2:abc_DEF"));
        assert!(!is_plain(b""));
        assert!(!is_plain(b"two words"));
        assert!(!is_plain(b"line\nbreak"));
        assert!(!is_plain(b"quote\"d"));
        assert!(!is_plain("ünïcode".as_bytes()));
        assert!(!is_plain(&[b'a'; 129]));
        assert!(is_plain(&[b'a'; 128]));
    }
}
