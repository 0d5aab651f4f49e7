//! Reaching into the server's database from beside it, as an operator (or a crash) might.

use std::time::Duration;

use super::Database;

/// Holds the database's write lock from another connection (as another process busy writing
/// would) for `duration`; returns once the lock is held. Join the handle to wait for release.
/// On PostgreSQL: every table locked against writers, readers still let through.
pub fn hold_write_lock(db: &Database, duration: Duration) -> std::thread::JoinHandle<()> {
    use diesel::connection::SimpleConnection;
    let target = domain::db::Target::parse(&db.url()).expect("database URL");
    let take = if db.is_postgres() {
        "BEGIN; LOCK TABLE users, topics, topic_subscribers, topic_activities, sessions \
         IN EXCLUSIVE MODE;"
    } else {
        "BEGIN IMMEDIATE;"
    };
    let (held, acquired) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut conn = target.connect().expect("open the database");
        conn.batch_execute(take).expect("take the write lock");
        let _ = held.send(());
        std::thread::sleep(duration);
        conn.batch_execute("COMMIT;")
            .expect("release the write lock");
    });
    acquired
        .recv_timeout(Duration::from_secs(10))
        .expect("the write lock was taken");
    holder
}

/// Runs SQL statements on a server's database, as an operator (or a crash) might.
pub async fn execute_sql(db: &Database, sql: impl Into<String>) {
    use diesel::connection::SimpleConnection;
    let sql = sql.into();
    db.open()
        .await
        .run(move |conn| {
            conn.batch_execute(&sql)
                .map_err(domain::error::DomainError::from)
        })
        .await
        .expect("execute SQL");
}

/// The number `sql` selects as a column named `n`.
pub async fn count_sql(db: &Database, sql: impl Into<String>) -> i64 {
    Reader::open(db).await.count(sql).await
}

/// The server's database opened once, for a test that reads it many times.
pub struct Reader(domain::db::Db);

impl Reader {
    pub async fn open(db: &Database) -> Reader {
        Reader(db.open().await)
    }

    /// The number `sql` selects as a column named `n`.
    pub async fn count(&self, sql: impl Into<String>) -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = sql.into();
        self.0
            .run(move |conn| {
                diesel::sql_query(sql)
                    .get_result::<Count>(conn)
                    .map_err(domain::error::DomainError::from)
            })
            .await
            .expect("count")
            .n
    }
}
