//! Bad days: the server process dies without any shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{count_sql, expect_redirect, TestClient, TestServer};

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
        .http
        .post(format!("{}{}", client.base, path))
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
        let probe = server.client();
        expect_redirect(probe.signup("probe").await, "/topics/").await;
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
    let server = TestServer::start();
    let alice = server.client();
    expect_redirect(alice.signup("alice").await, "/topics/").await;
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
