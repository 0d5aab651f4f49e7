//! The database: connection pool, write transactions and what errors mean.
//!
//! Everything that depends on the SQL backend lives in this module, so that domain modules
//! write one query for both backends, and spell out the rare exception where they make it:
//! `backend` opens connections and migrates, `pool` hands them out, `transactions` begins and
//! ends write and snapshot transactions, `statements` counts SQL, `errors` says what a
//! failure means, `backup` copies a live SQLite file, `shared_reads` lets the requests that
//! want the same read at once wait for one.

mod backend;
pub mod backup;
mod errors;
mod name_keys;
mod pool;
#[cfg(any(test, feature = "test-support"))]
pub mod scratch;
pub(crate) mod shared_reads;
mod statements;
#[cfg(test)]
mod tests;
mod transactions;

pub use backend::{Conn, Target, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use errors::{is_unavailable, is_unique_violation, DbError, OpenError};
pub use pool::{Backend, Db, PoolSettings, PoolStatus};
pub use statements::SqlStats;
pub use transactions::{snapshot_transaction, write_transaction, write_transaction_then, RowLock};
