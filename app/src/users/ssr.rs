//! Accounts on the server: validated names and passwords, queries, and the axum-login backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum_login::{AuthUser, AuthnBackend};
use diesel::prelude::*;

use super::CurrentUser;
use crate::db::{self, Conn, Db, DbError};
use crate::error::AppError;
use crate::ids::UserId;
use crate::names;
use crate::schema::users;
use crate::services::Services;
use crate::signals::{self, UserLoggedOut};

const USERNAME_MAX: usize = 150;
const PASSWORD_MIN: usize = 8;
/// Hashing is deliberately slow; an unbounded password would make it a denial of service.
/// Counted in bytes (what hashing costs), the same at signup and at login.
const PASSWORD_MAX_BYTES: usize = 1024;

/// A username that passed validation: 1–150 letters, digits or `@.+-_`, in NFKC form
/// (`crate::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let raw = &names::normalized(raw, "A username")?;
        let length = raw.chars().count();
        if length == 0 {
            return Err(AppError::Invalid("Please choose a username.".into()));
        }
        if length > USERNAME_MAX {
            return Err(AppError::Invalid(format!(
                "A username has at most {USERNAME_MAX} characters."
            )));
        }
        if !raw
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            return Err(AppError::Invalid(
                "A username may contain only letters, digits and @ . + - _".into(),
            ));
        }
        Ok(Username(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness compares: "Zoë" and "ZOË" are one account.
    pub fn key(&self) -> String {
        names::key(&self.0)
    }
}

/// A password its user may choose: 8 characters to 1,024 bytes, not only digits, not close
/// to the username, not common or easy to guess (zxcvbn's estimate, the username counted as
/// known to an attacker). Never printed.
pub struct Password(String);

/// At this similarity (0 to 1, Damerau–Levenshtein) a password is a variant of the username.
const CLOSE_TO_USERNAME: f64 = 0.7;
/// The estimate looks at this many characters: it grows fast with length, and a longer
/// password that starts this well is not weak.
const STRENGTH_CHECKED_CHARS: usize = 64;

impl Password {
    pub fn parse(raw: &str, username: &Username) -> Result<Self, AppError> {
        let length = raw.chars().count();
        if length < PASSWORD_MIN {
            return Err(AppError::Invalid(format!(
                "A password needs at least {PASSWORD_MIN} characters."
            )));
        }
        check_hashable(raw)?;
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(AppError::Invalid(
                "A password cannot be only digits: add letters or words.".into(),
            ));
        }
        if is_close(raw, username.as_str()) {
            return Err(AppError::Invalid(
                "A password cannot be close to your username.".into(),
            ));
        }
        let checked: String = raw.chars().take(STRENGTH_CHECKED_CHARS).collect();
        if zxcvbn::zxcvbn(&checked, &[username.as_str()]).score() <= zxcvbn::Score::One {
            return Err(AppError::Invalid(
                "This password is too common or too easy to guess. A few unrelated words make \
                 a good one."
                    .into(),
            ));
        }
        Ok(Password(raw.to_owned()))
    }
}

fn is_close(password: &str, username: &str) -> bool {
    let (password, username) = (password.to_lowercase(), username.to_lowercase());
    let contains = username.chars().count() >= 3
        && (password.contains(&username) || username.contains(&password));
    contains || strsim::normalized_damerau_levenshtein(&password, &username) >= CLOSE_TO_USERNAME
}

/// Refuses a password too long to hash, before any hashing is done.
fn check_hashable(raw: &str) -> Result<(), AppError> {
    if raw.len() > PASSWORD_MAX_BYTES {
        return Err(AppError::Invalid(format!(
            "A password has at most {PASSWORD_MAX_BYTES} bytes (letters outside English \
             take two to four)."
        )));
    }
    Ok(())
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// An account row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: UserId,
    username: String,
    password_hash: String,
    is_staff: bool,
    session_epoch: i64,
}

/// A stored account, as the session layer sees it.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    password_hash: String,
    pub is_staff: bool,
    /// What the user's sessions are bound to (see [`AuthUser::session_auth_hash`]).
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

impl AuthUser for User {
    type Id = UserId;

    fn id(&self) -> UserId {
        self.id
    }

    /// Sessions are bound to the password hash and the session epoch: changing the password,
    /// or ending the user's sessions (`server end-sessions`), ends every session made before.
    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

impl From<&User> for CurrentUser {
    fn from(user: &User) -> Self {
        CurrentUser {
            id: user.id,
            username: user.username.clone(),
            is_staff: user.is_staff,
        }
    }
}

/// Creates an account. A taken name (in any letter case) is a [`AppError::Conflict`].
pub async fn create_user(
    db: &Db,
    username: Username,
    password: Password,
    is_staff: bool,
) -> Result<User, AppError> {
    let hash = hash_password(password).await?;
    db.run(move |conn| insert_user(conn, &username, &hash, is_staff))
        .await
}

fn insert_user(
    conn: &mut Conn,
    username: &Username,
    hash: &str,
    is_staff: bool,
) -> Result<User, AppError> {
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
            AppError::Conflict(format!(
                "The username “{}” is taken. Please choose another.",
                username.as_str()
            ))
        } else {
            AppError::from(DbError::from(err))
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

fn find_by_id(conn: &mut Conn, id: UserId) -> QueryResult<Option<User>> {
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

async fn hash_password(password: Password) -> Result<String, AppError> {
    super::hashing::queue()
        .run(move || password_auth::generate_hash(password.0))
        .await
}

/// Checks a password on a hashing thread. When the user does not exist, a dummy hash is still
/// checked, so the response time does not tell which usernames exist.
async fn verify_password(password: String, hash: Option<String>) -> Result<bool, AppError> {
    super::hashing::queue()
        .run(move || match hash {
            Some(hash) => password_auth::verify_password(password, &hash).is_ok(),
            None => {
                let _ = password_auth::verify_password(password, dummy_hash());
                false
            }
        })
        .await
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password_auth::generate_hash("not the password of anyone"))
}

/// Tells the receivers that `user_id` logged out (their cached list goes).
pub async fn logged_out(services: &Services, user_id: UserId) -> Result<(), AppError> {
    let signals = services.signals.clone();
    services
        .db
        .run(move |conn| signals::read(conn, &signals, |tx| tx.send(&UserLoggedOut { user_id })))
        .await
}

/// What the login form submits.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// A password too long to hash is refused here, before the backend spends a hash on it.
    pub fn new(username: String, password: String) -> Result<Self, AppError> {
        check_hashable(&password)?;
        Ok(Credentials { username, password })
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How long a looked-up user is reused. Changes made elsewhere reach every server at once
/// (`crate::signals::account_changes`); the bound is for a server that missed them.
const USER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Users looked up by the session layer, kept in memory: every request with a session asks
/// for its user. One per server, shared by the axum-login backend and the follower of account
/// changes, which drops a changed user.
#[derive(Clone)]
pub struct UserCache {
    users: mini_moka::sync::Cache<UserId, User>,
    /// Moved by every [`UserCache::forget`]: a lookup that read the database before a forget
    /// may hold the row the change replaced, so its fill is refused.
    forgets: Arc<AtomicU64>,
}

impl Default for UserCache {
    fn default() -> Self {
        UserCache {
            users: mini_moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(USER_CACHE_TTL)
                .build(),
            forgets: Arc::default(),
        }
    }
}

impl UserCache {
    /// Drops `user_id`, so that the next request reads the account again.
    pub fn forget(&self, user_id: UserId) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
        self.users.invalidate(&user_id);
    }

    fn get(&self, user_id: UserId) -> Option<User> {
        self.users.get(&user_id)
    }

    /// Where a lookup starts: pass it to [`UserCache::fill`] with what it read.
    fn before_read(&self) -> u64 {
        self.forgets.load(Ordering::SeqCst)
    }

    fn fill(&self, before_read: u64, user: User) {
        if self.forgets.load(Ordering::SeqCst) == before_read {
            self.users.insert(user.id, user);
        }
    }
}

/// The axum-login backend: looks users up in our database, through the server's
/// [`UserCache`].
#[derive(Clone)]
pub struct Backend {
    db: Db,
    users: UserCache,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("cached_users", &self.users.users.entry_count())
            .finish_non_exhaustive()
    }
}

impl Backend {
    pub fn new(db: Db, users: UserCache) -> Self {
        Backend { db, users }
    }
}

pub type AuthSession = axum_login::AuthSession<Backend>;

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = AppError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, AppError> {
        let name = creds.username.clone();
        let user = self
            .db
            .run(move |conn| find_by_username(conn, &name).map_err(DbError::from))
            .await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let valid = verify_password(creds.password, hash).await?;
        Ok(user.filter(|_| valid))
    }

    async fn get_user(&self, user_id: &axum_login::UserId<Self>) -> Result<Option<User>, AppError> {
        let id = *user_id;
        if let Some(user) = self.users.get(id) {
            return Ok(Some(user));
        }
        let before_read = self.users.before_read();
        let user = self
            .db
            .run(move |conn| find_by_id(conn, id).map_err(DbError::from))
            .await?;
        if let Some(user) = &user {
            self.users.fill(before_read, user.clone());
        }
        Ok(user)
    }
}

pub mod admin;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b+c-d_e@f").is_ok());
        assert!(Username::parse("Zoë").is_ok());
        assert!(Username::parse(&"x".repeat(150)).is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse(&"x".repeat(151)).is_err());
        assert!(Username::parse("two words").is_err());
        assert!(Username::parse("semi;colon").is_err());
    }

    #[test]
    fn passwords_need_eight_characters() {
        let alice = Username::parse("alice").expect("name");
        assert!(Password::parse("kq8#Lm2", &alice).is_err());
        assert!(Password::parse("kq8#Lm2x", &alice).is_ok());
        assert!(Password::parse(&"p".repeat(PASSWORD_MAX_BYTES + 1), &alice).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret walrus ledger", &alice).ok()),
            "Some(Password(..))"
        );
    }

    fn stored(id: i64, is_staff: bool) -> User {
        User::from(UserRow {
            id: UserId(id),
            username: format!("user{id}"),
            password_hash: "hash".into(),
            is_staff,
            session_epoch: 0,
        })
    }

    #[test]
    fn a_lookup_that_read_before_a_forget_is_not_kept() {
        let cache = UserCache::default();
        // A lookup reads the row (staff), then the account changes and is forgotten, then
        // the lookup's fill arrives: keeping it would bring the old row back for a minute.
        let before_read = cache.before_read();
        cache.forget(UserId(1));
        cache.fill(before_read, stored(1, true));
        assert!(cache.get(UserId(1)).is_none());

        let before_read = cache.before_read();
        cache.fill(before_read, stored(1, false));
        assert!(cache.get(UserId(1)).is_some_and(|user| !user.is_staff));
        cache.forget(UserId(1));
        assert!(cache.get(UserId(1)).is_none());
    }

    #[test]
    fn sessions_are_bound_to_the_epoch_beside_the_password_hash() {
        let first = stored(1, false);
        assert_eq!(
            first.session_auth_hash(),
            b"hash",
            "epoch 0 keeps older sessions"
        );
        let ended = User::from(UserRow {
            id: UserId(1),
            username: "user1".into(),
            password_hash: "hash".into(),
            is_staff: false,
            session_epoch: 1,
        });
        assert_ne!(first.session_auth_hash(), ended.session_auth_hash());
    }

    fn credentials(username: &str, password: &str) -> Credentials {
        Credentials::new(username.into(), password.into()).expect("short enough")
    }

    #[test]
    fn digits_look_alikes_of_the_username_and_common_passwords_are_refused_with_a_reason() {
        let alice = Username::parse("Alice.Smith").expect("name");
        let reason = |raw: &str| match Password::parse(raw, &alice) {
            Err(AppError::Invalid(reason)) => reason,
            other => panic!("{raw} should be refused, got {other:?}"),
        };
        assert!(reason("12345678901").contains("only digits"));
        assert!(reason("alice.smith").contains("close to your username"));
        assert!(reason("ALICE.SMITH!").contains("close to your username"));
        assert!(reason("xx-alice.smith-xx").contains("close to your username"));
        assert!(reason("Alice.Smyth").contains("close to your username"));
        for common in [
            "password",
            "password1",
            "qwertyuiop",
            "iloveyou",
            "letmein123",
        ] {
            assert!(reason(common).contains("too common"), "{common}");
        }
        for fine in [
            "correct horse battery",
            "long enough password",
            "Tr0ub4dor&3x!",
            "walrus ledger quince",
        ] {
            assert!(Password::parse(fine, &alice).is_ok(), "{fine}");
        }
    }

    #[test]
    fn passwords_are_bounded_in_bytes_at_signup_and_login_alike() {
        let alice = Username::parse("alice").expect("name");
        // Exactly the limit, and no pattern a guesser would try first.
        let mut seed = 12_345_u32;
        let ascii: String = (0..PASSWORD_MAX_BYTES)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(seed >> 16) as usize % 36])
            })
            .collect();
        assert!(Password::parse(&ascii, &alice).is_ok());
        assert!(Credentials::new("a".into(), ascii).is_ok());
        // 513 two-byte letters: fewer than 1,024 characters, but 1,026 bytes.
        let wide = "é".repeat(513);
        assert!(Password::parse(&wide, &alice).is_err());
        assert!(matches!(
            Credentials::new("a".into(), wide),
            Err(AppError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn accounts_are_created_once_and_authenticate() {
        let (_place, db) = crate::testing::test_db().await;
        let name = Username::parse("Alice").expect("valid");
        let pass = Password::parse("correct horse", &name).expect("valid");
        let user = create_user(&db, name, pass, false).await.expect("created");
        assert!(!user.is_staff);

        let again = create_user(
            &db,
            Username::parse("alice").expect("valid"),
            Password::parse(
                "another walrus ledger",
                &Username::parse("alice").expect("valid"),
            )
            .expect("valid"),
            false,
        )
        .await;
        assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");

        let backend = Backend::new(db, UserCache::default());
        let ok = backend
            .authenticate(credentials("Alice", "correct horse"))
            .await
            .expect("no error");
        assert_eq!(ok.map(|u| u.id), Some(user.id));
        let wrong = backend
            .authenticate(credentials("Alice", "wrong horse"))
            .await
            .expect("no error");
        assert!(wrong.is_none());
        let nobody = backend
            .authenticate(credentials("nobody", "correct horse"))
            .await
            .expect("no error");
        assert!(nobody.is_none());
    }
}
