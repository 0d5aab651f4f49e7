//! Login sessions for the session layer (tower-sessions): stored in the database through the
//! domain's `sessions` rows, so that a server restart logs nobody out, with an in-memory
//! cache in front so that a page view needs no SQL for its session.

use async_trait::async_trait;
use axum_login::tower_sessions::cookie::time::Duration;
use axum_login::tower_sessions::cookie::time::OffsetDateTime;
use axum_login::tower_sessions::session::{self, Id, Record};
use axum_login::tower_sessions::session_store::{self, CachingSessionStore, SessionStore};
use axum_login::tower_sessions::Session;
use domain::db::{Db, DbError};
use domain::sessions as stored;

/// How often `create` draws a fresh id when the drawn one is taken (practically never).
const CREATE_ATTEMPTS: usize = 8;
/// How long a session stays in memory without being reloaded from the database. Instances on
/// PostgreSQL hear of an ended session at once (`ENDED_CHANNEL`); this bounds how long one
/// whose listening connection was down may still honour it.
const MEMORY_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const MEMORY_CAPACITY: u64 = 100_000;

/// The session key holding when the session's expiry was last pushed forward (unix seconds).
const RENEWED_AT: &str = "renewed_at";
/// How often a signed-in session's idle expiry is pushed forward. A session is only written
/// when its data changes, so without renewal it would end a fixed time after login however
/// often it is used; renewing at most daily keeps the idle limit honest while a page view
/// still normally writes nothing.
pub const RENEW_EVERY: Duration = Duration::days(1);

/// The session key holding when the user signed in on this session (unix seconds).
const SIGNED_IN_AT: &str = "signed_in_at";
/// However often it is used, a session ends this long after sign-in.
pub const ABSOLUTE_LIFETIME: Duration = Duration::days(30);

/// Records that the user just signed in on this session, which counts as a renewal too.
pub async fn mark_signed_in(session: &Session) -> Result<(), session::Error> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    session.insert(SIGNED_IN_AT, now).await?;
    session.insert(RENEWED_AT, now).await
}

/// Whether a signed-in session is older than [`ABSOLUTE_LIFETIME`]. A session signed in
/// before sign-in times were kept gets one now, and counts from here.
pub async fn outlived(session: &Session) -> Result<bool, session::Error> {
    let now = OffsetDateTime::now_utc();
    match session.get::<i64>(SIGNED_IN_AT).await? {
        Some(at) => Ok(OffsetDateTime::from_unix_timestamp(at)
            .map_or(true, |at| now - at >= ABSOLUTE_LIFETIME)),
        None => {
            session.insert(SIGNED_IN_AT, now.unix_timestamp()).await?;
            Ok(false)
        }
    }
}

/// Renews a signed-in session when its last renewal is `RENEW_EVERY` old or unknown; true
/// when it did. Changing the data makes the session layer save the record with a fresh idle
/// expiry and send the cookie again.
pub async fn renew_if_due(session: &Session) -> Result<bool, session::Error> {
    let now = OffsetDateTime::now_utc();
    let last = session.get::<i64>(RENEWED_AT).await?;
    let due = last
        .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
        .is_none_or(|at| now - at >= RENEW_EVERY);
    if due {
        session.insert(RENEWED_AT, now.unix_timestamp()).await?;
    }
    Ok(due)
}

/// The store the server uses: memory in front of the database.
pub type Sessions = CachingSessionStore<MemorySessions, DbSessionStore>;

/// `memory` is the instance's one in-memory cache of sessions (`AppState::session_memory`),
/// which sessions ended on other instances are removed from.
pub fn sessions(db: Db, memory: MemorySessions) -> Sessions {
    CachingSessionStore::new(memory, DbSessionStore::new(db))
}

/// Recently used sessions, in memory. Only a cache: the database is the source of truth.
///
/// An ended session (logout) is remembered for a while, so that a request that loaded it
/// before the logout and saves it afterwards (a daily renewal, say) cannot put it back.
#[derive(Clone)]
pub struct MemorySessions {
    records: mini_moka::sync::Cache<Id, Record>,
    ended: mini_moka::sync::Cache<Id, ()>,
}

/// Longer than any request that may still hold an ended session.
const ENDED_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl Default for MemorySessions {
    fn default() -> Self {
        MemorySessions {
            records: mini_moka::sync::Cache::builder()
                .max_capacity(MEMORY_CAPACITY)
                .time_to_live(MEMORY_TTL)
                .build(),
            ended: mini_moka::sync::Cache::builder()
                .max_capacity(MEMORY_CAPACITY)
                .time_to_live(ENDED_REMEMBERED)
                .build(),
        }
    }
}

impl std::fmt::Debug for MemorySessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessions")
            .field("entries", &self.records.entry_count())
            .finish()
    }
}

impl MemorySessions {
    /// [`MemorySessions::forget`] for a session id heard from another instance.
    pub fn forget_ended_elsewhere(&self, session_id: &str) {
        match session_id.parse::<Id>() {
            Ok(id) => self.forget(&id),
            Err(_) => tracing::warn!("unreadable session id in a notification"),
        }
    }

    /// Drops an ended session and keeps it from coming back (see the type's comment).
    pub fn forget(&self, session_id: &Id) {
        self.ended.insert(*session_id, ());
        self.records.invalidate(session_id);
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // The database store runs first and has settled the id.
        self.records.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if !self.ended.contains_key(&record.id) {
            self.records.insert(record.id, record.clone());
        }
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self
            .records
            .get(session_id)
            .filter(|record| record.expiry_date > OffsetDateTime::now_utc()))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.forget(session_id);
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        DbSessionStore { db }
    }

    /// Removes sessions whose expiry has passed; returns how many.
    pub async fn delete_expired(&self) -> Result<usize, DbError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.db
            .run(move |conn| Ok(stored::delete_expired(conn, now)?))
            .await
    }
}

impl DbSessionStore {
    /// Whether `record` differs from the stored session only by its renewal time (and the
    /// expiry a save pushes forward). Reads still work when writes do not (a full disk, a
    /// read-only file, another writer holding the lock); when they do not either, it is not.
    async fn only_renews(&self, record: &Record) -> bool {
        let without_renewal = |record: &Record| {
            let mut data = record.data.clone();
            data.remove(RENEWED_AT);
            data
        };
        match self.load(&record.id).await {
            Ok(Some(stored)) => without_renewal(&stored) == without_renewal(record),
            Ok(None) | Err(_) => false,
        }
    }
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

fn backend(err: DbError) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = record.id.to_string();
            let data = encode(record)?;
            let expiry = record.expiry_date.unix_timestamp();
            let inserted = self
                .db
                .run(move |conn| Ok::<_, DbError>(stored::insert_new(conn, &id, &data, expiry)?))
                .await
                .map_err(backend)?;
            if inserted {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(
            "could not find a free session id".into(),
        ))
    }

    /// Updates a session that exists; never creates one (new sessions come through `create`).
    /// A session ended meanwhile (logout, expiry sweep) stays ended: a request that loaded it
    /// before and saves it after finds no row.
    ///
    /// A save that only renews the session (see [`renew_if_due`]) and cannot be written (the
    /// database read-only, full, or busy past its timeout) is given up with a warning rather
    /// than failing: the session layer would answer the page it rides on with a bare 500.
    /// The session stays valid until its stored expiry, and a later visit renews it.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let id = record.id.to_string();
        let data = encode(record)?;
        let expiry = record.expiry_date.unix_timestamp();
        let written = self
            .db
            .run(move |conn| Ok::<_, DbError>(stored::update(conn, &id, &data, expiry)?))
            .await;
        match written {
            Ok(()) => Ok(()),
            Err(err) if self.only_renews(record).await => {
                tracing::warn!(error = %err, "could not save a session renewal; tried again later");
                Ok(())
            }
            Err(err) => Err(backend(err)),
        }
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let id = session_id.to_string();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let data: Option<Vec<u8>> = self
            .db
            .run(move |conn| Ok::<_, DbError>(stored::load(conn, &id, now)?))
            .await
            .map_err(backend)?;
        data.map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let id = session_id.to_string();
        self.db
            .run(move |conn| Ok::<_, DbError>(stored::end(conn, &id)?))
            .await
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
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
}
