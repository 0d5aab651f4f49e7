//! Starts the real server binary on port 0 with a database of its own (a temporary SQLite
//! file, or with `TEST_BACKEND=postgres` a scratch PostgreSQL database), and talks to it over
//! HTTP like a browser would (cookies kept, redirects not followed).

mod client;
mod server;
mod sql;

pub use client::{
    body_of, expect_page, expect_redirect, header, header_of, location, member, plain_http,
    rows_of, staff, topic_names, topics, Sent, TestClient,
};
pub use server::{run_ok, Database, TestServer};
pub use sql::{count_sql, execute_sql, hold_write_lock, Reader};

pub const PASSWORD: &str = "correct horse battery";

/// The operator's token for `/metrics` on test servers.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Server settings some tests start with, named for what they set up.
pub mod settings {
    pub type Settings = &'static [(&'static str, &'static str)];

    /// A shutdown deadline shorter than the requests it cuts off.
    pub const A_SHORT_DEADLINE: Settings = &[
        ("SHUTDOWN_DEADLINE_SECONDS", "1"),
        ("REQUEST_TIMEOUT_SECONDS", "60"),
    ];

    /// JSON logs, behind a proxy whose client addresses are trusted.
    pub const JSON_LOGS_BEHIND_A_PROXY: Settings = &[
        ("LOG_FORMAT", "json"),
        ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
    ];

    /// One pooled connection, and a short wait for it.
    pub const POOL_OF_ONE: Settings = &[
        ("DATABASE_POOL_SIZE", "1"),
        ("DATABASE_POOL_WAIT_SECONDS", "1"),
    ];
}
