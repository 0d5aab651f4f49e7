//! Sessions in the database, through the domain's rows (`domain::sessions`).

use async_trait::async_trait;
use axum_login::tower_sessions::cookie::time::OffsetDateTime;
use axum_login::tower_sessions::session::{Id, Record};
use axum_login::tower_sessions::session_store::{self, SessionStore};
use domain::db::{Db, DbError};
use domain::sessions as stored;

use super::renewal::RENEWED_AT;

/// How often `create` draws a fresh id when the drawn one is taken (practically never).
const CREATE_ATTEMPTS: usize = 8;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    pub(super) db: Db,
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

/// A record as its row stores it: the id, the encoded record and the expiry (unix seconds).
fn row(record: &Record) -> session_store::Result<(String, Vec<u8>, i64)> {
    Ok((
        record.id.to_string(),
        encode(record)?,
        record.expiry_date.unix_timestamp(),
    ))
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
            let (id, data, expiry) = row(record)?;
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
        let (id, data, expiry) = row(record)?;
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
