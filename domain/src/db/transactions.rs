//! Write and snapshot transactions on either backend, and the row locks that make a change
//! on PostgreSQL follow the one before it as SQLite's single writer does.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;

use super::backend::Conn;
use super::statements::Writing;

/// Runs `f` in a write transaction.
///
/// On SQLite it takes the database's write lock up front: the default (deferred)
/// transaction upgrades its read lock on the first write, and an upgrade that collides with
/// another writer fails at once instead of waiting, while a lock taken first lets the busy
/// timeout do its job. PostgreSQL writers do not queue for one lock: a change locks the rows
/// it depends on first (READ COMMITTED; [`RowLock`]).
pub fn write_transaction<R, E, F>(conn: &mut Conn, f: F) -> Result<R, E>
where
    F: FnOnce(&mut Conn) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    write_transaction_then(conn, f, |value| value)
}

/// [`write_transaction`], then `after_commit` with what it returned, while this process's
/// SQLite writers still take turns: what one commit tells the open pages goes out before
/// what the next commit tells them, so the counts a change read inside its transaction are
/// never published after a later change's. (PostgreSQL versions come from the database,
/// and a page that sees one out of order refetches.)
pub fn write_transaction_then<R, T, E, F, A>(conn: &mut Conn, f: F, after_commit: A) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<R, E>,
    A: FnOnce(R) -> T,
    E: From<diesel::result::Error>,
{
    let writing = Writing::enter();
    // SQLite takes one writer at a time. Left to SQLite, this process's writers would poll
    // its lock with growing sleeps (its busy handler): a write waited up to tens of
    // milliseconds for a lock freed long before. Here they queue on a lock of the process
    // and each is woken as soon as the write ahead of it ends. Held only around the
    // transaction (not the hop to the connection's thread), and not again by a write nested
    // in one. (One process serves one SQLite database; other processes still meet the busy
    // handler.)
    let _turn = match conn {
        Conn::Sqlite(_) if !writing.0 => Some(
            SQLITE_WRITERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
        _ => None,
    };
    transaction(conn, "BEGIN IMMEDIATE", "BEGIN", f).map(after_commit)
}

/// The turn of this process's SQLite writers (see [`write_transaction`]).
static SQLITE_WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` in a read-only transaction whose statements all see one snapshot (SQLite's
/// deferred transaction does; PostgreSQL's READ COMMITTED would give each statement its own).
pub fn snapshot_transaction<R, E, F>(conn: &mut Conn, f: F) -> Result<R, E>
where
    F: FnOnce(&mut Conn) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    transaction(
        conn,
        "BEGIN",
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        f,
    )
}

fn transaction<R, E, F>(conn: &mut Conn, sqlite_begin: &str, pg_begin: &str, f: F) -> Result<R, E>
where
    F: FnOnce(&mut Conn) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        Conn::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, sqlite_begin)?
        }
        Conn::Pg(pg) => AnsiTransactionManager::begin_transaction_sql(pg, pg_begin)?,
    }
    // From here on the shared connection's manager, which hands each step to the inner
    // connection's, sees the transaction begun above.
    match f(conn) {
        Ok(value) => {
            <Conn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => match <Conn as Connection>::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(err),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// The row lock a PostgreSQL change takes on the rows it reads before it writes, so that
/// two changes cannot both act on what each read before the other wrote. (On SQLite the
/// write transaction already holds the database's one write lock.) Rows are locked in id
/// order, table by table (users before topics), so two changes never wait on each other
/// in a circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// Rows referencing this one will be added or removed; the row itself must go on
    /// existing until the commit (a delete waits), but other such changes and a rename need
    /// not wait. On a topic, the subscriber count trigger takes the row for its update later,
    /// at the insert or delete: the changes of one topic take turns only from there to the
    /// commit, not for the whole transaction.
    Reference,
    /// The row will be changed but keeps its key: other rows may still reference it.
    Change,
    /// The row will be deleted.
    Delete,
}

/// Runs `$body` with `$inner` bound to the backend's own connection, for the few statements
/// Diesel's shared connection type cannot express (upserts, row locks): the body is
/// compiled once per backend.
#[macro_export]
macro_rules! on_each_backend {
    ($conn:expr, $inner:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($inner) => $body,
            $crate::db::Conn::Pg($inner) => $body,
        }
    };
}
