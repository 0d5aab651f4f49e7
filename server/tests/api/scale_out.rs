//! Several server processes on one PostgreSQL database: whatever instance a request lands on,
//! it sees every change committed before it started.

use reqwest::StatusCode;

use crate::support::{expect_redirect, TestClient, TestServer, PASSWORD};

const MEMBERS: usize = 3;

/// Several instances need a database they can share: this runs in the PostgreSQL pass.
fn postgres_pass() -> bool {
    let on = app::db::scratch::tests_use_postgres();
    if !on {
        eprintln!("two instances share a PostgreSQL database: run with TEST_BACKEND=postgres");
    }
    on
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
    if !postgres_pass() {
        return;
    }
    let trials: usize = std::env::var("SCALE_OUT_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(120);
    let first = TestServer::start();
    let second = TestServer::start_on(&first.db);
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
    let mut created = 0;
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
            expect_redirect(on_writer.post_form(&what, &[]).await, "/topics/").await;
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
}

async fn oracle_view(member: &TestClient, oracle: &TestServer) -> Vec<(i64, String, i64, bool)> {
    member.against(oracle).topics().await
}
