//! Many clients at once over HTTP, mixed operations; every page read is checked against what
//! was committed before that request started (and what could have committed while it ran).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::support::{count_sql, expect_redirect, TestClient, TestServer};

const CLIENTS: usize = 6;
const STEPS: usize = 40;

/// One subscribe or unsubscribe, from the moment it was sent to the moment its answer came.
#[derive(Clone)]
struct Op {
    client: usize,
    topic: i64,
    subscribe: bool,
    sent: Instant,
    answered: Option<Instant>,
}

#[derive(Default)]
struct History {
    ops: Vec<Op>,
}

impl History {
    fn start(&mut self, client: usize, topic: i64, subscribe: bool) -> usize {
        self.ops.push(Op {
            client,
            topic,
            subscribe,
            sent: Instant::now(),
            answered: None,
        });
        self.ops.len() - 1
    }

    fn finish(&mut self, index: usize) {
        if let Some(op) = self.ops.get_mut(index) {
            op.answered = Some(Instant::now());
        }
    }

    /// The bounds on `topic`'s count for a read sent at `sent` and answered at `answered`,
    /// counting everyone but `reader` (whose own state the reader knows exactly).
    fn bounds(&self, topic: i64, reader: usize, sent: Instant, answered: Instant) -> (i64, i64) {
        let (mut low, mut high) = (0, 0);
        for client in (0..CLIENTS).filter(|c| *c != reader) {
            let ops: Vec<&Op> = self
                .ops
                .iter()
                .filter(|op| op.client == client && op.topic == topic)
                .collect();
            // Committed (answered) before the read was sent: certainly visible.
            let before = ops
                .iter()
                .rfind(|op| op.answered.is_some_and(|at| at < sent))
                .is_some_and(|op| op.subscribe);
            // Sent before the read was answered and not answered before it was sent: may or
            // may not be visible.
            let uncertain = ops
                .iter()
                .any(|op| op.sent < answered && op.answered.is_none_or(|at| at >= sent));
            if uncertain {
                high += 1;
            } else if before {
                low += 1;
                high += 1;
            }
        }
        (low, high)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_read_shows_at_least_what_was_committed_before_it() {
    let server = Arc::new(TestServer::start());
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let client = server.client();
        expect_redirect(client.signup(&format!("client{n}")).await, "/topics/").await;
        clients.push(client);
    }
    let topics: Vec<i64> = clients[0].topics().await.into_iter().map(|t| t.0).collect();
    let history = Arc::new(Mutex::new(History::default()));

    let mut tasks = Vec::new();
    for (n, client) in clients.into_iter().enumerate() {
        let history = history.clone();
        let topics = topics.clone();
        tasks.push(tokio::spawn(async move {
            run_client(n, client, &topics, &history).await;
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
}

async fn run_client(n: usize, client: TestClient, topics: &[i64], history: &Mutex<History>) {
    let mut mine = std::collections::BTreeSet::new();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64 ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9);
    for _ in 0..STEPS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let topic = topics[(seed % topics.len() as u64) as usize];
        if !seed.is_multiple_of(3) {
            let subscribe = seed.is_multiple_of(2);
            let index = history.lock().expect("history").start(n, topic, subscribe);
            let response = client.toggle(topic, subscribe).await;
            history.lock().expect("history").finish(index);
            assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
            if subscribe {
                mine.insert(topic);
            } else {
                mine.remove(&topic);
            }
        }
        let sent = Instant::now();
        let page = client.topics().await;
        let answered = Instant::now();
        let history = history.lock().expect("history");
        for (id, name, count, subscribed) in page.iter().filter(|t| topics.contains(&t.0)) {
            let own = mine.contains(id);
            assert_eq!(
                *subscribed, own,
                "client{n} sees its own subscription to {name}"
            );
            let (low, high) = history.bounds(*id, n, sent, answered);
            let (low, high) = (low + i64::from(own), high + i64::from(own));
            assert!(
                (low..=high).contains(count),
                "client{n}: {name} shows {count} subscribers, committed state allows {low}..={high}"
            );
        }
    }
}

/// Stored subscriber counts that differ from the rows they count.
const MISCOUNTED: &str = "SELECT count(*) AS n FROM topics t \
     WHERE t.subscriber_count <> (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = t.id)";

/// Sends the same form POST twice at once (two tabs, a double click that got through) and
/// returns both statuses, sorted.
async fn twice_at_once(
    first: &TestClient,
    second: &TestClient,
    path: &str,
    form: &[(&str, &str)],
) -> Vec<u16> {
    let (a, b) = tokio::join!(first.post_form(path, form), second.post_form(path, form));
    let mut statuses = vec![a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_racing_themself_gets_one_row_and_exact_counts() {
    let (server, alice) = TestServer::with_member("alice").await;
    // The same browser (one cookie jar), two requests in flight.
    let tab = alice.clone();
    let topics: Vec<i64> = alice.topics().await.iter().map(|t| t.0).collect();
    for round in 0..15 {
        let topic = topics[round % topics.len()];
        let subscribe = format!("/topics/subscribe/{topic}/");
        assert_eq!(
            twice_at_once(&alice, &tab, &subscribe, &[]).await,
            [303, 303]
        );
        let row = alice
            .topics()
            .await
            .into_iter()
            .find(|t| t.0 == topic)
            .expect("listed");
        assert!(row.3, "round {round}: subscribed");
        assert_eq!(row.2, 1, "round {round}: counted once");
        // A "clear all" racing a subscribe to another topic: whichever order the database
        // chose, the page must match the rows.
        let other = topics[(round + 1) % topics.len()];
        let subscribe_other = format!("/topics/subscribe/{other}/");
        let (cleared, subscribed) = tokio::join!(
            alice.post_form("/topics/unsubscribe-all/", &[]),
            tab.post_form(&subscribe_other, &[]),
        );
        assert_eq!(
            (cleared.status().as_u16(), subscribed.status().as_u16()),
            (303, 303)
        );
        let page = alice.topics().await;
        let stored = count_sql(
            &server.db,
            "SELECT count(*) AS n FROM topic_subscribers s JOIN users u ON u.id = s.user_id \
             WHERE u.username = 'alice'",
        )
        .await;
        let shown = page.iter().filter(|t| t.3).count();
        assert_eq!(
            shown as i64, stored,
            "round {round}: the page shows the stored rows"
        );
        assert_eq!(
            page.iter().map(|t| t.2).sum::<i64>(),
            stored,
            "round {round}: counts"
        );
        alice.post_listed("/topics/unsubscribe-all/", &[]).await;
    }
    assert_eq!(count_sql(&server.db, MISCOUNTED).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_created_at_once_in_two_letter_cases_give_one_topic_and_one_409() {
    let server = TestServer::start();
    let alice = server.client();
    let bob = server.client();
    expect_redirect(alice.signup("alice").await, "/topics/").await;
    expect_redirect(bob.signup("bob").await, "/topics/").await;
    for round in 0..8 {
        let lower = format!("Go{round}");
        let upper = lower.to_uppercase();
        let (lower_form, upper_form) = ([("name", lower.as_str())], [("name", upper.as_str())]);
        let (a, b) = tokio::join!(
            alice.post_form("/topics/create/", &lower_form),
            bob.post_form("/topics/create/", &upper_form),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [303, 409], "round {round}");
    }
    assert_eq!(
        count_sql(
            &server.db,
            "SELECT count(*) AS n FROM topics WHERE lower(name) LIKE 'go%'"
        )
        .await,
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_racing_a_delete_leave_no_row_behind_and_no_500() {
    let server = TestServer::start();
    server.create_staff("root");
    let root = server.client();
    expect_redirect(
        root.login("root", crate::support::PASSWORD, "/topics/")
            .await,
        "/topics/",
    )
    .await;
    let mut members = Vec::new();
    for n in 0..4 {
        let member = server.client();
        expect_redirect(member.signup(&format!("member{n}")).await, "/topics/").await;
        members.push(member);
    }
    for round in 0..6 {
        let name = format!("Doomed {round}");
        root.post_listed("/topics/create/", &[("name", name.as_str())])
            .await;
        let topic = root.topic_id(&name).await;
        let subscribe = format!("/topics/subscribe/{topic}/");
        let delete = format!("/topics/delete/{topic}/");
        let subscribing = members.iter().map(|m| m.post_form(&subscribe, &[]));
        let (deleted, subscribed) = tokio::join!(
            root.post_form(&delete, &[]),
            futures::future::join_all(subscribing),
        );
        assert_eq!(deleted.status().as_u16(), 303, "round {round}");
        for response in subscribed {
            // Before the delete: subscribed, then removed with it. After: the topic is gone.
            assert!(
                [303, 404].contains(&response.status().as_u16()),
                "round {round}: {}",
                response.status()
            );
        }
        assert!(root.topics().await.iter().all(|t| t.0 != topic));
    }
    assert_eq!(
        count_sql(
            &server.db,
            "SELECT count(*) AS n FROM topic_subscribers s \
             WHERE NOT EXISTS (SELECT 1 FROM topics t WHERE t.id = s.topic_id)"
        )
        .await,
        0
    );
    assert_eq!(count_sql(&server.db, MISCOUNTED).await, 0);
}
