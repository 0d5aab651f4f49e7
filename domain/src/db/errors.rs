//! What database errors mean for the request that met them: unavailable for now (busy, full,
//! read-only, gone), a taken name, or a bug to log.

use crate::error::DomainError;

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

impl From<diesel::result::Error> for DomainError {
    fn from(err: diesel::result::Error) -> Self {
        if is_unavailable(&err) {
            return DomainError::unavailable(&err);
        }
        DomainError::internal("database query failed", &err)
    }
}

impl From<DbError> for DomainError {
    fn from(err: DbError) -> Self {
        match &err {
            DbError::Pool(_) => DomainError::unavailable(&err),
            DbError::Query(query) if is_unavailable(query) => DomainError::unavailable(&err),
            _ => DomainError::internal("database operation failed", &err),
        }
    }
}
