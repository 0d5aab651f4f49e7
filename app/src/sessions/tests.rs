//! The session stores against real databases of both backends.

use axum_login::tower_sessions::session::{Id, Record};
use axum_login::tower_sessions::session_store::SessionStore;

use axum_login::tower_sessions::cookie::time::{Duration, OffsetDateTime};
use axum_login::tower_sessions::Session;

use super::renewal::RENEWED_AT;
use super::*;
use std::collections::HashMap;
use std::sync::Arc;

async fn store() -> (domain::testing::TestDatabase, DbSessionStore) {
    let (place, db) = domain::testing::test_db().await;
    (place, DbSessionStore::new(db))
}

fn record(id: Id, expires_in: Duration) -> Record {
    let mut data = HashMap::new();
    data.insert("k".to_owned(), serde_json::json!("v"));
    Record {
        id,
        data,
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

/// Holds the database's write lock from another connection, as another process would.
fn hold_writes(place: &domain::testing::TestDatabase, for_: std::time::Duration) {
    use diesel::connection::SimpleConnection;
    let target = domain::db::Target::parse(&place.url()).expect("url");
    let take = match target {
        domain::db::Target::Postgres { .. } => "BEGIN; LOCK TABLE sessions IN EXCLUSIVE MODE;",
        domain::db::Target::Sqlite { .. } => "BEGIN IMMEDIATE;",
    };
    let (held, acquired) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = target.connect().expect("connect");
        conn.batch_execute(take).expect("lock");
        let _ = held.send(());
        std::thread::sleep(for_);
        let _ = conn.batch_execute("COMMIT;");
    });
    acquired
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("locked");
}

#[tokio::test]
async fn only_a_renewal_may_fail_to_be_saved() {
    let (place, store) = store().await;
    let mut rec = record(Id::default(), Duration::hours(1));
    store.create(&mut rec).await.expect("create");
    hold_writes(&place, std::time::Duration::from_secs(8));

    let mut renewed = rec.clone();
    renewed
        .data
        .insert(RENEWED_AT.into(), serde_json::json!(12345));
    renewed.expiry_date += Duration::days(1);
    let mut changed = rec.clone();
    changed
        .data
        .insert("axum-login.data".into(), serde_json::json!("someone"));
    let (renewal, change) = tokio::join!(store.save(&renewed), store.save(&changed));
    assert!(
        renewal.is_ok(),
        "a renewal that cannot be written is given up"
    );
    assert!(
        change.is_err(),
        "any other change that cannot be written fails (a login must not look saved)"
    );
    let stored = store
        .load(&rec.id)
        .await
        .expect("load")
        .expect("still there");
    assert_eq!(stored.data, rec.data, "nothing was written");
}

#[tokio::test]
async fn create_save_load_delete() {
    let (_dir, store) = store().await;
    let mut rec = record(Id::default(), Duration::hours(1));
    store.create(&mut rec).await.expect("create");
    assert_eq!(store.load(&rec.id).await.expect("load"), Some(rec.clone()));

    rec.data.insert("k".into(), serde_json::json!("changed"));
    store.save(&rec).await.expect("save");
    assert_eq!(store.load(&rec.id).await.expect("load"), Some(rec.clone()));

    store.delete(&rec.id).await.expect("delete");
    assert_eq!(store.load(&rec.id).await.expect("load"), None);
}

#[tokio::test]
async fn create_never_overwrites_an_existing_session() {
    let (_dir, store) = store().await;
    let mut first = record(Id(42), Duration::hours(1));
    store.create(&mut first).await.expect("create");
    let mut second = record(Id(42), Duration::hours(1));
    second.data.insert("k".into(), serde_json::json!("other"));
    store.create(&mut second).await.expect("create");
    assert_ne!(second.id, first.id, "a colliding id is replaced");
    assert_eq!(store.load(&first.id).await.expect("load"), Some(first));
    assert_eq!(store.load(&second.id).await.expect("load"), Some(second));
}

#[tokio::test]
async fn the_memory_cache_serves_loads_and_forgets_deleted_sessions() {
    let (_dir, db_store) = store().await;
    let db = db_store.db.clone();
    let cached = sessions(db, MemorySessions::default());
    let mut rec = record(Id::default(), Duration::hours(1));
    cached.create(&mut rec).await.expect("create");
    // Gone from the database, still served from memory: loads need no SQL.
    db_store
        .delete(&rec.id)
        .await
        .expect("delete from the database");
    assert_eq!(cached.load(&rec.id).await.expect("load"), Some(rec.clone()));
    // Deleting through the cache removes it everywhere.
    cached.delete(&rec.id).await.expect("delete");
    assert_eq!(cached.load(&rec.id).await.expect("load"), None);

    let mut old = record(Id::default(), Duration::seconds(-5));
    MemorySessions::default().save(&old).await.expect("save");
    let memory = MemorySessions::default();
    memory.save(&old).await.expect("save");
    assert_eq!(memory.load(&old.id).await.expect("load"), None, "expired");
    old.expiry_date = OffsetDateTime::now_utc() + Duration::hours(1);
    memory.save(&old).await.expect("save");
    assert!(memory.load(&old.id).await.expect("load").is_some());
}

#[tokio::test]
async fn a_save_racing_a_logout_cannot_bring_the_session_back() {
    let (_dir, db_store) = store().await;
    let cached = sessions(db_store.db.clone(), MemorySessions::default());
    let mut rec = record(Id::default(), Duration::hours(1));
    cached.create(&mut rec).await.expect("create");
    // A request loads the session, the user logs out, then the request saves it.
    let loaded = cached.load(&rec.id).await.expect("load").expect("present");
    cached.delete(&rec.id).await.expect("logout");
    let mut renewed = loaded;
    renewed.expiry_date += Duration::days(14);
    cached.save(&renewed).await.expect("save");
    assert_eq!(cached.load(&rec.id).await.expect("load"), None, "memory");
    assert_eq!(
        db_store.load(&rec.id).await.expect("load"),
        None,
        "database"
    );
}

#[tokio::test]
async fn expired_sessions_are_invisible_and_deleted() {
    let (_dir, store) = store().await;
    let mut old = record(Id::default(), Duration::seconds(-5));
    store.create(&mut old).await.expect("create");
    let mut live = record(Id::default(), Duration::hours(1));
    store.create(&mut live).await.expect("create");
    assert_eq!(store.load(&old.id).await.expect("load"), None);
    assert_eq!(store.delete_expired().await.expect("sweep"), 1);
    assert!(store.load(&live.id).await.expect("load").is_some());
}

#[tokio::test]
async fn a_session_is_renewed_at_most_once_per_interval() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let session = Session::new(None, store.clone(), None);
    assert!(
        renew_if_due(&session).await.expect("renew"),
        "a session from before renewal existed is due at once"
    );
    assert!(session.is_modified());
    session.save().await.expect("save");

    let loaded = Session::new(session.id(), store.clone(), None);
    assert!(!renew_if_due(&loaded).await.expect("renew"), "just renewed");
    assert!(!loaded.is_modified(), "a page view writes nothing");

    let almost = OffsetDateTime::now_utc() - RENEW_EVERY + Duration::minutes(5);
    loaded
        .insert(RENEWED_AT, almost.unix_timestamp())
        .await
        .expect("insert");
    assert!(!renew_if_due(&loaded).await.expect("renew"));

    let stale = OffsetDateTime::now_utc() - RENEW_EVERY - Duration::seconds(1);
    loaded
        .insert(RENEWED_AT, stale.unix_timestamp())
        .await
        .expect("insert");
    assert!(renew_if_due(&loaded).await.expect("renew"));
    let renewed: i64 = loaded
        .get(RENEWED_AT)
        .await
        .expect("get")
        .expect("renewed_at");
    assert!(renewed > stale.unix_timestamp());

    let fresh = Session::new(None, store, None);
    mark_signed_in(&fresh).await.expect("mark");
    assert!(
        !renew_if_due(&fresh).await.expect("renew"),
        "signed in just now"
    );
}
