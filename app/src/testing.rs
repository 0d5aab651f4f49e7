//! Support for this crate's tests: a fresh database file, the domain's services over it, and
//! the receivers' token.

use crate::db::Db;
use crate::services::Services;
use crate::signals::Receiving;

/// Lets a test act as a receiver would (invalidate the cache, write activity rows).
pub fn token() -> Receiving {
    Receiving::for_tests()
}

/// A migrated database in a temporary folder, removed when the folder handle drops.
pub async fn test_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("db");
    (dir, db)
}

/// The domain's services over a fresh database, with every receiver connected.
pub async fn test_services() -> (tempfile::TempDir, Services) {
    let (dir, db) = test_db().await;
    (dir, Services::new(db, crate::cache::TTL))
}
