//! A stored account and the queries on `users`.

use diesel::prelude::*;

use crate::db::{self, Conn, Db, DbError};
use crate::error::DomainError;
use crate::ids::UserId;
use crate::names;
use crate::schema::users;

use super::credentials::{Credentials, Password, Username};
use super::passwords::{hash_password, verify_password};

/// An account row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(super) struct UserRow {
    pub(super) id: UserId,
    pub(super) username: String,
    pub(super) password_hash: String,
    pub(super) is_staff: bool,
    pub(super) session_epoch: i64,
}

/// A stored account, as the session layer sees it.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    password_hash: String,
    pub is_staff: bool,
    /// What the user's sessions are bound to (see [`User::session_binding`]).
    auth_hash: Vec<u8>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        // Epoch 0 binds to the password hash alone, as sessions made before epochs did.
        let auth_hash = match row.session_epoch {
            0 => row.password_hash.clone().into_bytes(),
            epoch => format!("{}#{epoch}", row.password_hash).into_bytes(),
        };
        User {
            id: row.id,
            username: row.username,
            password_hash: row.password_hash,
            is_staff: row.is_staff,
            auth_hash,
        }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_staff", &self.is_staff)
            .finish_non_exhaustive()
    }
}

/// Creates an account. A taken name (in any letter case) is a [`DomainError::Conflict`].
pub async fn create_user(
    db: &Db,
    username: Username,
    password: Password,
    is_staff: bool,
) -> Result<User, DomainError> {
    let hash = hash_password(password).await?;
    db.run(move |conn| insert_user(conn, &username, &hash, is_staff))
        .await
}

fn insert_user(
    conn: &mut Conn,
    username: &Username,
    hash: &str,
    is_staff: bool,
) -> Result<User, DomainError> {
    // Diesel's shared connection type cannot return a `Selectable` row from an insert.
    crate::on_each_backend!(conn, c => diesel::insert_into(users::table)
        .values((
            users::username.eq(username.as_str()),
            users::username_key.eq(username.key()),
            users::password_hash.eq(hash),
            users::is_staff.eq(is_staff),
        ))
        .returning(UserRow::as_returning())
        .get_result(c))
    .map(User::from)
    .map_err(|err| {
        if db::is_unique_violation(&err) {
            DomainError::Conflict(format!(
                "The username “{}” is taken. Please choose another.",
                username.as_str()
            ))
        } else {
            DomainError::from(DbError::from(err))
        }
    })
}

/// By key, as uniqueness compares; an account whose key could not be filled (see
/// `db::fill_missing_name_keys`) is still found by its exact name.
pub(crate) fn find_by_username(conn: &mut Conn, name: &str) -> QueryResult<Option<User>> {
    // No account has one (sign-up refuses them), and PostgreSQL refuses NUL in any text.
    if name.chars().any(char::is_control) {
        return Ok(None);
    }
    users::table
        .filter(
            users::username_key
                .eq(names::key(name))
                .or(users::username_key.is_null().and(users::username.eq(name))),
        )
        .select(UserRow::as_select())
        .first(conn)
        .optional()
        .map(|row| row.map(User::from))
}

/// Holds the user's row until the transaction ends, so that one user's subscription changes
/// follow one another on PostgreSQL (a "clear all" cannot miss a subscription added while
/// it runs). Nothing to do on SQLite, whose write transaction holds the one write lock.
pub(crate) fn lock_for_change(conn: &mut Conn, id: UserId) -> QueryResult<()> {
    if let Conn::Pg(pg) = conn {
        users::table
            .find(id)
            .select(users::id)
            .for_no_key_update()
            .load::<UserId>(pg)?;
    }
    Ok(())
}

pub(super) fn find_by_id(conn: &mut Conn, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
        .map(|row| row.map(User::from))
}

/// Whether the account is staff as the database says now, inside the caller's transaction:
/// rights are checked here, never against a copy kept in memory, so taking staff away
/// (`server unmake-staff`) refuses the next staff action on every server.
pub(crate) fn is_staff_now(conn: &mut Conn, id: UserId) -> QueryResult<bool> {
    users::table
        .find(id)
        .select(users::is_staff)
        .first(conn)
        .optional()
        .map(|staff| staff.unwrap_or(false))
}

impl User {
    /// What the user's sessions are bound to: the password hash and the session epoch.
    /// Changing the password, or ending the user's sessions (`server end-sessions`), changes
    /// it, which ends every session made before.
    pub fn session_binding(&self) -> &[u8] {
        &self.auth_hash
    }
}

/// The account whose name and password these are, or `None`. A password is checked even
/// when no such user exists, so the time taken does not tell which usernames exist.
pub async fn authenticate(db: &Db, creds: Credentials) -> Result<Option<User>, DomainError> {
    let (name, password) = creds.into_parts();
    let lookup = name.clone();
    let user = db
        .run(move |conn| find_by_username(conn, &lookup).map_err(DbError::from))
        .await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let valid = verify_password(password, hash).await?;
    Ok(user.filter(|_| valid))
}
