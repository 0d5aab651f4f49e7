//! `/metrics`: counters in the Prometheus text format, for whoever presents the configured
//! token (`METRICS_TOKEN`, as `Authorization: Bearer …`); without one configured the route is
//! not served, so the public listener never shows it.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use app::web::AppState;

use crate::page_cache::PageCache;

#[derive(Clone)]
pub struct MetricsState {
    pub app: AppState,
    pub pages: PageCache,
    pub token: Option<Arc<str>>,
}

pub async fn render(State(metrics): State<MetricsState>, headers: HeaderMap) -> Response {
    let Some(token) = &metrics.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "The metrics need the operator's token.",
        )
            .into_response();
    }
    let MetricsState {
        app: state, pages, ..
    } = metrics;
    let sql = state.services.db.sql_stats();
    let cache = state.services.cache.stats();
    let mut counters = vec![
        (
            "sql_statements_total",
            "SQL statements run, transaction control included.",
            sql.statements.load(Ordering::Relaxed),
        ),
        (
            "sql_topic_statements_total",
            "SQL statements that touched the topic tables.",
            sql.topic_statements.load(Ordering::Relaxed),
        ),
        (
            "cache_hits_total",
            "Topic cache lookups that found an entry.",
            cache.hits.load(Ordering::Relaxed),
        ),
        (
            "cache_misses_total",
            "Topic cache lookups that found nothing.",
            cache.misses.load(Ordering::Relaxed),
        ),
        (
            "cache_invalidations_total",
            "Topic cache entries invalidated by signal receivers.",
            cache.invalidations.load(Ordering::Relaxed),
        ),
        (
            "page_cache_hits_total",
            "Topic pages served as stored for the same user and version.",
            pages.hits.load(Ordering::Relaxed),
        ),
        (
            "page_cache_misses_total",
            "Topic pages rendered.",
            pages.misses.load(Ordering::Relaxed),
        ),
        (
            "cache_refused_fills_total",
            "Cache fills refused because a change committed during the read.",
            cache.refused_fills.load(Ordering::Relaxed),
        ),
    ];
    if let Some(remote) = &state.services.remote {
        counters.extend([
            (
                "versions_notifications_total",
                "Version moves heard from the database (every instance's changes).",
                remote.received.load(Ordering::Relaxed),
            ),
            (
                "versions_listener_reconnects_total",
                "Times the connection listening for other instances' changes was made again.",
                remote.reconnects.load(Ordering::Relaxed),
            ),
        ]);
    }
    let mut body = String::new();
    for (name, help, value) in counters {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    if let Some(remote) = &state.services.remote {
        let connected = u8::from(remote.connected.load(Ordering::Relaxed));
        let _ = writeln!(
            body,
            "# HELP versions_listener_connected Whether other instances' changes are heard now.\n\
             # TYPE versions_listener_connected gauge\nversions_listener_connected {connected}"
        );
    }
    let streams = state.services.live.open_streams();
    let _ = writeln!(
        body,
        "# HELP live_streams Open live-update streams (pages following changes).\n\
         # TYPE live_streams gauge\nlive_streams {streams}"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
