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
use axum::http::{HeaderName, HeaderValue};
use tracing::Span;

/// Longest id taken from a proxy (a UUID is 36 characters; proxies' own formats vary).
const MAX_ID_LEN: usize = 128;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Gives `request` its id: the one it carries when `trust_proxy` and it is plain (letters,
/// digits, `-_.:`), else a new one, which replaces whatever it carried. Returns the id.
pub fn assign(request: &mut Request, trust_proxy: bool) -> HeaderValue {
    if trust_proxy {
        if let Some(id) = request.headers().get(&HEADER) {
            if is_plain(id.as_bytes()) {
                return id.clone();
            }
        }
    }
    let id = new_id();
    request.headers_mut().insert(HEADER, id.clone());
    id
}

/// 32 hex digits: a random number drawn once per process followed by a counter, so ids never
/// repeat across instances and restarts, and making one costs no system call (a random id per
/// request cost measurable throughput).
fn new_id() -> HeaderValue {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Hex digits are always a valid header value.
    HeaderValue::try_from(format!("{process:016x}{n:016x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
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
        .get(&HEADER)
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
    use super::{is_plain, new_id};

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

    #[test]
    fn made_ids_are_32_hex_digits_and_never_repeat() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
            assert!(is_plain(id.as_bytes()));
        }
    }
}
