//! The pool, migrations and transactions against real databases of both backends.

use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

use std::sync::atomic::Ordering;

use super::pool::POOL_SIZE;
use super::*;

/// This process's SQLite writers take turns before SQLite's lock: with SQLite's own
/// waiting turned off (a busy timeout of 0), writers running at once on every pooled
/// connection all commit, where SQLite alone would refuse all but one ("database is
/// locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_writers_of_one_process_take_turns_instead_of_meeting_the_lock() {
    let (_place, db) = crate::testing::test_db().await;
    if db.backend() != Backend::Sqlite {
        return;
    }
    let writers: Vec<_> = (0..POOL_SIZE * 4)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(move |conn| {
                    use diesel::connection::SimpleConnection;
                    if let Conn::Sqlite(sqlite) = conn {
                        sqlite.batch_execute("PRAGMA busy_timeout = 0")?;
                    }
                    let written = write_transaction(conn, |conn| {
                        diesel::sql_query(format!(
                            "INSERT INTO topics (name, name_key) VALUES ('t{n}', 't{n}')"
                        ))
                        .execute(conn)?;
                        // Long enough that the writers overlap.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        Ok::<_, diesel::result::Error>(())
                    });
                    if let Conn::Sqlite(sqlite) = conn {
                        sqlite.batch_execute("PRAGMA busy_timeout = 5000")?;
                    }
                    written.map_err(DbError::from)
                })
                .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("task").expect("every writer commits");
    }
    let n = db
        .run(|conn| {
            diesel::sql_query("SELECT count(*) AS n FROM topics WHERE name LIKE 't%'")
                .get_result::<Count>(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("count")
        .n;
    assert_eq!(n, i64::from(POOL_SIZE * 4));
}

/// What a commit does after it (tell open pages, with counts read inside it) happens
/// before the next writer of this process commits: the next one waits for its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_sqlite_writer_commits_only_after_the_previous_ones_after_commit_work() {
    let (_place, db) = crate::testing::test_db().await;
    if db.backend() != Backend::Sqlite {
        return;
    }
    let insert = |conn: &mut Conn, name: &str| {
        diesel::sql_query(format!(
            "INSERT INTO topics (name, name_key) VALUES ('{name}', '{name}')"
        ))
        .execute(conn)
    };
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let next_writer = db.clone();
    let first = db.clone();
    let overtaken = first
        .run(move |conn| {
            write_transaction_then(
                conn,
                |conn| insert(conn, "first").map_err(DbError::from),
                move |_| {
                    // Committed; while this work runs, another writer tries its turn.
                    let next = tokio::runtime::Handle::current();
                    next.spawn(async move {
                        let _ = started_tx.send(());
                        let written = next_writer
                            .run(move |conn| {
                                write_transaction(conn, |conn| {
                                    insert(conn, "second").map_err(DbError::from)
                                })
                            })
                            .await;
                        assert!(written.is_ok(), "the second writer commits");
                        let _ = done_tx.send(());
                    });
                    let _ = started.recv();
                    // Ample time for the second write, were it not waiting for this.
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    done.try_recv().is_ok()
                },
            )
        })
        .await
        .expect("first writer");
    assert!(
        !overtaken,
        "a write committed before the previous one's work ran"
    );
}

#[tokio::test]
async fn topic_reads_are_told_apart_from_writes() {
    let (_place, db) = crate::testing::test_db().await;
    let counts = |db: &Db| {
        let stats = db.sql_stats();
        (
            stats.statements.load(Ordering::Relaxed),
            stats.topic_statements.load(Ordering::Relaxed),
        )
    };
    let read = |db: Db| async move {
        db.run(|conn| topic_names(conn).map_err(DbError::from))
            .await
            .expect("read")
    };
    let (all, topic) = counts(&db);
    read(db.clone()).await;
    assert_eq!(counts(&db), (all + 1, topic + 1), "a read of topics is one");

    let (all, topic) = counts(&db);
    db.run(|conn| {
        write_transaction(conn, |conn| {
            diesel::sql_query("UPDATE topics SET name = name WHERE id = 1").execute(conn)
        })
        .map_err(DbError::from)
    })
    .await
    .expect("write");
    let (all_after, topic_after) = counts(&db);
    assert!(all_after >= all + 3, "begin, update, commit are counted");
    assert_eq!(
        topic_after, topic,
        "a write's statements are not read as topic reads"
    );

    // A failed write leaves its thread as it found it: the read after it, on the same
    // thread, is looked at again.
    let (_, topic) = counts(&db);
    db.run(|conn| {
        let failed = write_transaction(conn, |conn| {
            diesel::sql_query("UPDATE no_such_table SET x = 1").execute(conn)
        });
        assert!(failed.is_err());
        topic_names(conn).map_err(DbError::from)
    })
    .await
    .expect("read after a failed write");
    assert_eq!(
        counts(&db).1,
        topic + 1,
        "reads after writes are looked at again"
    );
}

#[tokio::test]
async fn every_migration_reverts_and_reapplies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let db = Db::open(&url).await.expect("open and migrate");
    let names: Vec<String> = db
        .run(|conn| {
            let seeded = topic_names(conn)?;
            let Conn::Sqlite(sqlite) = conn else {
                unreachable!("a sqlite:// URL opens SQLite")
            };
            sqlite
                .revert_all_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| DbError::Interact(e.to_string()))?;
            let left: i64 = diesel::sql_query(
                "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('users', 'topics', 'topic_subscribers', 'topic_activities', 'sessions')",
            )
            .get_result::<Count>(conn)?
            .n;
            assert_eq!(left, 0, "every table is dropped by the down migrations");
            let Conn::Sqlite(sqlite) = conn else {
                unreachable!("a sqlite:// URL opens SQLite")
            };
            sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| DbError::Interact(e.to_string()))?;
            let again = topic_names(conn)?;
            assert_eq!(seeded, again);
            Ok::<_, DbError>(again)
        })
        .await
        .expect("migrations round trip");
    assert_eq!(names, vec!["DevOps", "Django", "Python"]);
}

#[tokio::test]
async fn connections_enforce_foreign_keys_and_use_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let db = Db::open(&url).await.expect("open");
    let (fk, mode, timeout) = db
        .run(|conn| {
            let fk = diesel::sql_query("PRAGMA foreign_keys").get_result::<Fk>(conn)?;
            let mode = diesel::sql_query("PRAGMA journal_mode").get_result::<Mode>(conn)?;
            let timeout = diesel::sql_query("PRAGMA busy_timeout").get_result::<Timeout>(conn)?;
            Ok::<_, DbError>((fk.foreign_keys, mode.journal_mode, timeout.timeout))
        })
        .await
        .expect("pragmas");
    assert_eq!(fk, 1);
    assert_eq!(mode, "wal");
    assert!(timeout > 0);
}

#[tokio::test]
async fn an_unopenable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let url = format!("sqlite://{}/app.db", file.display());
    let err = Db::open(&url).await.expect_err("a file is not a folder");
    assert!(
        err.to_string()
            .contains("cannot create the database folder"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_started_together_on_an_empty_postgres_database_migrate_it_once() {
    let place = scratch::ScratchDatabase::create();
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = place.url().to_owned();
            tokio::spawn(async move { Db::open(&url).await })
        })
        .collect();
    let mut dbs = Vec::new();
    for open in opening {
        dbs.push(open.await.expect("task").expect("every instance starts"));
    }
    let (migrations, topics) = dbs[0]
        .run(|conn| {
            let migrations =
                diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
                    .get_result::<Count>(conn)?
                    .n;
            Ok::<_, DbError>((migrations, topic_names(conn)?))
        })
        .await
        .expect("read");
    let embedded =
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
            .map(|m| m.len())
            .unwrap_or_default();
    assert_eq!(usize::try_from(migrations).ok(), Some(embedded));
    assert_eq!(topics, vec!["DevOps", "Django", "Python"], "seeded once");
}

#[tokio::test]
async fn every_postgres_migration_reverts_and_reapplies() {
    let place = scratch::ScratchDatabase::create();
    let db = Db::open(place.url()).await.expect("open and migrate");
    let names = db
        .run(|conn| {
            let seeded = topic_names(conn)?;
            let Conn::Pg(pg) = conn else {
                unreachable!("a postgres:// URL opens PostgreSQL")
            };
            pg.revert_all_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| DbError::Interact(e.to_string()))?;
            let left = diesel::sql_query(
                "SELECT count(*) AS n FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name IN \
                 ('users', 'topics', 'topic_subscribers', 'topic_activities', 'sessions')",
            )
            .get_result::<Count>(pg)?
            .n;
            assert_eq!(left, 0, "every table is dropped by the down migrations");
            pg.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| DbError::Interact(e.to_string()))?;
            assert_eq!(topic_names(conn)?, seeded);
            Ok::<_, DbError>(seeded)
        })
        .await
        .expect("migrations round trip");
    assert_eq!(names, vec!["DevOps", "Django", "Python"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_the_server_terminated_are_replaced_after_one_failure_each() {
    let place = scratch::ScratchDatabase::create();
    let db = Db::open(place.url()).await.expect("open");
    let ask = |db: Db| async move {
        db.run(|conn| {
            diesel::sql_query("SELECT 1::BIGINT AS n")
                .get_result::<Count>(conn)
                .map_err(DbError::from)
        })
        .await
    };
    // Several connections open at once, then returned to the pool.
    let opening: Vec<_> = (0..4).map(|_| tokio::spawn(ask(db.clone()))).collect();
    for open in opening {
        open.await.expect("task").expect("query");
    }
    let mut admin = Target::parse(place.url())
        .expect("url")
        .connect()
        .expect("admin connection");
    let terminated = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Count>(&mut admin)
    .expect("terminate")
    .n;
    assert!(terminated >= 1, "the pool's connections were there to end");
    let mut failures = 0;
    for _ in 0..POOL_SIZE + 3 {
        if ask(db.clone()).await.is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= usize::try_from(terminated).unwrap_or(usize::MAX),
        "each lost connection fails at most one request: {failures} of {terminated}"
    );
    ask(db.clone()).await.expect("served by a new connection");
}

fn topic_names(conn: &mut Conn) -> QueryResult<Vec<String>> {
    use crate::schema::topics::dsl::*;
    topics.select(name).order(name.asc()).load(conn)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
#[derive(QueryableByName)]
struct Fk {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    foreign_keys: i64,
}
#[derive(QueryableByName)]
struct Mode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}
#[derive(QueryableByName)]
struct Timeout {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    timeout: i64,
}
