//! The Subscriptions web server: configuration, the router with its middleware, and the
//! serve loop with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Extension, Router};
use axum_login::tower_sessions::cookie::{time, SameSite};
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use axum_login::AuthManagerLayerBuilder;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use app::sessions::DbSessionStore;
use app::users::auth::Backend;
use app::web::AppState;
use domain::db::{Db, OpenError};
use domain::services::Services;

mod accept;
mod auth_routes;
pub mod cli;
pub mod config;
mod edge;
mod live_routes;
mod metrics;
mod page_cache;
mod page_templates;
mod readiness;
mod render;
mod request_ids;
mod security;
mod server_fn_errors;
mod session_renewal;
mod shutdown;
mod throttle;
mod topic_routes;

pub use config::Config;
pub use readiness::Readiness;
use throttle::{ClientAddress, Throttle};

const SESSION_COOKIE: &str = "subscriptions_session";
/// Over HTTPS the cookie is `__Host-` prefixed: browsers then accept it only `Secure`, for
/// this host and path `/`, so no sibling subdomain can set or shadow it.
const SECURE_SESSION_COOKIE: &str = "__Host-subscriptions_session";
const SESSION_IDLE_DAYS: i64 = 14;
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Database(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen for shutdown signals: {0}")]
    Signals(std::io::Error),
}

/// Opens the database, then serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let db = Db::open_with(&config.database_url, config.pool).await?;
    tracing::info!(database = %config.database_url, "database ready");

    let addr = config.leptos.site_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })?;

    let mut stop_signals = StopSignals::register().map_err(ServeError::Signals)?;
    let connections = shutdown::Connections::default();
    let sweeper = tokio::spawn(sweep_expired_sessions(DbSessionStore::new(db.clone())));
    // The composition root: the domain's services, then the web layer around them.
    let services = Services::new(db, config.cache_ttl);
    let live = services.live.clone();
    live.set_capacity(config.max_live_streams);
    let purge = tokio::spawn(domain::topics::purge::run(
        services.db.clone(),
        services.purge.clone(),
    ));
    let readiness = Readiness::new(services.clone());
    let state = AppState::new(services, config.leptos.clone());
    let throttle = Arc::new(Throttle::new(
        ClientAddress::new(config.trusted_proxy_header.clone()),
        config.signups_per_ip_per_hour,
    ));
    let forgetting = tokio::spawn(forget_idle_throttle_state(throttle.clone()));
    let settings = RouterSettings {
        secure_cookies: config.secure_cookies,
        request_timeout: config.request_timeout,
        trusted_origins: config.trusted_origins.clone().into(),
        throttle,
        metrics_token: config.metrics_token.clone(),
        readiness: readiness.clone(),
        trust_proxy_request_ids: config.trusted_proxy_header.is_some(),
        connections: connections.clone(),
    };
    let app = router(state, settings);
    let limits = accept::Limits {
        max_connections: accept::connection_cap(config.max_connections),
        header_read_timeout: config.header_read_timeout,
        streams_per_connection: config.streams_per_connection,
    };

    let (listener, close_door) = shutdown::DoorListener::new(listener, connections.clone())
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    // (`tap_io` also gives the listener axum's `ConnectInfo<SocketAddr>`.)
    let listener = listener.tap_io(shutdown::Counted::send_without_delay);
    tracing::info!("listening on http://{local}");
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = config.shutdown_drain;
    // The stages are explained in `shutdown`; a second signal skips the waiting.
    let served_connections = connections.clone();
    let graceful = accept::serve(listener, app, limits, served_connections, async move {
        stop_signals.recv().await;
        readiness.start_draining();
        tracing::info!(
            seconds = drain.as_secs(),
            "shutting down: /readyz answers 503 while requests are still served"
        );
        let hurried = tokio::select! {
            () = tokio::time::sleep(drain) => false,
            () = stop_signals.recv() => true,
        };
        let _ = close_door.send(true);
        // The deadline for open requests runs from here.
        let _ = stopping.send(());
        // Open pages' event streams would otherwise keep the connections open for ever; they
        // reconnect (to another instance) by themselves.
        live.shut_down();
        if !hurried {
            let left = tokio::select! {
                left = connections.wait_until_closed(shutdown::CLIENTS_CLOSE_WITHIN) => left,
                () = stop_signals.recv() => connections.open(),
            };
            tracing::info!(
                connections_left = left,
                "shutting down: finishing open requests"
            );
        }
    });
    // Open requests may finish, but not for ever: a stuck one must not keep a deploy waiting.
    let deadline = config.shutdown_deadline;
    tokio::select! {
        () = graceful => {}
        () = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(deadline).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(
                seconds = deadline.as_secs(),
                "shutdown deadline passed: requests still open were cut off"
            );
        }
    }
    sweeper.abort();
    purge.abort();
    forgetting.abort();
    tracing::info!("stopped");
    Ok(())
}

/// What the router needs besides the application state.
pub struct RouterSettings {
    pub secure_cookies: bool,
    /// A request not answered by then gets `503` (its work may still finish).
    pub request_timeout: Duration,
    /// Origins whose POSTs are accepted besides the request's own host.
    pub trusted_origins: Arc<[String]>,
    pub throttle: Arc<Throttle>,
    /// `/metrics` answers only requests that present it (absent: not served at all).
    pub metrics_token: Option<String>,
    /// What `/readyz` answers; shutdown turns it to 503.
    pub readiness: Readiness,
    /// Behind a trusted proxy: keep the `x-request-id` it sends (else every id is made here).
    pub trust_proxy_request_ids: bool,
    /// Open connections; once shutting down, each response closes its connection.
    pub connections: shutdown::Connections,
}

/// The most a request body may hold: forms and server-function calls are a few hundred
/// bytes; anything far larger is refused with 413 before it is read.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Every route of the product. `/healthz` sits outside the session layer: it touches neither
/// the session store nor the database.
pub fn router(state: AppState, settings: RouterSettings) -> Router {
    let RouterSettings {
        secure_cookies,
        request_timeout,
        trusted_origins,
        throttle,
        metrics_token,
        readiness,
        trust_proxy_request_ids,
        connections,
    } = settings;
    let routes = generate_route_list(app::App);
    let pages = page_cache::PageCache::default();
    let (metrics_state, request_metrics) =
        metrics::registry(state.clone(), pages.clone(), metrics_token);
    let (pkg_route, static_files) = static_files(&state.leptos_options);

    let session_layer = SessionManagerLayer::new(app::sessions::sessions(
        state.services.db.clone(),
        state.session_memory.clone(),
    ))
    .with_name(if secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    })
    .with_http_only(true)
    .with_same_site(SameSite::Lax)
    .with_secure(secure_cookies)
    .with_expiry(Expiry::OnInactivity(time::Duration::days(
        SESSION_IDLE_DAYS,
    )));
    let auth_layer = AuthManagerLayerBuilder::new(
        Backend::new(state.services.db.clone(), state.services.users.clone()),
        session_layer,
    )
    .build();

    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let shell = {
        let options = state.leptos_options.clone();
        move || app::shell(options.clone())
    };

    #[allow(clippy::result_large_err)] // the signature `ValidateRequest` asks for
    let same_origin = move |request: &mut axum::extract::Request| {
        security::same_origin_only(request, &trusted_origins)
    };
    let site = Router::new()
        .route("/signup", post(auth_routes::signup))
        .route("/login", post(auth_routes::login))
        .route("/logout", post(auth_routes::logout))
        .route(LIVE_EVENTS, get(live_routes::events))
        .route("/topics/create/", post(topic_routes::create))
        .route("/topics/subscribe/{id}/", post(topic_routes::subscribe))
        .route("/topics/unsubscribe/{id}/", post(topic_routes::unsubscribe))
        .route(
            "/topics/unsubscribe-all/",
            post(topic_routes::unsubscribe_all),
        )
        .route("/topics/rename/{id}/", post(topic_routes::rename))
        .route("/topics/delete/{id}/", post(topic_routes::delete))
        .leptos_routes_with_context(&state, routes, context.clone(), shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, app::shell))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), pages),
            page_cache::serve_stored_pages,
        ))
        .layer(server_fn_errors::ClientErrorsAre4xxLayer)
        .layer(Extension(throttle))
        // Everything here may depend on the session: never kept by a shared cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        ))
        .layer(axum::middleware::from_fn(security::require_login))
        .layer(auth_layer)
        .layer(axum::middleware::map_response(
            security::store_unavailable_is_503,
        ))
        .layer(ValidateRequestHeaderLayer::custom(same_origin))
        // Only here: health checks and static files neither read bodies nor take time.
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY))
        // The refused body is never read, so the connection cannot carry another request:
        // saying so keeps a client from sending its next one down a closing connection.
        .layer(SetResponseHeaderLayer::overriding(
            header::CONNECTION,
            |response: &axum::response::Response| {
                (response.status() == StatusCode::PAYLOAD_TOO_LARGE)
                    .then(|| HeaderValue::from_static("close"))
            },
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .with_state(state);

    let operations = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .with_state(metrics_state)
        .merge(
            Router::new()
                .route("/readyz", get(readiness::readyz))
                .with_state(readiness),
        );

    let all = Router::new()
        .merge(operations)
        .nest_service(&pkg_route, static_files)
        .merge(site)
        // On the router, so it runs after routing and sees the declared route.
        .layer(metrics::MeasureLayer(request_metrics));
    // Live streams pass around the compression layer: they are never compressed, and its
    // body type (every encoder's state, inline) would be kept for as long as a page stays open
    // (5 KiB a stream, half of what one costs; BENCHMARKS.md, "100,000 open pages").
    let compressed = all
        .clone()
        .layer(CompressionLayer::new().compress_when(compress_predicate()));
    Router::new()
        // (As a service: axum takes a `Router` here only through `nest`.)
        .route_service(LIVE_EVENTS, all.into_service::<axum::body::Body>())
        .fallback_service(compressed)
        .layer(TraceLayer::new_for_http().make_span_with(request_ids::span_for))
        .layer(edge::EdgeLayer {
            trust_proxy_request_ids,
            connections,
        })
}

/// Where open pages follow live updates.
const LIVE_EVENTS: &str = "/topics/events/";

/// What is compressed on the fly: not the wasm, which a release build compresses ahead of time
/// (served as it is, see [`static_files`]) and which a debug build has at several megabytes:
/// compressing that per request took 1.8 s (gzip) to 2.7 s (brotli), ten to a hundred times
/// longer than sending it as it is to a browser on the same machine or network.
fn compress_predicate() -> impl tower_http::compression::Predicate {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    DefaultPredicate::new().and(NotForContentType::const_new("application/wasm"))
}

/// The wasm, JS and CSS of the site: no session, no database, files compressed ahead of time
/// (`cargo leptos build --release --precompress`) served as they are. Hashed names never change
/// content, so they may be cached for a year; unhashed ones must be revalidated.
fn static_files(options: &LeptosOptions) -> (String, Router) {
    let route = format!("/{}", options.site_pkg_dir);
    let folder =
        std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let cache_control = if options.hash_files {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let service = ServeDir::new(folder)
        .precompressed_br()
        .precompressed_gzip();
    let router =
        Router::new()
            .fallback_service(service)
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ));
    (route, router)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn forget_idle_throttle_state(throttle: Arc<Throttle>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        throttle.forget_idle();
    }
}

async fn sweep_expired_sessions(store: DbSessionStore) {
    let mut every = tokio::time::interval(SESSION_SWEEP_EVERY);
    loop {
        every.tick().await;
        match store.delete_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
            Err(err) => tracing::warn!(error = %err, "could not remove expired sessions"),
        }
    }
}

/// SIGTERM and Ctrl-C, registered at once: registering lazily (on the first wait) left a
/// window after "listening on" in which a SIGTERM still killed the process outright instead
/// of shutting it down.
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> Result<Self, std::io::Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Waits for the next SIGTERM or Ctrl-C.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => {},
                _ = self.interrupt.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}
