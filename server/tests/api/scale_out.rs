//! Several server processes on one PostgreSQL database: whatever instance a request lands on,
//! it sees every change committed before it started.

use std::time::Instant;

use reqwest::StatusCode;

use crate::live::{Events, PATIENCE};
use crate::support::{
    count_sql, execute_sql, expect_redirect, member, Sent, TestClient, TestServer, PASSWORD,
};

const MEMBERS: usize = 3;

/// Several instances need a database they can share: this runs in the PostgreSQL pass.
pub(crate) fn postgres_pass() -> bool {
    let on = domain::db::scratch::tests_use_postgres();
    if !on {
        eprintln!("two instances share a PostgreSQL database: run with TEST_BACKEND=postgres");
    }
    on
}

/// Two server instances on one PostgreSQL database; `None` on a SQLite run.
fn two_instances() -> Option<(TestServer, TestServer)> {
    if !postgres_pass() {
        return None;
    }
    let first = TestServer::start();
    let second = TestServer::start_on(&first.db);
    Some((first, second))
}

/// A small deterministic generator, so that a failing trial can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % sides as u64).unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_through_one_instance_is_read_at_once_through_the_other() {
    let Some((first, second)) = two_instances() else {
        return;
    };
    let trials: usize = std::env::var("SCALE_OUT_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    // The oracle: a third instance that caches nothing, so its pages are the database's.
    let oracle = TestServer::start_on_with(&first.db, &[("TOPIC_CACHE_TTL_SECONDS", "0")]);
    let instances = [&first, &second];
    first.create_staff("root");
    let root = first.client();
    expect_redirect(root.login("root", PASSWORD, "/topics/").await, "/topics/").await;
    let mut members = Vec::new();
    for n in 0..MEMBERS {
        let member = first.client();
        expect_redirect(member.signup(&format!("member{n}")).await, "/topics/").await;
        members.push(member);
    }
    let mut dice = Dice(7);
    let mut created: i64 = 0;
    let mut renamed: i64 = 0;
    for trial in 0..trials {
        let writer = dice.roll(2);
        let reader = 1 - writer;
        // The reader's instance holds warm entries (and stored pages) for everyone.
        for member in &members {
            member.against(instances[reader]).topics().await;
        }
        let topics: Vec<i64> = oracle_view(&members[0], &oracle)
            .await
            .iter()
            .map(|t| t.0)
            .collect();
        let topic = topics[dice.roll(topics.len())];
        let who = dice.roll(MEMBERS);
        let on_writer = members[who].against(instances[writer]);
        let what = match dice.roll(10) {
            0..=3 => format!("/topics/subscribe/{topic}/"),
            4..=6 => format!("/topics/unsubscribe/{topic}/"),
            7 => "/topics/unsubscribe-all/".to_owned(),
            8 => {
                created += 1;
                let name = format!("Trial {created}");
                let response = root
                    .against(instances[writer])
                    .post_form("/topics/create/", &[("name", name.as_str())])
                    .await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "trial {trial}");
                String::new()
            }
            _ => {
                renamed += 1;
                let name = format!("Renamed {trial}");
                let response = root
                    .against(instances[writer])
                    .post_form(
                        &format!("/topics/rename/{topic}/"),
                        &[("name", name.as_str())],
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "trial {trial}");
                String::new()
            }
        };
        if !what.is_empty() {
            on_writer.post_listed(&what, &[]).await;
        }
        for (n, member) in members.iter().enumerate() {
            let seen = member.against(instances[reader]).topics().await;
            let truth = oracle_view(member, &oracle).await;
            assert_eq!(
                seen, truth,
                "trial {trial}: member{n}'s page on the other instance after {what:?} on \
                 instance {writer}"
            );
        }
    }
    // Receivers ran once per change, on the instance that committed it: one activity row
    // and one log line per create or rename, not one per instance.
    assert_eq!(
        count_sql(&first.db, "SELECT count(*) AS n FROM topic_activities").await,
        created + renamed
    );
    let logged: usize = [&first, &second, &oracle]
        .iter()
        .map(|server| {
            server
                .logs()
                .iter()
                .filter(|line| {
                    line.contains("changed: created") || line.contains("changed: updated")
                })
                .count()
        })
        .sum();
    assert_eq!(i64::try_from(logged).ok(), Some(created + renamed));
}

async fn oracle_view(member: &TestClient, oracle: &TestServer) -> Vec<(i64, String, i64, bool)> {
    member.against(oracle).topics().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_open_on_one_instance_follows_changes_made_through_another() {
    let Some((first, second)) = two_instances() else {
        return;
    };
    let alice = member(&first, "alice").await;
    let bob = member(&first, "bob").await;
    let python = bob.topic_id("Python").await;
    let mut events = Events::open(&alice.against(&second)).await;
    events.version().await;
    let mut last = domain::live::Count::default();
    let mut latencies = Vec::new();
    for write in 0..50 {
        let path = if write % 2 == 0 {
            format!("/topics/subscribe/{python}/")
        } else {
            format!("/topics/unsubscribe/{python}/")
        };
        let sent = Instant::now();
        bob.post_listed(&path, &[]).await;
        let committed = sent.elapsed();
        // Bob's count changes what Alice sees: her page on the other instance hears of it as a
        // patch with the count and its version (never a bare version: no page refetches for a
        // count). A count told already (its version no newer) is not news.
        let heard = loop {
            match events.next(PATIENCE).await {
                crate::live::Next::Patch(patch) => {
                    let [(topic, count)] = patch.counts[..] else {
                        panic!("write {write}: one count, got {patch:?}");
                    };
                    assert_eq!(topic, domain::ids::TopicId(python));
                    if !count.is_newer_than(&last) {
                        continue;
                    }
                    assert_eq!(count.subscribers, 1 - (write % 2) as i64, "write {write}");
                    last = count;
                    break sent.elapsed();
                }
                other => panic!("write {write}: expected a patch, got {other:?}"),
            }
        };
        latencies.push(heard.saturating_sub(committed));
    }
    latencies.sort_unstable();
    println!(
        "cross-instance live latency after the response (50 writes): p50 {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    let remote = second.metric("versions_notifications_total").await;
    assert!(
        remote >= 50,
        "every write heard through the database: {remote}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_on_one_instance_ends_the_session_on_every_instance() {
    let Some((first, second)) = two_instances() else {
        return;
    };
    // A browser that keeps its cookie whatever a response says, as a stolen cookie would be
    // kept: only the server's own memory can still honour it.
    let raw = crate::support::plain_http();
    let signup = raw
        .post(first.url("/signup"))
        .header("Origin", &first.base)
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign up");
    assert_eq!(signup.status(), StatusCode::SEE_OTHER);
    let cookie = signup
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page_on_second = || async {
        raw.get(second.url("/topics/"))
            .header("Cookie", &cookie)
            .sent()
            .await
    };
    // The second instance now holds the session in memory.
    assert_eq!(page_on_second().await.status(), StatusCode::OK);

    let logout = raw
        .post(first.url("/logout"))
        .header("Origin", &first.base)
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("log out");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let ended = Instant::now();
    loop {
        let response = page_on_second().await;
        if response.status() == StatusCode::SEE_OTHER {
            assert!(crate::support::location(&response).starts_with("/login"));
            break;
        }
        assert!(
            ended.elapsed() < PATIENCE,
            "the other instance still honours the ended session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    println!(
        "a logout reached the other instance after {:?}",
        ended.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purge_cut_short_by_a_killed_instance_is_finished_by_another() {
    let Some((first, second)) = two_instances() else {
        return;
    };
    const SUBSCRIBERS: i64 = 40_000;
    let db = first.db.clone();
    first.create_staff("root");
    let root = first.client();
    expect_redirect(root.login("root", PASSWORD, "/topics/").await, "/topics/").await;
    let python = root.topic_id("Python").await;
    execute_sql(
        &db,
        format!(
            "INSERT INTO users (username, password_hash) \
             SELECT 'many' || i, 'not a hash' FROM generate_series(1, {SUBSCRIBERS}) i;
             INSERT INTO topic_subscribers (topic_id, user_id) \
             SELECT {python}, id FROM users WHERE username LIKE 'many%';"
        ),
    )
    .await;
    let left = || {
        count_sql(
            &db,
            format!("SELECT count(*) AS n FROM topic_subscribers WHERE topic_id = {python}"),
        )
    };
    assert_eq!(left().await, SUBSCRIBERS);
    root.post_listed(&format!("/topics/delete/{python}/"), &[])
        .await;
    // The first instance purges; once it has removed a batch or two, it is killed (SIGKILL,
    // no shutdown of any kind).
    let started = Instant::now();
    while left().await == SUBSCRIBERS {
        assert!(started.elapsed() < PATIENCE, "the purge never started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(first);
    let cut_at = left().await;
    assert!(
        cut_at > 0,
        "killed mid-purge (it had already finished: make the topic larger)"
    );

    let killed = Instant::now();
    loop {
        let topic_rows = count_sql(
            &db,
            format!("SELECT count(*) AS n FROM topics WHERE id = {python}"),
        )
        .await;
        if topic_rows == 0 {
            break;
        }
        assert!(
            killed.elapsed() < PATIENCE * 3,
            "the surviving instance did not finish the purge ({} left)",
            left().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!(
        "{cut_at} subscriptions left when killed; finished {:?} later",
        killed.elapsed()
    );
    assert_eq!(left().await, 0);
    assert_eq!(
        count_sql(
            &db,
            "SELECT count(*) AS n FROM topics t WHERE t.subscriber_count <> \
             (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = t.id)"
        )
        .await,
        0
    );
    assert!(second
        .logs()
        .iter()
        .any(|line| line.contains("retired topic purged")));
    assert!(
        second.client().get("/healthz").await.status().is_success(),
        "the survivor serves on"
    );
}
