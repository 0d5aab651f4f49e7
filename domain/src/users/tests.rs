//! Accounts: validation, creation, lookups and the user cache.

use super::account::UserRow;
use super::credentials::PASSWORD_MAX_BYTES;
use super::*;
use crate::error::DomainError;
use crate::ids::UserId;

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
        first.session_binding(),
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
    assert_ne!(first.session_binding(), ended.session_binding());
}

fn credentials(username: &str, password: &str) -> Credentials {
    Credentials::new(username.into(), password.into()).expect("short enough")
}

#[test]
fn digits_look_alikes_of_the_username_and_common_passwords_are_refused_with_a_reason() {
    let alice = Username::parse("Alice.Smith").expect("name");
    let reason = |raw: &str| match Password::parse(raw, &alice) {
        Err(DomainError::Invalid(reason)) => reason,
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
        Err(DomainError::Invalid(_))
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
    assert!(matches!(again, Err(DomainError::Conflict(_))), "{again:?}");

    let ok = authenticate(&db, credentials("Alice", "correct horse"))
        .await
        .expect("no error");
    assert_eq!(ok.map(|u| u.id), Some(user.id));
    let wrong = authenticate(&db, credentials("Alice", "wrong horse"))
        .await
        .expect("no error");
    assert!(wrong.is_none());
    let nobody = authenticate(&db, credentials("nobody", "correct horse"))
        .await
        .expect("no error");
    assert!(nobody.is_none());
}

/// When the in-memory copies expire, every open page of a user asks for the account at once:
/// those lookups share one read. A lookup after a forget does not take a read begun before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_of_one_user_at_once_share_one_read() {
    let (_place, db) = crate::testing::test_db().await;
    let name = Username::parse("alice").expect("valid");
    let pass = Password::parse("correct horse", &name).expect("valid");
    let alice = create_user(&db, name, pass, false).await.expect("created");
    let cache = UserCache::default();

    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (db, cache) = (db.clone(), cache.clone());
        lookups.spawn(async move { find_remembered(&db, &cache, alice.id).await });
    }
    while let Some(found) = lookups.join_next().await {
        let found = found.expect("task").expect("found");
        assert_eq!(found.map(|user| user.id), Some(alice.id));
    }
    assert_eq!(cache.reads(), 1, "32 lookups, one read");

    cache.forget(alice.id);
    let again = find_remembered(&db, &cache, alice.id).await.expect("found");
    assert_eq!(again.map(|user| user.id), Some(alice.id));
    assert_eq!(cache.reads(), 2, "a forgotten user is read again");
}
