//! The database: connection pool, per-connection settings and embedded migrations.
//!
//! Everything that depends on the SQL backend (URL form, PRAGMAs, how a write transaction
//! starts) lives in this file, so that a second backend has one place to go.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_diesel::sqlite::{Hook, HookError, Manager, Pool, Runtime};
use deadpool_diesel::{ManagerConfig, RecyclingMethod};
use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The connection type every query function takes.
pub type Conn = SqliteConnection;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Applied to every pooled connection when it is opened.
/// WAL lets readers proceed while one writer commits; the busy timeout makes a second
/// writer wait instead of failing at once. It comes first: setting the journal mode takes a
/// lock too, and another process (the server beside `server create-user`) may hold it.
const CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;";

const POOL_SIZE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported DATABASE_URL `{0}`: expected sqlite://<path>, e.g. sqlite://data/app.db")]
    UnsupportedUrl(String),
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {reason}")]
    Open { path: String, reason: String },
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
    /// Statements that touch the topic tables (`topics`, `topic_subscribers`,
    /// `topic_activities`): the ones a cache hit must not run.
    pub topic_statements: AtomicU64,
}

struct CountStatements(Arc<SqlStats>);

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.statements.fetch_add(1, Ordering::Relaxed);
            let sql = query.to_string();
            tracing::trace!(%sql, "statement");
            if sql.contains("topic") {
                self.0.topic_statements.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A cheap handle to the connection pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    stats: Arc<SqlStats>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database named by `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let path = sqlite_path(url)?;
        if let Some(parent) = Path::new(&path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
        // Recycling still refuses a connection left inside a transaction, but skips the
        // default `SELECT 1` ping: a local SQLite file does not go away between checkouts.
        let manager = Manager::from_config(
            path.clone(),
            Runtime::Tokio1,
            ManagerConfig {
                recycling_method: RecyclingMethod::CustomFunction(Box::new(|_| Ok(()))),
            },
        );
        let stats = Arc::new(SqlStats::default());
        let hook_stats = stats.clone();
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(10)))
            .runtime(Runtime::Tokio1)
            .post_create(Hook::async_fn(move |wrapper, _| {
                let stats = hook_stats.clone();
                Box::pin(async move {
                    wrapper
                        .interact(move |conn| {
                            conn.set_instrumentation(CountStatements(stats));
                            conn.batch_execute(CONNECTION_PRAGMAS)
                        })
                        .await
                        .map_err(|e| HookError::Message(e.to_string().into()))?
                        .map_err(|e| HookError::Message(e.to_string().into()))
                })
            }))
            .build()
            .map_err(|e| OpenError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let db = Db { pool, stats };
        db.migrate().await.map_err(|e| match e {
            MigrateFailure::Connect(reason) => OpenError::Open { path, reason },
            MigrateFailure::Migrate(reason) => OpenError::Migrate(reason),
        })?;
        db.run(|conn| fill_missing_name_keys(conn).map_err(DbError::from))
            .await
            .map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), MigrateFailure> {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| MigrateFailure::Connect(e.to_string()))?;
        conn.interact(|conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| MigrateFailure::Migrate(e.to_string()))?
        .map_err(MigrateFailure::Migrate)
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
        conn.interact(f)
            .await
            .map_err(|e| E::from(DbError::Interact(e.to_string())))?
    }
}

enum MigrateFailure {
    Connect(String),
    Migrate(String),
}

/// Runs `f` in a transaction that takes the write lock up front.
///
/// SQLite's default (deferred) transaction upgrades its read lock on the first write, and an
/// upgrade that collides with another writer fails at once instead of waiting; taking the lock
/// first lets the busy timeout do its job.
pub fn write_transaction<R, E, F>(conn: &mut Conn, f: F) -> Result<R, E>
where
    F: FnOnce(&mut Conn) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    conn.immediate_transaction(f)
}

/// Computes the comparison keys (`crate::names::key`) of rows written before keys existed
/// (migration 000007, and the seeded topics): a key is made in Rust, so SQL alone cannot
/// fill it. Two old names with the same key keep the first; the other stays without a key
/// (findable by its exact name) and is logged.
fn fill_missing_name_keys(conn: &mut Conn) -> QueryResult<usize> {
    // (table, name column, key column): fixed names, never input.
    const KEYED: [(&str, &str, &str); 2] = [
        ("users", "username", "username_key"),
        ("topics", "name", "name_key"),
    ];
    #[derive(QueryableByName)]
    struct Unkeyed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut filled = 0;
    for (table, name, key) in KEYED {
        let unkeyed: Vec<Unkeyed> = diesel::sql_query(format!(
            "SELECT id, {name} AS name FROM {table} WHERE {key} IS NULL ORDER BY id"
        ))
        .load(conn)?;
        for row in unkeyed {
            let updated = diesel::sql_query(format!("UPDATE {table} SET {key} = ? WHERE id = ?"))
                .bind::<diesel::sql_types::Text, _>(crate::names::key(&row.name))
                .bind::<diesel::sql_types::BigInt, _>(row.id)
                .execute(conn);
            match updated {
                Ok(n) => filled += n,
                Err(err) if is_unique_violation(&err) => {
                    tracing::warn!(
                        table,
                        id = row.id,
                        "name clashes with another by key; left unkeyed"
                    );
                }
                Err(err) => return Err(err),
            }
        }
    }
    Ok(filled)
}

/// Whether `err` says the database cannot serve now rather than that the request is wrong:
/// busy beyond the timeout, read-only, out of space, unreachable. (SQLite reports these
/// with its own messages only.)
pub fn is_unavailable(err: &diesel::result::Error) -> bool {
    const UNAVAILABLE: [&str; 6] = [
        "database is locked",
        "database table is locked",
        "readonly database",
        "database or disk is full",
        "disk I/O error",
        "unable to open database file",
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

fn sqlite_path(url: &str) -> Result<String, OpenError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(OpenError::UnsupportedUrl(url.to_owned()));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_files() {
        assert_eq!(
            sqlite_path("sqlite://data/app.db").ok(),
            Some("data/app.db".into())
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db").ok(),
            Some("/tmp/x.db".into())
        );
        assert_eq!(sqlite_path("data/app.db").ok(), Some("data/app.db".into()));
        assert!(sqlite_path("postgres://localhost/test").is_err());
        assert!(sqlite_path("sqlite://").is_err());
    }

    #[tokio::test]
    async fn every_migration_reverts_and_reapplies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let db = Db::open(&url).await.expect("open and migrate");
        let names: Vec<String> = db
            .run(|conn| {
                let seeded = topic_names(conn)?;
                conn.revert_all_migrations(MIGRATIONS)
                    .map_err(|e| DbError::Interact(e.to_string()))?;
                let left: i64 = diesel::sql_query(
                    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' \
                     AND name IN ('users', 'topics', 'topic_subscribers', 'topic_activities', 'sessions')",
                )
                .get_result::<Count>(conn)?
                .n;
                assert_eq!(left, 0, "every table is dropped by the down migrations");
                conn.run_pending_migrations(MIGRATIONS)
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
