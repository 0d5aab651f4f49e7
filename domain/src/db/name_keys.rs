//! Comparison keys for names stored before keys existed.

use diesel::prelude::*;

use super::backend::Conn;
use super::errors::is_unique_violation;

/// Computes the comparison keys (`crate::names::key`) of rows written before keys existed
/// (SQLite migration 000007, and the seeded topics): a key is made in Rust, so SQL alone
/// cannot fill it. Two old names with the same key keep the first; the other stays without
/// a key (findable by its exact name) and is logged.
pub(super) fn fill_missing_name_keys(conn: &mut Conn) -> QueryResult<usize> {
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
