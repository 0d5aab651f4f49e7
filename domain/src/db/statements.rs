//! Counting the SQL each connection runs, and telling the reads a cache hit must not run from
//! the writes that touch the topic tables by design.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use diesel::connection::{Instrumentation, InstrumentationEvent};

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
pub(crate) struct Writing(pub(super) bool);

impl Writing {
    pub(super) fn enter() -> Self {
        Writing(WRITING.replace(true))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.set(self.0);
    }
}

/// Counts one connection's statements.
pub(super) struct CountStatements(pub(super) Arc<SqlStats>);

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
