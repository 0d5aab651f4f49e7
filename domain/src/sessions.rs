//! Login sessions' rows: stored in our own database so that a server restart logs nobody
//! out. The session layer (`app::sessions`) encodes the records and keeps them in memory; this
//! module owns the table.

use diesel::prelude::*;

use crate::db::Conn;
use crate::schema::sessions;

/// The notification channel an ended session's id is announced on (PostgreSQL), so that
/// every instance drops it from memory at once.
pub const ENDED_CHANNEL: &str = "subscriptions_sessions_ended";

/// Inserts unless the id exists; true when a row was written.
pub fn insert_new(conn: &mut Conn, id: &str, data: &[u8], expiry: i64) -> QueryResult<bool> {
    let written = crate::on_each_backend!(conn, c => diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::data.eq(data),
            sessions::expiry_date.eq(expiry),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(written == 1)
}

/// Rewrites a session that exists; a session ended meanwhile stays ended (no row, nothing
/// written).
pub fn update(conn: &mut Conn, id: &str, data: &[u8], expiry: i64) -> QueryResult<()> {
    diesel::update(sessions::table.filter(sessions::id.eq(id)))
        .set((sessions::data.eq(data), sessions::expiry_date.eq(expiry)))
        .execute(conn)
        .map(drop)
}

/// The stored record of a session that has not expired by `now` (unix seconds).
pub fn load(conn: &mut Conn, id: &str, now: i64) -> QueryResult<Option<Vec<u8>>> {
    sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::expiry_date.gt(now))
        .select(sessions::data)
        .first(conn)
        .optional()
}

/// Ends a session. Other instances may hold it in memory: on PostgreSQL they hear of the end
/// on [`ENDED_CHANNEL`] when (and only if) it commits.
pub fn end(conn: &mut Conn, id: &str) -> QueryResult<()> {
    let ended = sessions::table.filter(sessions::id.eq(id));
    match conn {
        Conn::Sqlite(sqlite) => diesel::delete(ended).execute(sqlite).map(drop),
        Conn::Pg(pg) => pg.transaction(|pg| {
            diesel::delete(ended).execute(pg)?;
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(ENDED_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(id)
                .execute(pg)
                .map(drop)
        }),
    }
}

/// Removes sessions whose expiry has passed by `now` (unix seconds); returns how many.
pub fn delete_expired(conn: &mut Conn, now: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expiry_date.le(now))).execute(conn)
}

type Listener = Box<dyn Fn(&str) + Send + Sync>;

/// Who wants to hear of sessions ended on other instances (the session layer's memory, which
/// drops its copy at once). The domain hears of them through the database; what a session
/// record holds is not its business.
#[derive(Clone, Default)]
pub struct EndedElsewhere(std::sync::Arc<std::sync::RwLock<Vec<Listener>>>);

impl EndedElsewhere {
    /// Calls `listener` with the id of every session another instance ends from now on.
    pub fn listen(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.0.write() {
            listeners.push(Box::new(listener));
        }
    }

    pub(crate) fn tell(&self, session_id: &str) {
        if let Ok(listeners) = self.0.read() {
            for listener in listeners.iter() {
                listener(session_id);
            }
        }
    }
}

impl std::fmt::Debug for EndedElsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndedElsewhere").finish_non_exhaustive()
    }
}
