//! Benchmark datasets, loaded in bulk before the server starts (`server bench-seed`). This
//! is a fixture load, like a data migration: it writes rows directly, in one transaction, and
//! sends no signals — no server is running and no cache exists yet.

use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::db::{self, Conn, Db, DbError};
use crate::names;
use crate::schema::{topic_subscribers, topics, users};

/// Every benchmark user has this password.
pub const PASSWORD: &str = "bench-password";
/// Benchmark users are called `bench1`, `bench2`, …
pub const USER_PREFIX: &str = "bench";
/// A staff account (same password) for deleting topics.
pub const STAFF: &str = "benchstaff";

/// Rows per INSERT statement: well under SQLite's limit of 32,766 bound parameters.
const CHUNK: usize = 5_000;
const SUBSCRIPTIONS_PER_USER: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub topics: usize,
    pub users: usize,
}

impl Profile {
    pub fn named(name: &str) -> Option<Profile> {
        match name {
            // The three seeded topics count towards the totals.
            "small" => Some(Profile {
                topics: 203,
                users: 1_000,
            }),
            "large" => Some(Profile {
                topics: 10_000,
                users: 100_000,
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Seeded {
    pub topics: i64,
    pub users: i64,
    pub subscriptions: i64,
    pub took: Duration,
}

/// Fills an empty (freshly migrated) database with `profile`'s dataset.
/// Why a seed was not done.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The dataset's accounts have a published password (and one is staff): never into a
    /// database that people use.
    #[error("the database already has {0} accounts: bench-seed only fills an empty database")]
    NotEmpty(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Refuses a database that has accounts: the dataset's passwords are published.
pub async fn ensure_no_accounts(db: &Db) -> Result<(), SeedError> {
    let accounts = db
        .run(|conn| Ok::<i64, DbError>(users::table.count().get_result(conn)?))
        .await?;
    if accounts > 0 {
        return Err(SeedError::NotEmpty(accounts));
    }
    Ok(())
}

/// Adds the dataset (tests seed it beside their own accounts; the command line checks
/// [`ensure_no_accounts`] first).
pub async fn seed(db: &Db, profile: Profile) -> Result<Seeded, SeedError> {
    let hash = tokio::task::spawn_blocking(|| password_auth::generate_hash(PASSWORD))
        .await
        .map_err(|e| DbError::Interact(e.to_string()))?;
    db.run(move |conn| -> Result<Seeded, DbError> {
        let started = Instant::now();
        db::write_transaction(conn, |conn| load(conn, profile, &hash))?;
        Ok(Seeded {
            topics: topics::table.count().get_result(conn)?,
            users: users::table.count().get_result(conn)?,
            subscriptions: topic_subscribers::table.count().get_result(conn)?,
            took: started.elapsed(),
        })
    })
    .await
    .map_err(SeedError::Db)
}

fn load(conn: &mut Conn, profile: Profile, hash: &str) -> Result<(), DbError> {
    let existing: i64 = topics::table.count().get_result(conn)?;
    let extra = profile
        .topics
        .saturating_sub(usize::try_from(existing).unwrap_or(0));
    let names: Vec<String> = (1..=extra).map(|n| format!("Topic {n:05}")).collect();
    for chunk in names.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|name| (topics::name.eq(name), topics::name_key.eq(names::key(name))))
            .collect();
        crate::on_each_backend!(conn, c => diesel::insert_into(topics::table)
            .values(&rows)
            .execute(c))?;
    }

    let usernames: Vec<String> = (1..=profile.users)
        .map(|n| format!("{USER_PREFIX}{n}"))
        .collect();
    for chunk in usernames.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|name| {
                (
                    users::username.eq(name),
                    users::username_key.eq(names::key(name)),
                    users::password_hash.eq(hash),
                    users::is_staff.eq(false),
                )
            })
            .collect();
        crate::on_each_backend!(conn, c => diesel::insert_into(users::table)
            .values(&rows)
            .execute(c))?;
    }

    diesel::insert_into(users::table)
        .values((
            users::username.eq(STAFF),
            users::username_key.eq(names::key(STAFF)),
            users::password_hash.eq(hash),
            users::is_staff.eq(true),
        ))
        .execute(conn)?;

    let topic_ids: Vec<i64> = topics::table
        .select(topics::id)
        .order(topics::id)
        .load(conn)?;
    let user_ids: Vec<i64> = users::table
        .filter(users::username.like(format!("{USER_PREFIX}%")))
        .filter(users::is_staff.eq(false))
        .select(users::id)
        .order(users::id)
        .load(conn)?;
    // Every user follows the first topic (Python: the benchmark of deleting a topic with all
    // users subscribed) and nine more, spread evenly over the rest.
    let rest = topic_ids.len() - 1;
    let pairs: Vec<(i64, i64)> = user_ids
        .iter()
        .enumerate()
        .flat_map(|(i, &user_id)| {
            let topic_ids = &topic_ids;
            (0..SUBSCRIPTIONS_PER_USER).map(move |k| {
                let index = if k == 0 {
                    0
                } else {
                    1 + (i * 7 + k * 13) % rest
                };
                (topic_ids[index], user_id)
            })
        })
        .collect();
    for chunk in pairs.chunks(CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&(topic_id, user_id)| {
                (
                    topic_subscribers::topic_id.eq(topic_id),
                    topic_subscribers::user_id.eq(user_id),
                )
            })
            .collect();
        crate::on_each_backend!(conn, c => diesel::insert_into(topic_subscribers::table)
            .values(&rows)
            .execute(c))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_small_profile_has_the_promised_size() {
        let (_dir, db) = crate::testing::test_db().await;
        assert!(ensure_no_accounts(&db).await.is_ok());
        let profile = Profile::named("small").expect("profile");
        let seeded = seed(&db, profile).await.expect("seed");
        assert_eq!(seeded.topics, 203);
        assert_eq!(seeded.users, 1_001, "1,000 users and one staff account");
        assert_eq!(seeded.subscriptions, 10_000);
        assert!(Profile::named("huge").is_none());
        assert!(
            matches!(
                ensure_no_accounts(&db).await,
                Err(SeedError::NotEmpty(1_001))
            ),
            "never into a database with accounts"
        );
    }
}
