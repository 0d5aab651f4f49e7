//! Login sessions for the session layer (tower-sessions): stored in the database through the
//! domain's `sessions` rows, so that a server restart logs nobody out, with an in-memory
//! cache in front so that a page view needs no SQL for its session.
//!
//! `memory` keeps recently used sessions, `store` the rows (through `domain::sessions`), and
//! `renewal` the rules of a session's life: renewal and its absolute limit.

mod memory;
mod renewal;
mod store;
#[cfg(test)]
mod tests;

use axum_login::tower_sessions::session_store::CachingSessionStore;
use domain::db::Db;

pub use memory::MemorySessions;
pub use renewal::{mark_signed_in, outlived, renew_if_due, ABSOLUTE_LIFETIME, RENEW_EVERY};
pub use store::DbSessionStore;

/// The store the server uses: memory in front of the database.
pub type Sessions = CachingSessionStore<MemorySessions, DbSessionStore>;

/// `memory` is the instance's one in-memory cache of sessions (`AppState::session_memory`),
/// which sessions ended on other instances are removed from.
pub fn sessions(db: Db, memory: MemorySessions) -> Sessions {
    CachingSessionStore::new(memory, DbSessionStore::new(db))
}
