//! Account changes committed by another process (the command line: `server unmake-staff`
//! and its kin), followed by every running server through the `account_changes` table.
//!
//! A server keeps accounts in memory (`UserCache`) and, on SQLite, the versions its pages are
//! stored under; neither hears of a commit made by another process. So each server reads the
//! table's new rows every [`FOLLOW_EVERY`] and, for each, forgets the account and moves the
//! user's page version (on PostgreSQL the change moved it in the database already), so the
//! user's next request reads the account again. The command waits [`HEARD_WITHIN`] before it
//! reports, so that its change is in effect on every running server when it returns. Rights
//! never depend on this: staff actions check the database inside their transaction.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{AccountChange, Receiving, Signals};
use crate::db::{Backend, Db};
use crate::users::ssr::admin::{self, RecordedChange};
use crate::users::ssr::UserCache;

/// How often a server reads the table.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How long the command waits after its commit: several reads of every server.
pub const HEARD_WITHIN: Duration = Duration::from_millis(500);

/// Starts following on the current tokio runtime; the task ends once `signals` is dropped.
/// Without a runtime (a synchronous caller) nothing is followed, which is logged.
pub fn follow(db: Db, signals: &Arc<Signals>, users: UserCache) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime: account changes made elsewhere are not followed");
        return;
    };
    let signals = Arc::downgrade(signals);
    runtime.spawn(run(db, signals, users));
}

async fn run(db: Db, signals: Weak<Signals>, users: UserCache) {
    let mut last = None;
    let mut ticks = tokio::time::interval(FOLLOW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if signals.strong_count() == 0 {
            return;
        }
        let after = last;
        let read = db
            .run(move |conn| match after {
                // Whatever was changed before this server started, it never remembered.
                None => admin::last_change(conn).map(|last| (last, Vec::new())),
                Some(after) => admin::changes_after(conn, after)
                    .map(|changes| (changes.last().map_or(after, |c| c.id), changes)),
            })
            .await;
        match read {
            Ok((read_to, changes)) => {
                let Some(signals) = signals.upgrade() else {
                    return;
                };
                for change in &changes {
                    apply(&signals, &users, db.backend(), change);
                }
                last = Some(read_to);
            }
            Err(err) => tracing::warn!(error = %err, "cannot read account changes"),
        }
    }
}

fn apply(signals: &Signals, users: &UserCache, backend: Backend, recorded: &RecordedChange) {
    let RecordedChange {
        user_id, change, ..
    } = *recorded;
    tracing::info!(user_id = %user_id, change = change.as_str(), "account changed elsewhere");
    users.forget(user_id);
    let token = Receiving::new();
    if change.ends_sessions() {
        signals.effects.end_user_streams(user_id, &token);
    }
    // On PostgreSQL the versions live in the database, and the change moved them.
    if backend == Backend::Sqlite {
        signals.effects.invalidate_users(&[user_id], &token);
        if change == AccountChange::Deleted {
            // The account's subscriptions went with it: counts moved.
            signals.effects.invalidate_catalog(&token);
        }
    }
}
