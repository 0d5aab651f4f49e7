//! Hashing and checking passwords on the hashing threads (`super::hashing`).

use std::sync::OnceLock;

use super::credentials::Password;
use crate::error::DomainError;

pub(super) async fn hash_password(password: Password) -> Result<String, DomainError> {
    super::hashing::queue()
        .run(move || password_auth::generate_hash(password.into_inner()))
        .await
}

/// Checks a password on a hashing thread. When the user does not exist, a dummy hash is still
/// checked, so the response time does not tell which usernames exist.
pub(super) async fn verify_password(
    password: String,
    hash: Option<String>,
) -> Result<bool, DomainError> {
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
