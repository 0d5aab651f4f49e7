//! The pool: connections handed out to blocking threads, opened and migrated on start, with
//! readiness checks and the settings an operator can change.

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Pool, Timeouts};

use super::backend::{self, Conn, Target};
use super::errors::{DbError, OpenError};
use super::statements::SqlStats;

pub(super) const POOL_SIZE: u32 = 8;

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
        db.run(|conn| super::name_keys::fill_missing_name_keys(conn).map_err(DbError::from))
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
