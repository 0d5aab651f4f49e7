//! Bad days: the server process dies without any shutdown, the disk fills up, the database
//! turns read-only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{
    count_sql, execute_sql, expect_redirect, member, settings, topic_names, Database, TestClient,
    TestServer,
};

/// What one person's writes came to, as far as their answers tell.
#[derive(Default)]
struct Outcome {
    /// Topics whose creation was answered with its redirect.
    created: Vec<String>,
    /// Per seeded topic: the subscription state of the last acknowledged toggle, and whether a
    /// later toggle was sent without an answer (it may or may not have committed).
    toggled: Vec<(i64, Option<bool>, bool)>,
}

/// POST without the support client's `expect`: a killed server is an answer here.
async fn post(client: &TestClient, path: &str, form: &[(&str, &str)]) -> Option<StatusCode> {
    client
        .to(reqwest::Method::POST, path)
        .form(form)
        .send()
        .await
        .ok()
        .map(|response| response.status())
}

/// `kill -9` in the middle of a write load: every write that got its redirect is in the
/// database after the restart, with its activity row and its counts (SQLite: the WAL holds every
/// committed transaction; nothing is acknowledged before its commit).
#[tokio::test]
async fn a_killed_server_loses_no_acknowledged_write() {
    const PEOPLE: usize = 6;
    let server = TestServer::start();
    let db = server.db.clone();
    let seeded: Vec<i64> = {
        let probe = member(&server, "probe").await;
        let mut ids = Vec::new();
        for name in ["Python", "Django", "DevOps"] {
            ids.push(probe.topic_id(name).await);
        }
        ids
    };
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut people = Vec::new();
    for person in 0..PEOPLE {
        let client = server.client();
        expect_redirect(client.signup(&format!("writer{person}")).await, "/topics/").await;
        let (seeded, acknowledged) = (seeded.clone(), acknowledged.clone());
        people.push(tokio::spawn(async move {
            let mut outcome = Outcome {
                created: Vec::new(),
                toggled: seeded.iter().map(|&id| (id, None, false)).collect(),
            };
            let mut subscribed = vec![false; seeded.len()];
            for step in 0.. {
                let slot = step % seeded.len();
                let answered = if step % 2 == 0 {
                    let name = format!("w{person}-{step}");
                    let answer = post(&client, "/topics/create/", &[("name", &name)]).await;
                    if answer == Some(StatusCode::SEE_OTHER) {
                        outcome.created.push(name);
                    }
                    answer
                } else {
                    let (id, want) = (seeded[slot], !subscribed[slot]);
                    let action = if want { "subscribe" } else { "unsubscribe" };
                    let answer = post(&client, &format!("/topics/{action}/{id}/"), &[]).await;
                    let entry = &mut outcome.toggled[slot];
                    if answer == Some(StatusCode::SEE_OTHER) {
                        subscribed[slot] = want;
                        *entry = (id, Some(want), false);
                    } else {
                        entry.2 = true;
                    }
                    answer
                };
                match answered {
                    Some(StatusCode::SEE_OTHER) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    // The server is gone: this person stops.
                    None => break,
                    Some(other) => panic!("a write was answered {other} before the kill"),
                }
            }
            outcome
        }));
    }
    // Enough writes in, and more on their way, when the process is killed (SIGKILL on drop).
    while acknowledged.load(Ordering::Relaxed) < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(server);
    let mut outcomes = Vec::new();
    for person in people {
        outcomes.push(person.await.expect("writer"));
    }

    let restarted = TestServer::start_on(&db);
    let reader = restarted.client();
    expect_redirect(
        reader
            .login("probe", crate::support::PASSWORD, "/topics/")
            .await,
        "/topics/",
    )
    .await;
    let mut created = 0;
    for (person, outcome) in outcomes.iter().enumerate() {
        for name in &outcome.created {
            created += 1;
            let sql = format!(
                "SELECT count(*) AS n FROM topics t JOIN topic_activities a ON a.topic_id = t.id \
                 WHERE t.name = '{name}' AND a.action = 'created'"
            );
            assert_eq!(
                count_sql(&db, sql).await,
                1,
                "{name}: acknowledged, then lost"
            );
        }
        for &(topic, state, unanswered_after) in &outcome.toggled {
            let Some(want) = state else { continue };
            let sql = format!(
                "SELECT count(*) AS n FROM topic_subscribers s JOIN users u ON u.id = s.user_id \
                 WHERE u.username = 'writer{person}' AND s.topic_id = {topic}"
            );
            let have = count_sql(&db, sql).await == 1;
            assert!(
                have == want || unanswered_after,
                "writer{person} on topic {topic}: acknowledged {want}, found {have}"
            );
        }
    }
    assert!(created > 0, "the load created topics before the kill");
    let drifted = count_sql(
        &db,
        "SELECT count(*) AS n FROM topics t WHERE t.subscriber_count <> \
         (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = t.id)",
    )
    .await;
    assert_eq!(drifted, 0, "stored counts equal the rows after the restart");
    // And the restarted server serves what it kept.
    assert_eq!(reader.get("/topics/").await.status(), StatusCode::OK);
}

/// A signed-in page view that renews its session (daily) while the database refuses writes
/// (here: another process holds the write lock past the busy timeout) still shows the page:
/// the session stays valid until its stored expiry, and the renewal is tried again later.
#[tokio::test]
async fn a_renewal_that_cannot_be_saved_does_not_fail_the_page() {
    let (server, alice) = TestServer::with_member("alice").await;
    let db = server.stop();
    // A day and more since the last renewal, as the database (not memory) remembers it.
    let renewed_long_ago = if db.is_postgres() {
        "UPDATE sessions SET data = convert_to(jsonb_set(convert_from(data, 'UTF8')::jsonb, \
         '{data,renewed_at}', '0')::text, 'UTF8')"
    } else {
        "UPDATE sessions SET data = CAST(json_set(CAST(data AS TEXT), '$.data.renewed_at', 0) \
         AS BLOB)"
    };
    crate::support::execute_sql(&db, renewed_long_ago).await;

    let server = TestServer::start_on(&db);
    let alice = alice.against(&server);
    let holder = crate::support::hold_write_lock(&db, Duration::from_secs(8));
    let page = alice.get("/topics/").await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the page, not the failed renewal"
    );
    assert!(page
        .text()
        .await
        .expect("body")
        .contains("data-username=\"alice\""));
    holder.join().expect("lock holder");

    // The session still works, and renews once the database takes writes again.
    let renewed = |db: crate::support::Database| async move {
        let sql = if db.is_postgres() {
            "SELECT count(*) AS n FROM sessions WHERE \
             (convert_from(data, 'UTF8')::jsonb #>> '{data,renewed_at}')::bigint > 0"
        } else {
            "SELECT count(*) AS n FROM sessions WHERE \
             json_extract(CAST(data AS TEXT), '$.data.renewed_at') > 0"
        };
        count_sql(&db, sql).await
    };
    assert_eq!(renewed(db.clone()).await, 0, "not renewed while refused");
    let server = TestServer::start_on(&server.stop());
    let alice = alice.against(&server);
    assert_eq!(alice.get("/topics/").await.status(), StatusCode::OK);
    assert_eq!(renewed(db.clone()).await, 1, "renewed on a later visit");
}

/// A small filesystem of its own (tmpfs), which a test can fill up. Needs the right to mount
/// (root, as in CI); elsewhere `None`, and the test says it was skipped.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|output| output.status.success());
        mounted.then(|| SmallDisk {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }

    fn filler(&self) -> std::path::PathBuf {
        self.path.join("filler")
    }

    /// Writes until the disk refuses: no room is left for anything.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).expect("filler");
        let block = vec![0_u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        // The last partial block too.
        while file.write_all(&block[..512]).is_ok() {}
        while file.write_all(&block[..1]).is_ok() {}
    }

    fn make_room(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

async fn expect_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    let body = response.text().await.expect("body");
    assert!(body.contains("nothing was changed"), "{body}");
}

/// SQLite on a full disk: a write is answered with the styled 503, leaves nothing behind, and
/// the same write succeeds once there is room again, without a restart.
#[tokio::test]
async fn a_full_disk_answers_503_changes_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount(16) else {
        eprintln!("skipped: cannot mount a small filesystem here (needs root)");
        return;
    };
    let db = Database::sqlite_in(&disk.path);
    // Locals drop in reverse: the server stops before the database file goes and the disk
    // is unmounted.
    let server = TestServer::start_on(&db);
    let alice = member(&server, "alice").await;
    let python = alice.topic_id("Python").await;

    disk.fill();
    expect_unavailable(
        alice
            .post_form("/topics/create/", &[("name", "Rust")])
            .await,
    )
    .await;
    expect_unavailable(
        alice
            .post_form(&format!("/topics/subscribe/{python}/"), &[])
            .await,
    )
    .await;
    // Reads still work.
    let page = alice.get("/topics/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!topic_names(&page.text().await.expect("body")).contains(&"Rust".to_owned()));

    disk.make_room();
    alice
        .post_listed("/topics/create/", &[("name", "Rust")])
        .await;
    alice.subscribe(python).await;
    let topics = alice.topics().await;
    assert!(topics.iter().any(|t| t.1 == "Rust" && t.2 == 0));
    assert!(topics.iter().any(|t| t.0 == python && t.2 == 1 && t.3));
    let activity = server.activity_rows().await;
    assert_eq!(
        activity.iter().filter(|row| row.1 == "Rust").count(),
        1,
        "one created row: the refused create left none"
    );
}

/// PostgreSQL turned read-only (as during a failover, or a full disk there): writes get the
/// styled 503 and change nothing, pages are still served, and writes work again once the
/// database takes them, without a restart. (SQLite's read-only file cannot be imitated under a
/// running server; its full disk is the test above.)
#[tokio::test]
async fn a_read_only_database_answers_503_changes_nothing_and_recovers() {
    let server = TestServer::start();
    if !server.db.is_postgres() {
        return;
    }
    let alice = member(&server, "alice").await;
    let python = alice.topic_id("Python").await;
    let database = server
        .db
        .url()
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    let reconnect_everyone = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    );
    execute_sql(
        &server.db,
        format!(
            "ALTER DATABASE \"{database}\" SET default_transaction_read_only = on; \
             {reconnect_everyone}"
        ),
    )
    .await;

    // Pooled connections ended under the server fail once each (a 503 too); pages are
    // served again once they are replaced, writes are not.
    let mut served = false;
    for _ in 0..20 {
        if alice.get("/topics/").await.status() == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "pages are still served");
    for _ in 0..2 {
        expect_unavailable(
            alice
                .post_form(&format!("/topics/subscribe/{python}/"), &[])
                .await,
        )
        .await;
    }
    assert!(alice
        .topics()
        .await
        .iter()
        .any(|t| t.0 == python && t.2 == 0 && !t.3));

    // The server's own way in (migrations first) would be refused now: a plain connection
    // that asks for read-write for itself.
    let url = server.db.url();
    let reset = format!(
        "ALTER DATABASE \"{database}\" RESET default_transaction_read_only; \
         {reconnect_everyone}"
    );
    tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = diesel::PgConnection::establish(&url).expect("connect");
        // On its own: statements sent together run in one transaction, read-only from its start.
        conn.batch_execute("SET default_transaction_read_only = off")
            .expect("read-write for this connection");
        conn.batch_execute(&reset).expect("reset");
    })
    .await
    .expect("reset thread");
    let mut subscribed = false;
    for _ in 0..20 {
        let response = alice
            .post_form(&format!("/topics/subscribe/{python}/"), &[])
            .await;
        if response.status() == StatusCode::SEE_OTHER {
            subscribed = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(subscribed, "writes work again without a restart");
    assert!(alice
        .topics()
        .await
        .iter()
        .any(|t| t.0 == python && t.2 == 1 && t.3));
}

/// Every pooled connection taken (here: the only one, by a write waiting on a lock another
/// process holds): a request that needs one waits `DATABASE_POOL_WAIT_SECONDS`, then gets the
/// 503, although it only reads (which the lock would let through); all is well once the
/// connection is free again.
#[tokio::test]
async fn an_exhausted_pool_answers_503_and_recovers() {
    let (server, alice) = TestServer::with_member_on(settings::POOL_OF_ONE, "alice").await;
    let python = alice.topic_id("Python").await;
    assert_eq!(
        alice.get("/topics/activity/").await.status(),
        StatusCode::OK
    );

    let lock = crate::support::hold_write_lock(&server.db, Duration::from_secs(4));
    let writer = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice
                .post_form(&format!("/topics/subscribe/{python}/"), &[])
                .await
                .status()
        })
    };
    // A moment for the write to take the connection and start waiting on the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reader = alice.get("/topics/activity/").await;
    assert_eq!(reader.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(reader.headers().get("retry-after").is_some());
    // A session this server has not seen is read from the database by the session layer,
    // which can only fail: the same 503, with a message, not its bare 500.
    let stranger = crate::support::plain_http()
        .get(server.url("/topics/"))
        .header("cookie", "subscriptions_session=AAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .expect("an answer");
    assert_eq!(stranger.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(stranger.headers().get("retry-after").is_some());
    let message = stranger.text().await.expect("body");
    assert!(message.contains("try again"), "{message}");

    lock.join().expect("lock holder");
    let written = writer.await.expect("writer");
    assert!(
        written == StatusCode::SEE_OTHER || written == StatusCode::SERVICE_UNAVAILABLE,
        "{written}"
    );
    assert_eq!(
        alice.get("/topics/activity/").await.status(),
        StatusCode::OK
    );
    alice.subscribe(python).await;
}
