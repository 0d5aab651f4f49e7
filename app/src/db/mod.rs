//! The database: connection pool, write transactions and what errors mean.
//!
//! Everything that depends on the SQL backend lives in this module (`backend` opens
//! connections and migrates; here are the transactions and errors), so that domain modules
//! write one query for both backends, and spell out the rare exception where they make it.

mod backend;
#[cfg(any(test, feature = "test-support"))]
pub mod scratch;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Pool, Timeouts};
use diesel::connection::{
    AnsiTransactionManager, Instrumentation, InstrumentationEvent, TransactionManager,
};
use diesel::prelude::*;

pub use backend::{Conn, Target, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

const POOL_SIZE: u32 = 8;

/// How many connections a [`Db`] pools, and how long a request waits for one before it is
/// answered that the database is busy.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub size: u32,
    pub wait: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            size: POOL_SIZE,
            wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "unsupported DATABASE_URL `{0}`: expected sqlite://<path> (e.g. sqlite://data/app.db) \
         or postgres://<user>@<host>/<database>"
    )]
    UnsupportedUrl(String),
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {database}: {reason}")]
    Open { database: String, reason: String },
    #[error("cannot apply the database migrations: {0}")]
    Migrate(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("the database task did not finish: {0}")]
    Interact(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// SQL statements run since start, counted by the connections themselves.
#[derive(Debug, Default)]
pub struct SqlStats {
    /// Every statement, transaction control included.
    pub statements: AtomicU64,
    /// Statements outside write transactions that touch the topic tables (`topics`,
    /// `topic_subscribers`, `topic_activities`): the reads a cache hit must not run.
    pub topic_statements: AtomicU64,
}

thread_local! {
    /// Whether this thread is inside [`write_transaction`] (a pooled connection runs its
    /// statements on the thread that called it).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the thread as writing until dropped (a panic included); holds whether it was
/// writing already (a nested write).
struct Writing(bool);

impl Writing {
    fn enter() -> Self {
        Writing(WRITING.replace(true))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.set(self.0);
    }
}

/// Counts one connection's statements.
struct CountStatements(Arc<SqlStats>);

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.statements.fetch_add(1, Ordering::Relaxed);
            // Telling which statements touch the topic tables means formatting each one, and
            // through Diesel's shared connection type that builds its SQL three times: it cost
            // a subscribe 18 % of its instructions. Writes touch those tables by design; the
            // reads are what a cache hit must not run, so only they are looked at.
            if WRITING.get() && !tracing::enabled!(tracing::Level::TRACE) {
                return;
            }
            let sql = query.to_string();
            tracing::trace!(%sql, "statement");
            // The statement's text, not the values bound to it (which Diesel appends).
            let text = sql.split("-- binds:").next().unwrap_or_default();
            if !WRITING.get() && text.contains("topic") {
                self.0.topic_statements.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// See [`Db::pool_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: usize,
    pub idle: usize,
    pub max: usize,
    pub waiting: usize,
}

/// Which SQL backend a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap handle to the connection pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool<backend::Manager>,
    stats: Arc<SqlStats>,
    backend: Backend,
    /// Shared: a `Db` is cloned into every request's services, and a clone must not allocate.
    target: Arc<Target>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Db {
    /// Opens the database named by `url` (creating a SQLite file if needed) and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, PoolSettings::default()).await
    }

    /// [`Self::open`] with a pool of its own size and wait.
    pub async fn open_with(url: &str, settings: PoolSettings) -> Result<Self, OpenError> {
        let target = Target::parse(url)?;
        target.prepare()?;
        let backend = match target {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        };
        let database = target.describe();
        let stats = Arc::new(SqlStats::default());
        let manager = backend::Manager {
            target: target.clone(),
            stats: stats.clone(),
        };
        let pool = Pool::builder(manager)
            .max_size(usize::try_from(settings.size.max(1)).unwrap_or(usize::MAX))
            .timeouts(Timeouts {
                wait: Some(settings.wait),
                create: Some(Duration::from_secs(10)),
                recycle: Some(Duration::from_secs(5)),
            })
            .runtime(deadpool_diesel::Runtime::Tokio1)
            .build()
            .map_err(|e| OpenError::Open {
                database: database.clone(),
                reason: e.to_string(),
            })?;
        let db = Db {
            pool,
            stats,
            backend,
            target: Arc::new(target),
        };
        db.migrate().await.map_err(|e| match e {
            MigrateFailure::Connect(reason) => OpenError::Open { database, reason },
            MigrateFailure::Migrate(reason) => OpenError::Migrate(reason),
        })?;
        db.run(|conn| fill_missing_name_keys(conn).map_err(DbError::from))
            .await
            .map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), MigrateFailure> {
        let conn = self.pool.get().await.map_err(|e| {
            MigrateFailure::Connect(match e {
                // The driver's own words ("connection refused", "password authentication
                // failed", "database … does not exist"), not the pool's wrapper.
                deadpool::managed::PoolError::Backend(reason) => reason.to_string(),
                other => other.to_string(),
            })
        })?;
        conn.interact(backend::migrate)
            .await
            .map_err(|e| MigrateFailure::Migrate(e.to_string()))?
            .map_err(MigrateFailure::Migrate)
    }

    /// Whether this instance can serve: a pooled connection answers within `limit` and the
    /// schema has every migration this build expects. The error says what is wrong.
    pub async fn check_ready(&self, limit: Duration) -> Result<(), String> {
        let check =
            self.run(|conn| backend::has_pending_migrations(conn).map_err(NotReady::Schema));
        match tokio::time::timeout(limit, check).await {
            Err(_) => Err(format!(
                "the database did not answer within {} s",
                limit.as_secs()
            )),
            Ok(Err(NotReady::Unreachable(reason))) => {
                Err(format!("the database cannot be reached: {reason}"))
            }
            Ok(Err(NotReady::Schema(reason))) => Err(format!(
                "the database's migrations cannot be read: {reason}"
            )),
            Ok(Ok(true)) => Err("the database's schema is behind: migrations are pending".into()),
            Ok(Ok(false)) => Ok(()),
        }
    }

    /// The pool now: connections open, idle, the most there may be, and requests waiting
    /// for one.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            open: status.size,
            idle: status.available,
            max: status.max_size,
            waiting: status.waiting,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the database is (for a connection of one's own, outside the pool).
    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn sql_stats(&self) -> &SqlStats {
        &self.stats
    }

    /// Runs blocking Diesel code on a pooled connection, off the async runtime.
    pub async fn run<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Conn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| E::from(DbError::Pool(e.to_string())))?;
        // Log lines written on the blocking thread (receivers' included) belong to the
        // request that asked for the work.
        let span = tracing::Span::current();
        conn.interact(move |conn| span.in_scope(|| f(conn)))
            .await
            .map_err(|e| E::from(DbError::Interact(e.to_string())))?
    }
}

enum NotReady {
    Unreachable(DbError),
    Schema(String),
}

impl From<DbError> for NotReady {
    fn from(err: DbError) -> Self {
        NotReady::Unreachable(err)
    }
}

enum MigrateFailure {
    Connect(String),
    Migrate(String),
}

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

/// Computes the comparison keys (`crate::names::key`) of rows written before keys existed
/// (SQLite migration 000007, and the seeded topics): a key is made in Rust, so SQL alone
/// cannot fill it. Two old names with the same key keep the first; the other stays without
/// a key (findable by its exact name) and is logged.
fn fill_missing_name_keys(conn: &mut Conn) -> QueryResult<usize> {
    use crate::schema::{topics, users};
    let unkeyed_users: Vec<(i64, String)> = users::table
        .filter(users::username_key.is_null())
        .select((users::id, users::username))
        .order(users::id)
        .load(conn)?;
    let mut filled = 0;
    for (id, name) in unkeyed_users {
        let set = diesel::update(users::table.find(id))
            .set(users::username_key.eq(crate::names::key(&name)))
            .execute(conn);
        filled += keep_first(set, "users", id)?;
    }
    let unkeyed_topics: Vec<(i64, String)> = topics::table
        .filter(topics::name_key.is_null())
        .select((topics::id, topics::name))
        .order(topics::id)
        .load(conn)?;
    for (id, name) in unkeyed_topics {
        let set = diesel::update(topics::table.find(id))
            .set(topics::name_key.eq(crate::names::key(&name)))
            .execute(conn);
        filled += keep_first(set, "topics", id)?;
    }
    Ok(filled)
}

fn keep_first(set: QueryResult<usize>, table: &str, id: i64) -> QueryResult<usize> {
    match set {
        Err(err) if is_unique_violation(&err) => {
            tracing::warn!(table, id, "name clashes with another by key; left unkeyed");
            Ok(0)
        }
        other => other,
    }
}

/// Whether `err` says the database cannot serve now rather than that the request is wrong:
/// busy beyond the timeout, read-only, out of space, unreachable. (Neither backend gives
/// these a kind of their own in Diesel; SQLite and PostgreSQL word them as below.)
pub fn is_unavailable(err: &diesel::result::Error) -> bool {
    const UNAVAILABLE: [&str; 15] = [
        // SQLite
        "database is locked",
        "database table is locked",
        "readonly database",
        "database or disk is full",
        "disk I/O error",
        "unable to open database file",
        // PostgreSQL
        "terminating connection",
        "server closed the connection",
        "no connection to the server",
        "the database system is",
        "could not extend file",
        "No space left on device",
        "read-only transaction",
        "canceling statement due to statement timeout",
        "canceling statement due to lock timeout",
    ];
    match err {
        diesel::result::Error::DatabaseError(kind, info) => {
            matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                || UNAVAILABLE.iter().any(|m| info.message().contains(m))
        }
        _ => false,
    }
}

/// Whether `err` is a unique-constraint violation (a taken name).
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use diesel_migrations::MigrationHarness;

    use super::*;

    /// This process's SQLite writers take turns before SQLite's lock: with SQLite's own
    /// waiting turned off (a busy timeout of 0), writers running at once on every pooled
    /// connection all commit, where SQLite alone would refuse all but one ("database is
    /// locked").
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_writers_of_one_process_take_turns_instead_of_meeting_the_lock() {
        let (_place, db) = crate::testing::test_db().await;
        if db.backend() != Backend::Sqlite {
            return;
        }
        let writers: Vec<_> = (0..POOL_SIZE * 4)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.run(move |conn| {
                        use diesel::connection::SimpleConnection;
                        if let Conn::Sqlite(sqlite) = conn {
                            sqlite.batch_execute("PRAGMA busy_timeout = 0")?;
                        }
                        let written = write_transaction(conn, |conn| {
                            diesel::sql_query(format!(
                                "INSERT INTO topics (name, name_key) VALUES ('t{n}', 't{n}')"
                            ))
                            .execute(conn)?;
                            // Long enough that the writers overlap.
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            Ok::<_, diesel::result::Error>(())
                        });
                        if let Conn::Sqlite(sqlite) = conn {
                            sqlite.batch_execute("PRAGMA busy_timeout = 5000")?;
                        }
                        written.map_err(DbError::from)
                    })
                    .await
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("task").expect("every writer commits");
        }
        let n = db
            .run(|conn| {
                diesel::sql_query("SELECT count(*) AS n FROM topics WHERE name LIKE 't%'")
                    .get_result::<Count>(conn)
                    .map_err(DbError::from)
            })
            .await
            .expect("count")
            .n;
        assert_eq!(n, i64::from(POOL_SIZE * 4));
    }

    /// What a commit does after it (tell open pages, with counts read inside it) happens
    /// before the next writer of this process commits: the next one waits for its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_next_sqlite_writer_commits_only_after_the_previous_ones_after_commit_work() {
        let (_place, db) = crate::testing::test_db().await;
        if db.backend() != Backend::Sqlite {
            return;
        }
        let insert = |conn: &mut Conn, name: &str| {
            diesel::sql_query(format!(
                "INSERT INTO topics (name, name_key) VALUES ('{name}', '{name}')"
            ))
            .execute(conn)
        };
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let next_writer = db.clone();
        let first = db.clone();
        let overtaken = first
            .run(move |conn| {
                write_transaction_then(
                    conn,
                    |conn| insert(conn, "first").map_err(DbError::from),
                    move |_| {
                        // Committed; while this work runs, another writer tries its turn.
                        let next = tokio::runtime::Handle::current();
                        next.spawn(async move {
                            let _ = started_tx.send(());
                            let written = next_writer
                                .run(move |conn| {
                                    write_transaction(conn, |conn| {
                                        insert(conn, "second").map_err(DbError::from)
                                    })
                                })
                                .await;
                            assert!(written.is_ok(), "the second writer commits");
                            let _ = done_tx.send(());
                        });
                        let _ = started.recv();
                        // Ample time for the second write, were it not waiting for this.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        done.try_recv().is_ok()
                    },
                )
            })
            .await
            .expect("first writer");
        assert!(
            !overtaken,
            "a write committed before the previous one's work ran"
        );
    }

    #[tokio::test]
    async fn topic_reads_are_told_apart_from_writes() {
        let (_place, db) = crate::testing::test_db().await;
        let counts = |db: &Db| {
            let stats = db.sql_stats();
            (
                stats.statements.load(Ordering::Relaxed),
                stats.topic_statements.load(Ordering::Relaxed),
            )
        };
        let read = |db: Db| async move {
            db.run(|conn| topic_names(conn).map_err(DbError::from))
                .await
                .expect("read")
        };
        let (all, topic) = counts(&db);
        read(db.clone()).await;
        assert_eq!(counts(&db), (all + 1, topic + 1), "a read of topics is one");

        let (all, topic) = counts(&db);
        db.run(|conn| {
            write_transaction(conn, |conn| {
                diesel::sql_query("UPDATE topics SET name = name WHERE id = 1").execute(conn)
            })
            .map_err(DbError::from)
        })
        .await
        .expect("write");
        let (all_after, topic_after) = counts(&db);
        assert!(all_after >= all + 3, "begin, update, commit are counted");
        assert_eq!(
            topic_after, topic,
            "a write's statements are not read as topic reads"
        );

        // A failed write leaves its thread as it found it: the read after it, on the same
        // thread, is looked at again.
        let (_, topic) = counts(&db);
        db.run(|conn| {
            let failed = write_transaction(conn, |conn| {
                diesel::sql_query("UPDATE no_such_table SET x = 1").execute(conn)
            });
            assert!(failed.is_err());
            topic_names(conn).map_err(DbError::from)
        })
        .await
        .expect("read after a failed write");
        assert_eq!(
            counts(&db).1,
            topic + 1,
            "reads after writes are looked at again"
        );
    }

    #[tokio::test]
    async fn every_migration_reverts_and_reapplies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let db = Db::open(&url).await.expect("open and migrate");
        let names: Vec<String> = db
            .run(|conn| {
                let seeded = topic_names(conn)?;
                let Conn::Sqlite(sqlite) = conn else {
                    unreachable!("a sqlite:// URL opens SQLite")
                };
                sqlite
                    .revert_all_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| DbError::Interact(e.to_string()))?;
                let left: i64 = diesel::sql_query(
                    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' \
                     AND name IN ('users', 'topics', 'topic_subscribers', 'topic_activities', 'sessions')",
                )
                .get_result::<Count>(conn)?
                .n;
                assert_eq!(left, 0, "every table is dropped by the down migrations");
                let Conn::Sqlite(sqlite) = conn else {
                    unreachable!("a sqlite:// URL opens SQLite")
                };
                sqlite
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| DbError::Interact(e.to_string()))?;
                let again = topic_names(conn)?;
                assert_eq!(seeded, again);
                Ok::<_, DbError>(again)
            })
            .await
            .expect("migrations round trip");
        assert_eq!(names, vec!["DevOps", "Django", "Python"]);
    }

    #[tokio::test]
    async fn connections_enforce_foreign_keys_and_use_wal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let db = Db::open(&url).await.expect("open");
        let (fk, mode, timeout) = db
            .run(|conn| {
                let fk = diesel::sql_query("PRAGMA foreign_keys").get_result::<Fk>(conn)?;
                let mode = diesel::sql_query("PRAGMA journal_mode").get_result::<Mode>(conn)?;
                let timeout =
                    diesel::sql_query("PRAGMA busy_timeout").get_result::<Timeout>(conn)?;
                Ok::<_, DbError>((fk.foreign_keys, mode.journal_mode, timeout.timeout))
            })
            .await
            .expect("pragmas");
        assert_eq!(fk, 1);
        assert_eq!(mode, "wal");
        assert!(timeout > 0);
    }

    #[tokio::test]
    async fn an_unopenable_path_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let url = format!("sqlite://{}/app.db", file.display());
        let err = Db::open(&url).await.expect_err("a file is not a folder");
        assert!(
            err.to_string()
                .contains("cannot create the database folder"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_started_together_on_an_empty_postgres_database_migrate_it_once() {
        let place = scratch::ScratchDatabase::create();
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let url = place.url().to_owned();
                tokio::spawn(async move { Db::open(&url).await })
            })
            .collect();
        let mut dbs = Vec::new();
        for open in opening {
            dbs.push(open.await.expect("task").expect("every instance starts"));
        }
        let (migrations, topics) = dbs[0]
            .run(|conn| {
                let migrations =
                    diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
                        .get_result::<Count>(conn)?
                        .n;
                Ok::<_, DbError>((migrations, topic_names(conn)?))
            })
            .await
            .expect("read");
        let embedded =
            diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
                .map(|m| m.len())
                .unwrap_or_default();
        assert_eq!(usize::try_from(migrations).ok(), Some(embedded));
        assert_eq!(topics, vec!["DevOps", "Django", "Python"], "seeded once");
    }

    #[tokio::test]
    async fn every_postgres_migration_reverts_and_reapplies() {
        let place = scratch::ScratchDatabase::create();
        let db = Db::open(place.url()).await.expect("open and migrate");
        let names = db
            .run(|conn| {
                let seeded = topic_names(conn)?;
                let Conn::Pg(pg) = conn else {
                    unreachable!("a postgres:// URL opens PostgreSQL")
                };
                pg.revert_all_migrations(POSTGRES_MIGRATIONS)
                    .map_err(|e| DbError::Interact(e.to_string()))?;
                let left = diesel::sql_query(
                    "SELECT count(*) AS n FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_name IN \
                     ('users', 'topics', 'topic_subscribers', 'topic_activities', 'sessions')",
                )
                .get_result::<Count>(pg)?
                .n;
                assert_eq!(left, 0, "every table is dropped by the down migrations");
                pg.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map_err(|e| DbError::Interact(e.to_string()))?;
                assert_eq!(topic_names(conn)?, seeded);
                Ok::<_, DbError>(seeded)
            })
            .await
            .expect("migrations round trip");
        assert_eq!(names, vec!["DevOps", "Django", "Python"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn connections_the_server_terminated_are_replaced_after_one_failure_each() {
        let place = scratch::ScratchDatabase::create();
        let db = Db::open(place.url()).await.expect("open");
        let ask = |db: Db| async move {
            db.run(|conn| {
                diesel::sql_query("SELECT 1::BIGINT AS n")
                    .get_result::<Count>(conn)
                    .map_err(DbError::from)
            })
            .await
        };
        // Several connections open at once, then returned to the pool.
        let opening: Vec<_> = (0..4).map(|_| tokio::spawn(ask(db.clone()))).collect();
        for open in opening {
            open.await.expect("task").expect("query");
        }
        let mut admin = Target::parse(place.url())
            .expect("url")
            .connect()
            .expect("admin connection");
        let terminated = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .get_result::<Count>(&mut admin)
        .expect("terminate")
        .n;
        assert!(terminated >= 1, "the pool's connections were there to end");
        let mut failures = 0;
        for _ in 0..POOL_SIZE + 3 {
            if ask(db.clone()).await.is_err() {
                failures += 1;
            }
        }
        assert!(
            failures <= usize::try_from(terminated).unwrap_or(usize::MAX),
            "each lost connection fails at most one request: {failures} of {terminated}"
        );
        ask(db.clone()).await.expect("served by a new connection");
    }

    fn topic_names(conn: &mut Conn) -> QueryResult<Vec<String>> {
        use crate::schema::topics::dsl::*;
        topics.select(name).order(name.asc()).load(conn)
    }

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    #[derive(QueryableByName)]
    struct Fk {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        foreign_keys: i64,
    }
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }
}
