//! Request guards that apply to whole groups of routes: same-origin POSTs and login-required
//! pages.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use app::url::encode_query_value;
use app::users::auth::AuthSession;
use domain::users::User;

/// Pages under these prefixes need a logged-in user.
const LOGIN_REQUIRED: &[&str] = &["/topics"];

/// Refuses state-changing requests that a browser sent from another site.
///
/// Browsers send `Origin` with every cross-site POST (and `Referer` as a fallback); a request
/// with neither did not come from a page on another site, so it is let through.
///
/// A synchronous check (`ValidateRequestHeaderLayer::custom`), so that it needs no clone of
/// the service stack per request as an async middleware would.
/// A POST with neither header is accepted: browsers send `Origin` with every cross-site POST,
/// so such a request did not come from another site's page (curl, a privacy extension that
/// strips `Referer` on a same-site form). `trusted` lists origins accepted besides the request's
/// own host (the public origin behind a proxy that rewrites `Host`).
#[allow(clippy::result_large_err)] // the signature `ValidateRequest` asks for
pub fn same_origin_only(request: &mut Request, trusted: &[String]) -> Result<(), Response> {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !is_same_origin(request.headers(), request.uri(), trusted) {
        tracing::warn!(
            origin = ?request.headers().get(header::ORIGIN),
            referer = ?request.headers().get(header::REFERER),
            path = %request.uri().path(),
            "cross-origin request refused"
        );
        return Err((
            StatusCode::FORBIDDEN,
            "Forbidden: this form was sent from another site, so it was not accepted.",
        )
            .into_response());
    }
    Ok(())
}

fn is_same_origin(headers: &HeaderMap, uri: &Uri, trusted: &[String]) -> bool {
    let Some(source) = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
    else {
        return true;
    };
    let source_origin = source
        .to_str()
        .ok()
        .and_then(|s| s.parse::<Uri>().ok())
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)))
        .map(|origin| origin.to_ascii_lowercase());
    if source_origin.is_some_and(|origin| trusted.contains(&origin)) {
        return true;
    }
    let own_host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let source_host = source
        .to_str()
        .ok()
        .and_then(|s| s.parse::<Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
    match (own_host, source_host) {
        (Some(own), Some(source)) => own.eq_ignore_ascii_case(&source),
        _ => false,
    }
}

/// Sends anonymous visitors of member pages to the login form, remembering where they were
/// going; renews a signed-in visitor's session when due (here rather than in a layer of its
/// own: every `from_fn` layer clones the service stack below it per request, and one more
/// cost the cached page about a tenth of its throughput).
pub async fn require_login(auth: AuthSession, request: Request<Body>, next: Next) -> Response {
    let path = request.uri().path();
    let protected = LOGIN_REQUIRED
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    let is_get = matches!(*request.method(), Method::GET | Method::HEAD);
    // After login the browser GETs `next`; a POST route would answer 405, so a form sent
    // while logged out comes back to the list instead.
    let target = if is_get {
        request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or(path)
    } else {
        "/topics/"
    };
    if protected && auth.user.is_none() {
        return Redirect::to(&login_url(target)).into_response();
    }
    if auth.user.is_some() && crate::session_renewal::end_if_outlived(&auth).await {
        // The session is gone; this request still carries its user, so start over.
        if protected {
            return Redirect::to(&login_url(target)).into_response();
        }
        if is_get {
            return Redirect::to(target).into_response();
        }
    }
    crate::session_renewal::renew_when_due(&auth).await;
    next.run(request).await
}

/// The logged-in user; anonymous requests are sent to the login form.
pub struct Member(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Member {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<AuthSession>()
            .and_then(|session| session.user.clone())
            .map(|user| Member(user.0))
            .ok_or_else(|| Redirect::to(&login_url("/topics/")).into_response())
    }
}

/// `/login?next=<target>`, with the target percent-encoded except for its slashes.
pub fn login_url(target: &str) -> String {
    format!("/login?next={}", encode_query_value(target))
}

/// Where to go after login: the requested local path, or the topic list. Anything that could
/// leave this site (`//host`, `https://…`, `/\host`) falls back to the topic list.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local {
        next
    } else {
        "/topics/"
    }
}

/// The session and login layers (tower-sessions, axum-login) answer an empty `500` when their
/// store cannot be read: the database pool stayed full or the database is down. That is the
/// database being unavailable, which every other path answers `503` with `Retry-After` and a
/// message a person understands; so does this one. A `500` with a body (an error page) is
/// left as it is.
pub async fn store_unavailable_is_503(response: Response) -> Response {
    use axum::body::HttpBody as _;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || response.body().size_hint().exact() != Some(0)
    {
        return response;
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "The server cannot reach its database right now; nothing was changed. Please try again in a moment.",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn origin_must_match_host() {
        let uri: Uri = "/login".parse().expect("uri");
        let host = (header::HOST, "127.0.0.1:3000");
        let cases = [
            (None, true),
            (Some((header::ORIGIN, "http://127.0.0.1:3000")), true),
            (Some((header::ORIGIN, "http://evil.example")), false),
            (Some((header::ORIGIN, "http://127.0.0.1:3001")), false),
            (Some((header::ORIGIN, "null")), false),
            (
                Some((header::REFERER, "http://127.0.0.1:3000/topics/")),
                true,
            ),
            (Some((header::REFERER, "https://evil.example/x")), false),
        ];
        for (sent, same) in cases {
            let sent_headers: Vec<_> = std::iter::once(host.clone()).chain(sent.clone()).collect();
            assert_eq!(
                is_same_origin(&headers(&sent_headers), &uri, &[]),
                same,
                "{sent:?}"
            );
        }
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/topics/"), "/topics/");
        assert_eq!(
            safe_next("/topics/activity/?page=2"),
            "/topics/activity/?page=2"
        );
        assert_eq!(safe_next("https://evil.example/"), "/topics/");
        assert_eq!(safe_next("//evil.example/"), "/topics/");
        assert_eq!(safe_next("/\\evil.example"), "/topics/");
        assert_eq!(safe_next(""), "/topics/");
        assert_eq!(safe_next("topics"), "/topics/");
    }

    #[test]
    fn login_url_keeps_slashes_readable() {
        assert_eq!(login_url("/topics/"), "/login?next=/topics/");
        assert_eq!(
            login_url("/topics/?a=1&b"),
            "/login?next=/topics/%3Fa%3D1%26b"
        );
    }

    #[tokio::test]
    async fn an_empty_500_of_the_session_layers_is_a_503_with_a_message_and_others_are_kept() {
        let empty = Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .expect("response");
        let answered = store_unavailable_is_503(empty).await;
        assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answered
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        let page = (StatusCode::INTERNAL_SERVER_ERROR, "an error page").into_response();
        assert_eq!(
            store_unavailable_is_503(page).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let fine = (StatusCode::OK, "").into_response();
        assert_eq!(
            store_unavailable_is_503(fine).await.status(),
            StatusCode::OK
        );
    }
}
