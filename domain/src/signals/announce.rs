//! Telling the other instances (PostgreSQL) what a commit moved, after the commit.
//!
//! A notification sent inside the change's transaction would make PostgreSQL take one lock of
//! the whole cluster at commit and hold it until the commit has reached the disk: every
//! change would wait for the one before it. So a committing request hands its version moves
//! to this instance's announcer and answers; the announcer sends what has gathered in one
//! transaction of its own, whose commit does not wait for the disk (a notification lost in a
//! crash is one a restarted listener would not have heard anyway). What a lost notification
//! costs is bounded: pages stay exact (every request reads the versions), and every listener
//! rereads the catalog's versions each second (`remote`).

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Array, Text};
use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::cache::payloads::{self, Told};
use crate::cache::shared::Moved;

/// At most this many payloads go in one transaction.
const BATCH: usize = 256;
/// Between attempts to reach the database; a batch is given up after [`ATTEMPTS`].
const RETRY: Duration = Duration::from_millis(200);
const ATTEMPTS: u32 = 5;

/// Hands version moves to the thread that announces them.
#[derive(Clone)]
pub struct Announcer {
    to_thread: Sender<String>,
}

impl Announcer {
    /// Starts the announcing thread for the database at `url`; it ends once every
    /// [`Announcer`] is dropped.
    pub fn start(url: String) -> std::io::Result<Announcer> {
        let (to_thread, from_requests) = mpsc::channel();
        std::thread::Builder::new()
            .name("versions-announcer".into())
            .spawn(move || run(&url, &from_requests))?;
        Ok(Announcer { to_thread })
    }

    /// Queues what a commit moved; never waits.
    pub fn announce(&self, moved: &Moved, told: Option<&Told>) {
        for payload in payloads::encode(moved, told) {
            if self.to_thread.send(payload).is_err() {
                tracing::error!(
                    "the announcer is gone; other instances hear of this commit at their next read"
                );
                return;
            }
        }
    }
}

fn run(url: &str, payloads: &Receiver<String>) {
    let mut conn: Option<PgConnection> = None;
    // Blocks until something is queued; ends when every sender is gone.
    while let Ok(first) = payloads.recv() {
        let mut batch = vec![first];
        batch.extend(payloads.try_iter().take(BATCH - 1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match send(url, &mut conn, &batch) {
                Ok(()) => break,
                Err(err) => {
                    conn = None;
                    if attempt >= ATTEMPTS {
                        tracing::warn!(error = %err, payloads = batch.len(), "could not announce version moves");
                        break;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
}

fn send(url: &str, conn: &mut Option<PgConnection>, batch: &[String]) -> Result<(), String> {
    if conn.is_none() {
        let mut fresh = PgConnection::establish(url).map_err(|e| e.to_string())?;
        fresh
            .batch_execute(
                "SET application_name = 'subscriptions-announcer'; \
                 SET synchronous_commit = off",
            )
            .map_err(|e| e.to_string())?;
        *conn = Some(fresh);
    }
    let Some(conn) = conn.as_mut() else {
        return Err("no connection".into());
    };
    diesel::sql_query("SELECT pg_notify($1, payload) FROM unnest($2) AS payload")
        .bind::<Text, _>(payloads::CHANNEL)
        .bind::<Array<Text>, _>(batch)
        .execute(conn)
        .map(drop)
        .map_err(|e| e.to_string())
}
