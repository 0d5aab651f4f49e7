//! Throwaway PostgreSQL databases for tests: each test gets its own (NOTIFY channels and
//! sequences are per database), dropped when the handle goes.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The PostgreSQL server tests use unless `TEST_DATABASE_URL` names another.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which backend tests run on: `TEST_BACKEND=postgres` for PostgreSQL, SQLite otherwise.
pub fn tests_use_postgres() -> bool {
    std::env::var("TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// A database created for one test on the server named by `TEST_DATABASE_URL`.
#[derive(Debug)]
pub struct ScratchDatabase {
    name: String,
    server_url: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates an empty database; panics with the driver's reason when the server cannot be
    /// reached, so that a test run without PostgreSQL fails instead of skipping.
    pub fn create() -> Self {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let server_url =
            std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "subs_test_{}_{}_{nanos}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::establish(&server_url).unwrap_or_else(|e| {
            panic!("PostgreSQL for the tests (TEST_DATABASE_URL={server_url}): {e}")
        });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = with_database(&server_url, &name);
        ScratchDatabase {
            name,
            server_url,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // WITH (FORCE) ends connections a server under test may still hold.
        let dropped = PgConnection::establish(&self.server_url).and_then(|mut admin| {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
        });
        if let Err(err) = dropped {
            eprintln!("could not drop the test database {}: {err}", self.name);
        }
    }
}

/// `postgres://u@h:5432/test?x=y` with the database `name` instead of `test`.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1?sslmode=disable", "t1"),
            "postgres://127.0.0.1/t1?sslmode=disable"
        );
    }
}
