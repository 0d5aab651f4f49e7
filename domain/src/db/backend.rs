//! The two SQL backends: which one a URL names, how a connection to it is opened and set up,
//! and how its schema is brought up to date.

use std::path::Path;
use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_diesel::Runtime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::errors::OpenError;
use super::statements::{CountStatements, SqlStats};

/// One connection to whichever backend the server runs on. Code that is the same on both
/// takes `&mut Conn` and uses Diesel's query builder; the few statements one backend spells
/// differently (row locks, upserts) match on the variant where they are written.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Applied to every SQLite connection when it is opened.
/// WAL lets readers proceed while one writer commits; the busy timeout makes a second
/// writer wait instead of failing at once. It comes first: setting the journal mode takes a
/// lock too, and another process (the server beside `server create-user`) may hold it.
const SQLITE_SETTINGS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;";

/// Timestamps are written and read as UTC whatever the server's time zone is. A statement
/// waits for a row or table lock at most as long as SQLite's busy timeout, then fails (503,
/// nothing changed) instead of holding its request and connection indefinitely.
const POSTGRES_SETTINGS: &str = "SET TIME ZONE 'UTC'; SET lock_timeout = '5s';";

/// Held around the PostgreSQL migration run, so that instances started together on an empty
/// database migrate it once: diesel_migrations takes no lock of its own. Any constant will
/// do as long as nothing else in the database uses it ("Subs" in ASCII).
const MIGRATION_LOCK: i64 = 0x5375_6273;

/// A database named by `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file, created with its folder when missing.
    Sqlite { path: String },
    /// A server, given as libpq understands it (`postgres://user@host:port/name?…`).
    Postgres { url: String },
}

impl Target {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite://path`, `sqlite:path` or a
    /// bare path is a SQLite file.
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres {
                url: url.to_owned(),
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(OpenError::UnsupportedUrl(url.to_owned()));
        }
        Ok(Target::Sqlite {
            path: path.to_owned(),
        })
    }

    /// What to call the database in messages: never a password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite { path } => path.clone(),
            Target::Postgres { url } => redact_password(url),
        }
    }

    /// Makes sure a SQLite file can be created where it is named.
    pub(super) fn prepare(&self) -> Result<(), OpenError> {
        let Target::Sqlite { path } = self else {
            return Ok(());
        };
        match Path::new(path).parent() {
            Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
                .map_err(|source| OpenError::CreateDir {
                    path: parent.display().to_string(),
                    source,
                }),
            _ => Ok(()),
        }
    }

    /// Opens and sets up one connection, with the backend's own reason when it cannot.
    pub fn connect(&self) -> ConnectionResult<Conn> {
        match self {
            Target::Sqlite { path } => {
                let mut conn = SqliteConnection::establish(path)?;
                conn.batch_execute(SQLITE_SETTINGS)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(Conn::Sqlite(conn))
            }
            Target::Postgres { url } => {
                let mut conn = PgConnection::establish(url)?;
                conn.batch_execute(POSTGRES_SETTINGS)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(Conn::Pg(conn))
            }
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Brings the schema up to date on `conn`, with the migrations of its backend.
pub(super) fn migrate(conn: &mut Conn) -> Result<(), String> {
    match conn {
        Conn::Sqlite(sqlite) => run_migrations(sqlite, SQLITE_MIGRATIONS),
        Conn::Pg(pg) => {
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                .execute(pg)
                .map_err(|e| e.to_string())?;
            let migrated = run_migrations(pg, POSTGRES_MIGRATIONS);
            // Closing the connection would release the lock too; the pool keeps it open.
            let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                .execute(pg)
                .map_err(|e| e.to_string());
            migrated.and(unlocked.map(|_| ()))
        }
    }
}

/// Whether the schema lacks a migration this build knows (the database is behind the code).
pub(super) fn has_pending_migrations(conn: &mut Conn) -> Result<bool, String> {
    match conn {
        Conn::Sqlite(sqlite) => sqlite.has_pending_migration(SQLITE_MIGRATIONS),
        Conn::Pg(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| e.to_string())
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<(), String>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Opens pooled connections to one [`Target`] (deadpool-diesel's own manager would go
/// through the derived `Conn::establish`, which tries each backend in turn and reports
/// none of their errors).
pub(super) struct Manager {
    pub target: Target,
    pub stats: Arc<SqlStats>,
}

impl managed::Manager for Manager {
    type Type = deadpool_diesel::Connection<Conn>;
    type Error = ConnectionError;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let target = self.target.clone();
        let stats = self.stats.clone();
        deadpool_diesel::Connection::new(Runtime::Tokio1, move || {
            let mut conn = target.connect()?;
            conn.set_instrumentation(CountStatements(stats));
            Ok::<_, ConnectionError>(conn)
        })
        .await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("a query panicked on this connection"));
        }
        // No ping before every checkout: a PostgreSQL connection whose server went away fails
        // its next statement, after which Diesel reports its transaction manager broken (libpq
        // no longer knows the transaction state), so it is dropped here and replaced.
        let clean = conn
            .interact(|conn| {
                use diesel::connection::TransactionManager;
                !<Conn as Connection>::TransactionManager::is_broken_transaction_manager(conn)
            })
            .await
            .map_err(|e| RecycleError::message(e.to_string()))?;
        if clean {
            Ok(())
        } else {
            Err(RecycleError::message(
                "broken: left inside a transaction, or its server went away",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_backend() {
        let sqlite = |path: &str| {
            Some(Target::Sqlite {
                path: path.to_owned(),
            })
        };
        assert_eq!(
            Target::parse("sqlite://data/app.db").ok(),
            sqlite("data/app.db")
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/x.db").ok(),
            sqlite("/tmp/x.db")
        );
        assert_eq!(Target::parse("data/app.db").ok(), sqlite("data/app.db"));
        assert!(Target::parse("sqlite://").is_err());
        assert!(Target::parse("mysql://localhost/test").is_err());
        for url in [
            "postgres://u@localhost/test",
            "postgresql://localhost:5433/x",
        ] {
            assert_eq!(
                Target::parse(url).ok(),
                Some(Target::Postgres {
                    url: url.to_owned()
                })
            );
        }
    }

    #[test]
    fn descriptions_hide_passwords() {
        let target = Target::parse("postgres://app:s3cret@db.internal:5432/subs").expect("url");
        assert_eq!(
            target.describe(),
            "postgres://app:***@db.internal:5432/subs"
        );
        let target = Target::parse("postgres://app@db.internal/subs").expect("url");
        assert_eq!(target.describe(), "postgres://app@db.internal/subs");
    }
}
