//! Starting and stopping: a clean exit on SIGTERM, and clear errors for a database that cannot be
//! used.

use crate::support::TestServer;

#[test]
fn a_sigterm_as_soon_as_the_server_listens_is_a_clean_shutdown() {
    // Process managers may stop a server the moment it is up; the handlers must already be
    // in place when "listening on" is printed, or SIGTERM kills the process mid-start.
    for _ in 0..5 {
        drop(TestServer::start().stop()); // asserts exit status 0
    }
}

#[tokio::test]
async fn an_unopenable_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").expect("write");
    let stderr = start_fails(&format!("sqlite://{}/app.db", blocker.display()));
    assert!(
        stderr.contains("cannot create the database folder"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_postgres_is_a_startup_error_with_the_drivers_reason() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let stderr = start_fails("postgres://app:s3cret@127.0.0.1:1/subscriptions");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/subscriptions"),
        "names the database without its password: {stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_misconfigured_postgres_is_a_startup_error_with_the_drivers_reason() {
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| domain::db::scratch::DEFAULT_SERVER_URL.to_owned());
    let missing = format!(
        "{}/no_such_database_here",
        server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base)
    );
    let stderr = start_fails(&missing);
    assert!(
        stderr.contains("database \"no_such_database_here\" does not exist"),
        "{stderr}"
    );
}

/// Starts the server on `database_url`, expects it to exit with a failure; its stderr.
fn start_fails(database_url: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env("DATABASE_URL", database_url)
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!output.status.success(), "the server must not start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
