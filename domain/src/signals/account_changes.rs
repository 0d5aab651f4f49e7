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
use crate::db::{Backend, Conn, Db, Target};
use crate::users::change_log::{changes_after, last_change, RecordedChange};
use crate::users::user_cache::UserCache;

/// How often a server reads the table.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How long the command waits after its commit: several reads of every server.
pub const HEARD_WITHIN: Duration = Duration::from_millis(500);

/// Starts following on a thread of its own, which ends once `signals` is dropped. It reads
/// on a connection of its own, outside the pool: it takes no connection a request waits for,
/// and its reads are not counted as the requests' SQL.
pub fn follow(db: &Db, signals: &Arc<Signals>, users: UserCache) -> std::io::Result<()> {
    let target = db.target().clone();
    let backend = db.backend();
    let signals = Arc::downgrade(signals);
    std::thread::Builder::new()
        .name("account-changes".into())
        .spawn(move || run(&target, backend, &signals, &users))
        .map(drop)
}

fn run(target: &Target, backend: Backend, signals: &Weak<Signals>, users: &UserCache) {
    let mut conn = None;
    let mut last = None;
    while signals.strong_count() > 0 {
        match read(target, &mut conn, last) {
            Ok((read_to, changes)) => {
                let Some(signals) = signals.upgrade() else {
                    return;
                };
                for change in &changes {
                    apply(&signals, users, backend, change);
                }
                last = Some(read_to);
            }
            Err(err) => {
                // Connected again on the next turn.
                conn = None;
                tracing::warn!(error = %err, "cannot read account changes");
            }
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// The changes after `last` (none, the first time: whatever was changed before this server
/// started, it never remembered) and the id read up to.
fn read(
    target: &Target,
    conn: &mut Option<Conn>,
    last: Option<i64>,
) -> Result<(i64, Vec<RecordedChange>), String> {
    if conn.is_none() {
        *conn = Some(target.connect().map_err(|e| e.to_string())?);
    }
    let Some(conn) = conn.as_mut() else {
        return Err("no connection".into());
    };
    match last {
        None => last_change(conn).map(|last| (last, Vec::new())),
        Some(after) => changes_after(conn, after)
            .map(|changes| (changes.last().map_or(after, |c| c.id), changes)),
    }
    .map_err(|e| e.to_string())
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
