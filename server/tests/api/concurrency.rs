//! Many clients at once over HTTP, mixed operations; every page read is checked against what
//! was committed before that request started (and what could have committed while it ran).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::support::{expect_redirect, TestClient, TestServer};

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
            let action = if subscribe {
                "subscribe"
            } else {
                "unsubscribe"
            };
            let response = client
                .post_form(&format!("/topics/{action}/{topic}/"), &[])
                .await;
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
