//! `/metrics`: counters in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use app::web::AppState;

use crate::page_cache::PageCache;

pub async fn render(State((state, pages)): State<(AppState, PageCache)>) -> impl IntoResponse {
    let sql = state.services.db.sql_stats();
    let cache = state.services.cache.stats();
    let counters = [
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
    let mut body = String::new();
    for (name, help, value) in counters {
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
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
}
