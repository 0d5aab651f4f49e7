//! `/metrics` in the Prometheus text format (`prometheus-client`), for whoever presents the
//! configured token (`METRICS_TOKEN`, as `Authorization: Bearer …`); without one configured
//! the route is not served, so the public listener never shows it.
//!
//! Request durations and requests in flight are measured by [`MeasureLayer`] on every route; the
//! rest is read when scraped from the counters the domain keeps anyway ([`Snapshot`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

use app::web::AppState;

use crate::page_cache::PageCache;

/// Upper bounds of the request-duration buckets, in seconds: a stored page takes tens of
/// microseconds, a password check about a tenth of a second.
const DURATION_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route as declared (`/topics/subscribe/{id}/`), so ids do not multiply the series.
    route: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    status: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

type Durations = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// What [`MeasureLayer`] records on every request.
#[derive(Clone)]
pub struct RequestMetrics {
    durations: Durations,
    in_flight: Gauge,
}

/// The registry `/metrics` encodes, and who may read it.
#[derive(Clone)]
pub struct MetricsState {
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
}

/// Builds the registry: the request metrics (returned, for [`MeasureLayer`]) and the figures read
/// at each scrape.
pub fn registry(
    app: AppState,
    pages: PageCache,
    token: Option<String>,
) -> (MetricsState, RequestMetrics) {
    let mut registry = Registry::default();
    let requests = RequestMetrics {
        durations: Family::new_with_constructor(duration_histogram),
        in_flight: Gauge::default(),
    };
    registry.register(
        "http_request_duration_seconds",
        "Time from a request's arrival until its response head, by route and status class.",
        requests.durations.clone(),
    );
    registry.register(
        "http_requests_in_flight",
        "Requests being handled now (live streams count until their response head).",
        requests.in_flight.clone(),
    );
    registry.register_collector(Box::new(Snapshot { app, pages }));
    let state = MetricsState {
        registry: Arc::new(registry),
        token: token.map(Arc::from),
    };
    (state, requests)
}

/// Times every request of the router it is layered on (after routing, so the declared route
/// is known). A plain service rather than an async middleware, which would clone the route's
/// whole service stack on every request.
#[derive(Clone)]
pub struct MeasureLayer(pub RequestMetrics);

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measure {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Measure<S> {
    inner: S,
    metrics: RequestMetrics,
}

impl<S> Service<Request> for Measure<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        self.metrics.in_flight.inc();
        Measured {
            inner: self.inner.call(request),
            started: Instant::now(),
            route: Some(route),
            metrics: self.metrics.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Measure`]: records when the response head is ready.
    pub struct Measured<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: Option<String>,
        metrics: RequestMetrics,
    }

    impl<F> PinnedDrop for Measured<F> {
        fn drop(this: Pin<&mut Self>) {
            // Still set: the request was dropped unanswered (the client went away).
            if this.route.is_some() {
                this.metrics.in_flight.dec();
            }
        }
    }
}

impl<F, E> Future for Measured<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = ready!(this.inner.poll(cx));
        if let Some(route) = this.route.take() {
            this.metrics.in_flight.dec();
            let status = match &outcome {
                Ok(response) => match response.status().as_u16() {
                    100..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    _ => "5xx",
                },
                Err(_) => "5xx",
            };
            this.metrics
                .durations
                .get_or_create(&RequestLabels { route, status })
                .observe(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(outcome)
    }
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
    let mut body = String::new();
    if let Err(err) =
        prometheus_client::encoding::prometheus_text::encode(&mut body, &metrics.registry)
    {
        tracing::error!(error = %err, "could not encode the metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}

/// Figures the domain keeps anyway, read at each scrape (no SQL: a scrape must not show up
/// in the statement counts it reports).
struct Snapshot {
    app: AppState,
    pages: PageCache,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn signed(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let services = &self.app.services;
        let sql = services.db.sql_stats();
        let cache = services.cache.stats();
        let (to_pages, to_everyone) = services.live.shared_bumps();
        let e = &mut encoder;
        // Counter names get `_total` appended by the encoder.
        let counters = [
            (
                "sql_statements",
                "SQL statements run, transaction control included.",
                sql.statements.load(Ordering::Relaxed),
            ),
            (
                "sql_topic_statements",
                "SQL statements that touched the topic tables.",
                sql.topic_statements.load(Ordering::Relaxed),
            ),
            (
                "cache_hits",
                "Topic cache lookups that found an entry.",
                cache.hits.load(Ordering::Relaxed),
            ),
            (
                "cache_misses",
                "Topic cache lookups that found nothing.",
                cache.misses.load(Ordering::Relaxed),
            ),
            (
                "cache_invalidations",
                "Topic cache entries invalidated by signal receivers.",
                cache.invalidations.load(Ordering::Relaxed),
            ),
            (
                "cache_patches",
                "Topic cache entries changed in place by a described change of subscriptions.",
                cache.patches.load(Ordering::Relaxed),
            ),
            (
                "cache_refused_fills",
                "Cache fills refused because a change committed during the read.",
                cache.refused_fills.load(Ordering::Relaxed),
            ),
            (
                "live_streams_dropped",
                "Live-update streams ended because their client fell behind (it reconnects).",
                services.live.streams_dropped(),
            ),
            (
                "live_bumps_to_pages",
                "Count changes told only to the open pages showing their topics (they patch).",
                to_pages,
            ),
            (
                "live_bumps_to_everyone",
                "Changes told to every open page, which refetches its list (a create, rename or \
                 delete, or a change whose counts could not be told in order).",
                to_everyone,
            ),
            (
                "page_cache_hits",
                "Topic pages served as stored for the same user and version.",
                self.pages.hits.load(Ordering::Relaxed),
            ),
            (
                "page_cache_misses",
                "Topic pages not stored for the user's version (assembled or rendered).",
                self.pages.misses.load(Ordering::Relaxed),
            ),
            (
                "page_cache_assembled",
                "Topic pages assembled around the user's last rendered page instead of rendered.",
                self.pages.assembled.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            counter(e, name, help, value)?;
        }
        let pool = services.db.pool_status();
        let (topics, subscriptions) = services.purge.backlog();
        let gauges = [
            (
                "db_pool_connections",
                "Database connections open in the pool.",
                signed(pool.open),
            ),
            (
                "db_pool_connections_idle",
                "Open pool connections not in use.",
                signed(pool.idle),
            ),
            (
                "db_pool_connections_max",
                "The most connections the pool opens.",
                signed(pool.max),
            ),
            (
                "db_pool_waiting",
                "Requests waiting for a pool connection now.",
                signed(pool.waiting),
            ),
            (
                "live_streams",
                "Open live-update streams (pages following changes).",
                signed(services.live.open_streams()),
            ),
            (
                "password_checks_pending",
                "Password hashing jobs waiting or running.",
                signed(domain::users::password_checks_pending()),
            ),
            (
                "purge_backlog_topics",
                "Retired topics whose subscriptions are still being purged.",
                topics,
            ),
            (
                "purge_backlog_subscriptions",
                "Subscriptions of retired topics not purged yet.",
                subscriptions,
            ),
        ];
        for (name, help, value) in gauges {
            gauge(e, name, help, value)?;
        }
        counter(
            e,
            "user_reads",
            "Reads of an account for the login layer (one serves every request waiting for it).",
            services.users.reads(),
        )?;
        counter(
            e,
            "catalog_reads",
            "Reads of the whole topic catalog (one serves every request missing it meanwhile).",
            services.catalog_reads.reads(),
        )?;
        if let Some(probes) = &services.probes {
            counter(
                e,
                "cache_version_reads",
                "Reads of the database's cache versions (one serves every request waiting).",
                probes.reads(),
            )?;
        }
        if let Some(remote) = &services.remote {
            counter(
                e,
                "versions_notifications",
                "Version moves heard from the database (every instance's changes).",
                remote.received.load(Ordering::Relaxed),
            )?;
            counter(
                e,
                "versions_listener_reconnects",
                "Times the connection listening for other instances' changes was made again.",
                remote.reconnects.load(Ordering::Relaxed),
            )?;
            gauge(
                e,
                "versions_listener_connected",
                "Whether other instances' changes are heard now.",
                i64::from(remote.connected.load(Ordering::Relaxed)),
            )?;
        }
        Ok(())
    }
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
