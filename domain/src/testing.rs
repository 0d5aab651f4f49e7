//! Support for this crate's tests: a fresh database (a SQLite file, or a PostgreSQL database
//! with `TEST_BACKEND=postgres`), the domain's services over it, and the receivers' token.

use crate::db::scratch::{tests_use_postgres, ScratchDatabase};
use crate::db::Db;
use crate::services::Services;
use crate::signals::Receiving;

/// Lets a test act as a receiver would (invalidate the cache, write activity rows).
pub fn token() -> Receiving {
    Receiving::for_tests()
}

/// Where a test's database lives; removed when this drops.
#[derive(Debug)]
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchDatabase),
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDatabase {
    pub fn new() -> Self {
        if tests_use_postgres() {
            TestDatabase::Postgres(ScratchDatabase::create())
        } else {
            TestDatabase::Sqlite(tempfile::tempdir().expect("temp dir"))
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(dir) => format!("sqlite://{}", dir.path().join("t.db").display()),
            TestDatabase::Postgres(scratch) => scratch.url().to_owned(),
        }
    }
}

/// A migrated database, removed when the handle drops.
pub async fn test_db() -> (TestDatabase, Db) {
    let place = TestDatabase::new();
    let db = Db::open(&place.url()).await.expect("db");
    (place, db)
}

/// The domain's services over a fresh database, with every receiver connected.
pub async fn test_services() -> (TestDatabase, Services) {
    let (place, db) = test_db().await;
    (place, Services::new(db, crate::cache::TTL))
}

/// A new account named `name` (staff or not), with a password nobody needs to know.
pub async fn account(db: &Db, name: &str, staff: bool) -> crate::users::User {
    use crate::users::{create_user, Password, Username};
    let username = Username::parse(name).expect("name");
    let password = Password::parse("long enough password", &username).expect("password");
    create_user(db, username, password, staff)
        .await
        .expect("account")
}

/// Waits (10 s at most, generous for a loaded machine) until `done`; what a test measures
/// with it is that something happens at all, not how soon.
pub async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// One instance of the domain on the PostgreSQL database at `place`, as one server process
/// is, once its listener for the other instances has connected.
pub async fn listening_instance(place: &ScratchDatabase) -> Services {
    let db = Db::open(place.url()).await.expect("open");
    let services = Services::new(db, crate::cache::TTL);
    wait_for("the listener to connect", || {
        services
            .remote
            .as_ref()
            .is_some_and(|remote| remote.connected.load(std::sync::atomic::Ordering::Relaxed))
    })
    .await;
    services
}

/// Ends every instance's listening connection on `place`, as a PostgreSQL restart or an
/// operator's `pg_terminate_backend` would; how many were ended.
pub fn terminate_listeners(place: &ScratchDatabase) -> usize {
    use diesel::{Connection, RunQueryDsl};
    let mut admin = diesel::PgConnection::establish(place.url()).expect("admin");
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'subscriptions-listener'",
    )
    .execute(&mut admin)
    .expect("terminate the listeners")
}
