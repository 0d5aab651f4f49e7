//! Configuration from the environment. Every setting has a default that serves the embedded
//! setup (SQLite file under ./data, plain HTTP on 127.0.0.1:3000).

use std::time::Duration;

use axum::http::HeaderName;
use leptos::config::LeptosOptions;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/app.db";
pub const DEFAULT_LOG_FILTER: &str = "info,tower_http=info";

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE` (default 8) and `DATABASE_POOL_WAIT_SECONDS` (default 10): the
    /// connections kept open, and how long a request waits for one before its `503`.
    pub pool: domain::db::PoolSettings,
    /// `SECURE_COOKIES`: mark the session cookie `Secure` (and name it `__Host-…`). Defaults to
    /// true when `PUBLIC_ORIGIN` is `https://…`.
    pub secure_cookies: bool,
    /// `PUBLIC_ORIGIN` (`https://subs.example.com`) and `TRUSTED_ORIGINS` (comma-separated):
    /// origins whose form posts are accepted even when a proxy rewrote `Host`.
    pub trusted_origins: Vec<String>,
    /// `TOPIC_CACHE_TTL_SECONDS`: how long cached topic lists live (default 60; 0 turns the
    /// cache off, which only makes sense for measuring).
    pub cache_ttl: Duration,
    /// `SIGNUPS_PER_IP_PER_HOUR`: accounts one client address may create an hour.
    pub signups_per_ip_per_hour: u32,
    /// `TRUSTED_PROXY_HEADER`: the header a reverse proxy in front of the server puts the
    /// client's address in (e.g. `X-Forwarded-For`); unset, the connection's peer counts.
    pub trusted_proxy_header: Option<HeaderName>,
    /// `REQUEST_TIMEOUT_SECONDS`: a request whose answer takes longer gets `503` (default 30).
    pub request_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_SECONDS`: how long a client has to send a request head, from when
    /// the server waits for one (default 10): a slow client cannot hold a connection.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections served at once (default 25,000, and never more than
    /// the open-file limit allows); one more is answered `503` at once.
    pub max_connections: usize,
    /// `HTTP2_STREAMS_PER_CONNECTION`: requests one HTTP/2 connection carries at once
    /// (default 1,000; a proxy in front multiplexes many pages' event streams on one).
    pub streams_per_connection: u32,
    /// `MAX_LIVE_STREAMS`: open pages' event streams followed at once (default 100,000); one
    /// more is answered `503` and the page works on, only not live.
    pub max_live_streams: usize,
    /// `SHUTDOWN_DEADLINE_SECONDS`: after SIGTERM, how long open requests may still finish
    /// before the server exits anyway (default 30).
    pub shutdown_deadline: Duration,
    /// `SHUTDOWN_DRAIN_SECONDS`: after SIGTERM, how long `/readyz` answers 503 while every
    /// request is still served, so that load balancers stop sending requests first (default 5;
    /// 0 stops accepting at once).
    pub shutdown_drain: Duration,
    /// `METRICS_TOKEN`: the bearer token `/metrics` asks for; unset, `/metrics` is not served.
    pub metrics_token: Option<String>,
    /// Site folder and address: `LEPTOS_SITE_ROOT`, `LEPTOS_SITE_ADDR` (as cargo-leptos sets them).
    pub leptos: LeptosOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid Leptos settings: {0}")]
    Leptos(String),
    #[error("{name} must be true or false, not `{value}`")]
    NotABool { name: &'static str, value: String },
    #[error("{name} must be a whole number of seconds, not `{value}`")]
    NotSeconds { name: &'static str, value: String },
    #[error("{name} must be a whole number above zero, not `{value}`")]
    NotACount { name: &'static str, value: String },
    #[error("{name} must be an HTTP header name, not `{value}`")]
    NotAHeader { name: &'static str, value: String },
    #[error("{name} must name origins like https://subs.example.com, not `{value}`")]
    NotAnOrigin { name: &'static str, value: String },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_origin = match std::env::var("PUBLIC_ORIGIN") {
            Ok(value) if !value.trim().is_empty() => Some(origin("PUBLIC_ORIGIN", &value)?),
            _ => None,
        };
        let trusted_origins = std::env::var("TRUSTED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| origin("TRUSTED_ORIGINS", entry))
            .collect::<Result<Vec<_>, _>>()?;
        let mut leptos = leptos::config::get_configuration(None)
            .map_err(|e| ConfigError::Leptos(e.to_string()))?
            .leptos_options;
        // cargo-leptos writes the hashed asset names beside the binary it builds; a binary
        // that has them serves hashed names without being told.
        if !leptos.hash_files {
            leptos.hash_files = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join(leptos.hash_file.as_ref())))
                .is_some_and(|path| path.is_file());
        }
        let pool_defaults = domain::db::PoolSettings::default();
        Ok(Config {
            database_url: std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            pool: domain::db::PoolSettings {
                size: env_count("DATABASE_POOL_SIZE", pool_defaults.size)?,
                wait: nonzero(env_seconds(
                    "DATABASE_POOL_WAIT_SECONDS",
                    pool_defaults.wait,
                )?),
            },
            secure_cookies: env_bool(
                "SECURE_COOKIES",
                public_origin
                    .as_deref()
                    .is_some_and(|origin| origin.starts_with("https://")),
            )?,
            trusted_origins: public_origin.into_iter().chain(trusted_origins).collect(),
            cache_ttl: env_seconds("TOPIC_CACHE_TTL_SECONDS", domain::cache::TTL)?,
            signups_per_ip_per_hour: env_count(
                "SIGNUPS_PER_IP_PER_HOUR",
                crate::throttle::DEFAULT_SIGNUPS_PER_IP_PER_HOUR,
            )?,
            trusted_proxy_header: env_header("TRUSTED_PROXY_HEADER")?,
            request_timeout: nonzero(env_seconds(
                "REQUEST_TIMEOUT_SECONDS",
                Duration::from_secs(30),
            )?),
            header_read_timeout: nonzero(env_seconds(
                "HEADER_READ_TIMEOUT_SECONDS",
                Duration::from_secs(10),
            )?),
            max_connections: usize::try_from(env_count("MAX_CONNECTIONS", 25_000)?)
                .unwrap_or(usize::MAX),
            streams_per_connection: env_count("HTTP2_STREAMS_PER_CONNECTION", 1_000)?,
            max_live_streams: usize::try_from(env_count(
                "MAX_LIVE_STREAMS",
                domain::live::MAX_OPEN_STREAMS,
            )?)
            .unwrap_or(usize::MAX),
            shutdown_deadline: env_seconds("SHUTDOWN_DEADLINE_SECONDS", Duration::from_secs(30))?,
            shutdown_drain: env_seconds("SHUTDOWN_DRAIN_SECONDS", Duration::from_secs(5))?,
            metrics_token: std::env::var("METRICS_TOKEN")
                .ok()
                .filter(|token| !token.trim().is_empty()),
            leptos,
        })
    }
}

/// The variable's value, unless it is unset or blank (then the default applies).
fn env_set(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn env_seconds(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    env_parsed(
        name,
        default,
        |value| value.parse().ok().map(Duration::from_secs),
        |value| ConfigError::NotSeconds { name, value },
    )
}

/// The variable parsed by `parse`, the default when it is unset or blank, or `refused`.
fn env_parsed<T>(
    name: &'static str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
    refused: impl FnOnce(String) -> ConfigError,
) -> Result<T, ConfigError> {
    let Some(value) = env_set(name) else {
        return Ok(default);
    };
    parse(value.trim()).ok_or_else(|| refused(value))
}

/// A zero timeout would refuse everything: it means the default's smallest sensible value.
fn nonzero(timeout: Duration) -> Duration {
    timeout.max(Duration::from_secs(1))
}

/// `scheme://host[:port]`, lower-cased, as browsers send it in `Origin`.
fn origin(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let refused = || ConfigError::NotAnOrigin {
        name,
        value: value.to_owned(),
    };
    let uri: axum::http::Uri = value.trim().parse().map_err(|_| refused())?;
    match (uri.scheme_str(), uri.authority(), uri.path()) {
        (Some(scheme @ ("http" | "https")), Some(authority), "" | "/") => {
            Ok(format!("{scheme}://{authority}").to_ascii_lowercase())
        }
        _ => Err(refused()),
    }
}

fn env_count(name: &'static str, default: u32) -> Result<u32, ConfigError> {
    env_parsed(
        name,
        default,
        |value| value.parse().ok().filter(|n: &u32| *n > 0),
        |value| ConfigError::NotACount { name, value },
    )
}

fn env_header(name: &'static str) -> Result<Option<HeaderName>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => HeaderName::try_from(value.trim().to_ascii_lowercase())
            .map(Some)
            .map_err(|_| ConfigError::NotAHeader { name, value }),
    }
}

fn env_bool(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::NotABool { name, value }),
        },
    }
}
