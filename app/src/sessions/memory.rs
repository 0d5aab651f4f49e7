//! Recently used sessions, kept in memory in front of the database.

use async_trait::async_trait;
use axum_login::tower_sessions::cookie::time::OffsetDateTime;
use axum_login::tower_sessions::session::{Id, Record};
use axum_login::tower_sessions::session_store::{self, SessionStore};

/// How long a session stays in memory without being reloaded from the database. Instances on
/// PostgreSQL hear of an ended session at once (`domain::sessions::ENDED_CHANNEL`); this
/// bounds how long one whose listening connection was down may still honour it.
const MEMORY_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const MEMORY_CAPACITY: u64 = 100_000;

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
