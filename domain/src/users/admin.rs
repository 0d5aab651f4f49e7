//! Account administration from the command line: staff granted or taken, every session of a
//! user ended, an account deleted.
//!
//! Each change is one transaction that sends `account_changed`; its receiver writes the change
//! to `account_changes`, which every running server follows
//! (`crate::signals::account_changes`), so that the server forgets what it remembered of the
//! account and the user's next request sees the change.

use diesel::prelude::*;

use crate::error::DomainError;
use crate::ids::UserId;
use crate::schema::users;
use crate::services::Services;
use crate::signals::{self, AccountChange, AccountChanged};
use crate::subscriptions::clear_in;

/// Applies `change` to the account named `username` (compared as sign-in compares names);
/// returns the account's id.
pub async fn change_account(
    services: &Services,
    username: &str,
    change: AccountChange,
) -> Result<UserId, DomainError> {
    let signals = services.signals.clone();
    let username = username.to_owned();
    services
        .db
        .run(move |conn| {
            signals::write(conn, &signals, |tx| {
                let user = super::find_by_username(tx.conn(), &username)?.ok_or_else(|| {
                    DomainError::Invalid(format!("No account is named “{username}”."))
                })?;
                super::lock_for_change(tx.conn(), user.id)?;
                let row = users::table.find(user.id);
                match change {
                    AccountChange::StaffGranted | AccountChange::StaffRevoked => {
                        diesel::update(row)
                            .set(users::is_staff.eq(change == AccountChange::StaffGranted))
                            .execute(tx.conn())?;
                    }
                    AccountChange::SessionsEnded => {
                        diesel::update(row)
                            .set(users::session_epoch.eq(users::session_epoch + 1))
                            .execute(tx.conn())?;
                    }
                    AccountChange::Deleted => {
                        // Through `m2m_changed`, so counts and pages follow as for any
                        // unsubscribe.
                        clear_in(tx, user.id)?;
                        diesel::delete(row).execute(tx.conn())?;
                    }
                }
                tx.send(&AccountChanged {
                    user_id: user.id,
                    change,
                })?;
                Ok(user.id)
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::*;
    use crate::db::DbError;
    use crate::schema::topic_subscribers;
    use crate::testing::test_services;
    use crate::users::change_log::changes_after;

    async fn account(services: &Services, name: &str) -> UserId {
        crate::testing::account(&services.db, name, false).await.id
    }

    async fn count(services: &Services, sql: &'static str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        services
            .db
            .run(move |conn| {
                Ok::<_, DomainError>(
                    diesel::sql_query(sql)
                        .get_result::<Count>(conn)
                        .map_err(DbError::from)?
                        .n,
                )
            })
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn each_change_is_written_down_for_the_servers_with_its_account() {
        let (_place, services) = test_services().await;
        let grace = account(&services, "grace").await;
        for change in [
            AccountChange::StaffGranted,
            AccountChange::StaffRevoked,
            AccountChange::SessionsEnded,
        ] {
            assert_eq!(
                change_account(&services, "GRACE", change)
                    .await
                    .expect("changed"),
                grace
            );
        }
        let written = services
            .db
            .run(|conn| changes_after(conn, 0))
            .await
            .expect("read");
        let changes: Vec<_> = written.iter().map(|c| (c.user_id, c.change)).collect();
        assert_eq!(
            changes,
            vec![
                (grace, AccountChange::StaffGranted),
                (grace, AccountChange::StaffRevoked),
                (grace, AccountChange::SessionsEnded),
            ]
        );
        assert_eq!(
            count(&services, "SELECT session_epoch AS n FROM users").await,
            1
        );
    }

    #[tokio::test]
    async fn a_deleted_account_leaves_its_topics_through_the_signals() {
        let (_place, services) = test_services().await;
        let grace = account(&services, "grace").await;
        let topic = crate::ids::TopicId(1);
        crate::subscriptions::subscribe(&services, grace, topic)
            .await
            .expect("subscribed");
        let catalog_before = services.view_version(grace).shared;

        change_account(&services, "grace", AccountChange::Deleted)
            .await
            .expect("deleted");
        assert_eq!(count(&services, "SELECT COUNT(*) AS n FROM users").await, 0);
        let left = services
            .db
            .run(|conn| {
                topic_subscribers::table
                    .count()
                    .get_result::<i64>(conn)
                    .map_err(DbError::from)
            })
            .await
            .expect("count");
        assert_eq!(left, 0);
        assert_eq!(
            count(
                &services,
                "SELECT subscriber_count AS n FROM topics WHERE id = 1"
            )
            .await,
            0
        );
        assert!(
            services.view_version(grace).shared > catalog_before,
            "m2m_changed moved the catalog"
        );
    }

    #[tokio::test]
    async fn an_unknown_name_changes_nothing() {
        let (_place, services) = test_services().await;
        let refused = change_account(&services, "nobody", AccountChange::Deleted).await;
        assert!(
            matches!(&refused, Err(DomainError::Invalid(message)) if message.contains("nobody")),
            "{refused:?}"
        );
        assert_eq!(
            count(&services, "SELECT COUNT(*) AS n FROM account_changes").await,
            0
        );
    }
}
