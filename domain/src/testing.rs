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
