//! Starts the real server binary on port 0 with a database of its own (a temporary SQLite
//! file, or with `TEST_BACKEND=postgres` a scratch PostgreSQL database), and talks to it over
//! HTTP like a browser would (cookies kept, redirects not followed).

mod client;
mod server;
mod sql;

pub use client::{
    body_of, expect_page, expect_redirect, header, header_of, location, member, plain_http, staff,
    topic_names, topics, Sent, TestClient,
};
pub use server::{run_ok, Database, TestServer};
pub use sql::{count_sql, execute_sql, hold_write_lock, Reader};

pub const PASSWORD: &str = "correct horse battery";

/// The operator's token for `/metrics` on test servers.
pub const METRICS_TOKEN: &str = "test-metrics-token";
