//! `account_changes`: account changes written down for the running servers, which follow them
//! (`crate::signals::account_changes`) and forget what they remembered of the account.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::{Conn, DbError};
use crate::ids::UserId;
use crate::schema::account_changes;
use crate::signals::token::Receiving;
use crate::signals::AccountChange;

/// How long a written change is kept: far longer than any server takes to read it.
const KEPT: chrono::Duration = chrono::Duration::days(1);

/// Writes `change` down for the running servers (the `account_changed` receiver), and drops
/// changes every server has long read.
pub(crate) fn record_change(
    conn: &mut Conn,
    user_id: UserId,
    change: AccountChange,
    _: &Receiving,
) -> QueryResult<()> {
    if let Conn::Pg(pg) = conn {
        // Ids are drawn in commit order, so a reader following the last id skips nothing.
        diesel::sql_query("LOCK TABLE account_changes IN EXCLUSIVE MODE").execute(pg)?;
    }
    let now = Utc::now().naive_utc();
    diesel::delete(account_changes::table.filter(account_changes::created_at.lt(now - KEPT)))
        .execute(conn)?;
    diesel::insert_into(account_changes::table)
        .values((
            account_changes::user_id.eq(user_id),
            account_changes::change.eq(change.as_str()),
            account_changes::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A change read back by a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedChange {
    pub id: i64,
    pub user_id: UserId,
    pub change: AccountChange,
}

/// Where a server starts following: the last change written so far.
pub(crate) fn last_change(conn: &mut Conn) -> Result<i64, DbError> {
    let last: Option<i64> = account_changes::table
        .select(diesel::dsl::max(account_changes::id))
        .first(conn)?;
    Ok(last.unwrap_or(0))
}

/// The changes written after `after`, oldest first.
pub(crate) fn changes_after(conn: &mut Conn, after: i64) -> Result<Vec<RecordedChange>, DbError> {
    let rows: Vec<(i64, UserId, String, NaiveDateTime)> = account_changes::table
        .filter(account_changes::id.gt(after))
        .order(account_changes::id)
        .limit(1_000)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id, change, _)| RecordedChange {
            id,
            user_id,
            // Written by a newer version of the product: at least forget the account.
            change: AccountChange::parse(&change).unwrap_or(AccountChange::SessionsEnded),
        })
        .collect())
}
