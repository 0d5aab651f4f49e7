//! Accounts: what a person types to sign up or log in (`credentials`), the stored account and
//! its queries (`account`), passwords on their own threads (`passwords`, `hashing`), the
//! accounts kept in memory (`user_cache`) and the command-line changes (`admin`).

pub(crate) mod account;
pub mod admin;
pub(crate) mod change_log;
mod credentials;
mod hashing;
mod logout;
mod passwords;
#[cfg(test)]
mod tests;
pub(crate) mod user_cache;

pub use account::{authenticate, create_user, User};
pub(crate) use account::{find_by_username, is_staff_now, lock_for_change};
pub use change_log::RecordedChange;
pub use credentials::{Credentials, Password, Username};
pub use logout::logged_out;
pub use user_cache::{find_remembered, UserCache};

/// Password checks waiting for or running on the hashing threads now.
pub fn password_checks_pending() -> usize {
    hashing::queue().pending()
}
