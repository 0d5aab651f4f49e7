//! What a person types to sign up or log in, checked before anything is stored or hashed.

use crate::error::DomainError;
use crate::names;

const USERNAME_MAX: usize = 150;
const PASSWORD_MIN: usize = 8;
/// Hashing is deliberately slow; an unbounded password would make it a denial of service.
/// Counted in bytes (what hashing costs), the same at signup and at login.
pub(super) const PASSWORD_MAX_BYTES: usize = 1024;

/// A username that passed validation: 1–150 letters, digits or `@.+-_`, in NFKC form
/// (`crate::names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = &names::normalized(raw, "A username")?;
        let length = raw.chars().count();
        if length == 0 {
            return Err(DomainError::Invalid("Please choose a username.".into()));
        }
        if length > USERNAME_MAX {
            return Err(DomainError::Invalid(format!(
                "A username has at most {USERNAME_MAX} characters."
            )));
        }
        if !raw
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            return Err(DomainError::Invalid(
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
    pub(super) fn into_inner(self) -> String {
        self.0
    }

    pub fn parse(raw: &str, username: &Username) -> Result<Self, DomainError> {
        let length = raw.chars().count();
        if length < PASSWORD_MIN {
            return Err(DomainError::Invalid(format!(
                "A password needs at least {PASSWORD_MIN} characters."
            )));
        }
        check_hashable(raw)?;
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(DomainError::Invalid(
                "A password cannot be only digits: add letters or words.".into(),
            ));
        }
        if is_close(raw, username.as_str()) {
            return Err(DomainError::Invalid(
                "A password cannot be close to your username.".into(),
            ));
        }
        let checked: String = raw.chars().take(STRENGTH_CHECKED_CHARS).collect();
        if zxcvbn::zxcvbn(&checked, &[username.as_str()]).score() <= zxcvbn::Score::One {
            return Err(DomainError::Invalid(
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
fn check_hashable(raw: &str) -> Result<(), DomainError> {
    if raw.len() > PASSWORD_MAX_BYTES {
        return Err(DomainError::Invalid(format!(
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

/// What the login form submits.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// A password too long to hash is refused here, before the backend spends a hash on it.
    pub fn new(username: String, password: String) -> Result<Self, DomainError> {
        check_hashable(&password)?;
        Ok(Credentials { username, password })
    }

    pub(super) fn into_parts(self) -> (String, String) {
        (self.username, self.password)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
