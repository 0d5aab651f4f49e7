//! Version reads shared by the requests that wait together (PostgreSQL).
//!
//! Before it trusts the cache, a request must read the versions *after it arrived*: the
//! change its user just made (perhaps through another instance) committed before the
//! request was sent, and a read that began earlier may predate that commit. So a request
//! never joins a read already in flight. It joins the next one instead, which starts when
//! the one in flight ends: reads run one after another, each for every request that arrived
//! during the one before. Alone, a request waits for one read; under load one round trip
//! serves all the requests that came in meanwhile, instead of one pooled connection and one
//! query each.

use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::{shared, TopicCache};
use crate::db::{Conn, Db};
use crate::error::DomainError;
use crate::ids::UserId;

/// At most this many requests share one read (its query names one key per user).
const MAX_SHARED: usize = 1_000;

type Waiter = (UserId, oneshot::Sender<Result<(), DomainError>>);

/// Reads the database's versions into a cache that follows them
/// ([`TopicCache::following_database_versions`]).
#[derive(Clone)]
pub struct Probes {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cache: TopicCache,
    queue: Mutex<Queue>,
    /// Reads made, for tests and metrics: below the number of requests when reads are shared.
    reads: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// A read is in flight (a task is draining the queue).
    reading: bool,
    /// Requests that arrived since the read in flight began.
    waiting: Vec<Waiter>,
}

impl Probes {
    pub fn new(db: Db, cache: TopicCache) -> Self {
        Probes {
            inner: Arc::new(Inner {
                db,
                cache,
                queue: Mutex::default(),
                reads: AtomicU64::new(0),
            }),
        }
    }

    /// Returns once the cache knows every version `user_id`'s page depends on as of some
    /// moment after this call began.
    pub async fn catch_up(&self, user_id: UserId) -> Result<(), DomainError> {
        let (done, outcome) = oneshot::channel();
        let start_reading = {
            let mut queue = self.queue();
            queue.waiting.push((user_id, done));
            !mem::replace(&mut queue.reading, true)
        };
        if start_reading {
            // A task of its own, so that a request that goes away (its client hung up) does
            // not strand the others waiting on the same read.
            tokio::spawn(self.clone().drain());
        }
        outcome.await.unwrap_or_else(|_| {
            tracing::error!("a version read ended without an answer");
            Err(DomainError::Internal)
        })
    }

    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every update under this lock is a push or a swap: a panic cannot leave it half done.
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads for the waiting requests, then for those that arrived meanwhile, until none wait.
    async fn drain(self) {
        let _reading = Reading(&self);
        loop {
            let batch: Vec<Waiter> = {
                let mut queue = self.queue();
                if queue.waiting.is_empty() {
                    queue.reading = false;
                    return;
                }
                let first = queue.waiting.len().min(MAX_SHARED);
                let later = queue.waiting.split_off(first);
                mem::replace(&mut queue.waiting, later)
            };
            let outcome = self.read(&batch).await;
            for (_, done) in batch {
                // A request that went away no longer listens; nothing to do for it.
                let _ = done.send(outcome.clone());
            }
        }
    }

    async fn read(&self, batch: &[Waiter]) -> Result<(), DomainError> {
        let mut users: Vec<UserId> = batch.iter().map(|&(user, _)| user).collect();
        users.sort_unstable();
        users.dedup();
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let probed = self
            .inner
            .db
            .run(move |conn| match conn {
                Conn::Pg(pg) => shared::probe(pg, &users).map_err(DomainError::from),
                Conn::Sqlite(_) => {
                    tracing::error!("database versions asked of a SQLite database");
                    Err(DomainError::Internal)
                }
            })
            .await?;
        self.inner.cache.observe(&probed);
        Ok(())
    }
}

/// Held by the task that drains the queue: should a read panic, the next request starts a
/// new task instead of waiting for one that is gone.
struct Reading<'a>(&'a Probes);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.queue().reading = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    use crate::cache::keys::CATALOG_KEY;
    use crate::cache::{user_key, TTL};
    use crate::db::scratch::ScratchDatabase;
    use crate::db::{Conn, Db};
    use crate::error::DomainError;
    use crate::ids::UserId;
    use crate::services::Services;

    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = BigInt)]
        version: i64,
    }

    /// Moves `key`'s version in the database and commits, as a change through another
    /// instance would; returns the new version.
    async fn commit_move(services: &Services, key: String) -> u64 {
        let version: i64 = services
            .db
            .run(move |conn| {
                let Conn::Pg(pg) = conn else {
                    return Err(DomainError::Internal);
                };
                diesel::sql_query(
                    "INSERT INTO cache_versions (key, version) VALUES ($1, 1) \
                     ON CONFLICT (key) DO UPDATE SET version = cache_versions.version + 1 \
                     RETURNING version",
                )
                .bind::<Text, _>(key)
                .get_result::<Version>(pg)
                .map(|row| row.version)
                .map_err(DomainError::from)
            })
            .await
            .expect("version moved");
        u64::try_from(version).expect("positive")
    }

    async fn postgres_services(place: &ScratchDatabase) -> Services {
        let db = Db::open(place.url()).await.expect("open");
        Services::new(db, TTL)
    }

    #[tokio::test]
    async fn requests_waiting_together_share_one_read() {
        let place = ScratchDatabase::create();
        let services = postgres_services(&place).await;
        let probes = services.probes.clone().expect("PostgreSQL reads versions");
        let users: Vec<UserId> = (1..=4).map(UserId).collect();
        for &user in &users {
            commit_move(&services, user_key(user)).await;
            commit_move(&services, user_key(user)).await;
        }
        let catalog = commit_move(&services, CATALOG_KEY.to_owned()).await;
        let before = probes.reads();

        // On this single-threaded runtime all 64 join the queue before the first read runs.
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..64 {
            let services = services.clone();
            let user = users[n % users.len()];
            requests.spawn(async move { services.catch_up(user).await });
        }
        while let Some(outcome) = requests.join_next().await {
            outcome.expect("joined").expect("caught up");
        }

        assert_eq!(probes.reads(), before + 1, "one read served 64 requests");
        for &user in &users {
            let seen = services.view_version(user);
            assert_eq!(seen.shared, catalog, "the shared key");
            assert_eq!(seen.user, 2, "each user's own key, read in the same query");
        }
    }

    /// A request must not take the answer of a read that began before it arrived: that read
    /// may predate the change its user just committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_never_takes_a_read_that_began_before_it_arrived() {
        let place = ScratchDatabase::create();
        let services = postgres_services(&place).await;
        let probes = services.probes.clone().expect("PostgreSQL reads versions");
        let stop = Arc::new(AtomicBool::new(false));
        // Other requests keep reads in flight all the time.
        let mut others = tokio::task::JoinSet::new();
        for n in 0..4 {
            let (services, stop) = (services.clone(), stop.clone());
            others.spawn(async move {
                let mut served = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    services.catch_up(UserId(100 + n)).await.expect("caught up");
                    served += 1;
                }
                served
            });
        }

        let reader = UserId(1);
        for trial in 0..300 {
            let key = if trial % 2 == 0 {
                CATALOG_KEY.to_owned()
            } else {
                user_key(reader)
            };
            let committed = commit_move(&services, key).await;
            services.catch_up(reader).await.expect("caught up");
            let seen = services.view_version(reader);
            let seen = if trial % 2 == 0 {
                seen.shared
            } else {
                seen.user
            };
            assert!(
                seen >= committed,
                "trial {trial}: a read that began before the commit answered ({seen} < {committed})"
            );
        }

        stop.store(true, Ordering::Relaxed);
        let mut served = 0;
        while let Some(count) = others.join_next().await {
            served += count.expect("joined");
        }
        assert!(served > 0, "the other requests ran beside the trials");
        assert!(
            probes.reads() < served + 300,
            "reads were shared ({} reads for {} requests)",
            probes.reads(),
            served + 300
        );
    }
}
