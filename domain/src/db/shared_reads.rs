//! Reads shared by the requests that want the same thing at the same time: the first starts
//! one, the others wait for its answer instead of taking a pooled connection each. After a
//! change every open page refetches for, or once in-memory copies expire, thousands of
//! requests miss at once; without sharing, each would wait for a connection of its own and the
//! pool would drown in identical reads.
//!
//! A request joins a read only if the read began at the request's *stamp* or later: a number
//! that moves whenever what the read returns may have changed (a cache generation, a count of
//! forgotten entries). A read begun at an older stamp may predate a change the request must
//! see; the request starts a read of its own, which later arrivals join.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::error::DomainError;

type Outcome<V> = Option<Result<V, DomainError>>;

pub(crate) struct SharedReads<K, V> {
    slots: Arc<Mutex<Slots<K, V>>>,
    /// Reads started, for tests and metrics: fewer than the requests that wanted one.
    reads: Arc<AtomicU64>,
}

impl<K, V> Clone for SharedReads<K, V> {
    fn clone(&self) -> Self {
        SharedReads {
            slots: self.slots.clone(),
            reads: self.reads.clone(),
        }
    }
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        SharedReads {
            slots: Arc::new(Mutex::new(Slots {
                in_flight: HashMap::new(),
                next_id: 0,
            })),
            reads: Arc::default(),
        }
    }
}

struct Slots<K, V> {
    /// The read of each key that later requests may join.
    in_flight: HashMap<K, InFlight<V>>,
    /// The id the next read takes.
    next_id: u64,
}

struct InFlight<V> {
    stamp: u64,
    /// Tells apart reads of one key that followed one another.
    id: u64,
    outcome: watch::Receiver<Outcome<V>>,
}

impl<K, V> SharedReads<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `key`'s value from a read begun at `stamp` or later: one in flight, else `read`, started
    /// now in a task of its own (a request that goes away does not take the read from the
    /// others). Whatever `read` stores (a cache fill) is done before later requests stop
    /// joining it; `ready` is checked first, under the same lock, for what a read that just
    /// ended left behind.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: K,
        stamp: u64,
        ready: impl FnOnce() -> Option<V>,
        read: F,
    ) -> Result<V, DomainError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, DomainError>> + Send + 'static,
    {
        let mut outcome = match self.join_or_start(key, stamp, ready, read) {
            Ok(value) => return Ok(value),
            Err(outcome) => outcome,
        };
        let settled = outcome.wait_for(Option::is_some).await;
        match settled.as_deref() {
            Ok(Some(result)) => result.clone(),
            // The reading task ended without an answer (it panicked).
            Ok(None) | Err(_) => {
                tracing::error!("a shared read ended without an answer");
                Err(DomainError::Internal)
            }
        }
    }

    /// Reads started since start-up.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The value at once (`ready`), or the answer to wait for.
    fn join_or_start<F, Fut>(
        &self,
        key: K,
        stamp: u64,
        ready: impl FnOnce() -> Option<V>,
        read: F,
    ) -> Result<V, watch::Receiver<Outcome<V>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, DomainError>> + Send + 'static,
    {
        let mut slots = self.slots();
        if let Some(value) = ready() {
            return Ok(value);
        }
        if let Some(joined) = slots.in_flight.get(&key).filter(|read| read.stamp >= stamp) {
            return Err(joined.outcome.clone());
        }
        let id = slots.next_id;
        slots.next_id += 1;
        let (tell, outcome) = watch::channel(None);
        slots.in_flight.insert(
            key.clone(),
            InFlight {
                stamp,
                id,
                outcome: outcome.clone(),
            },
        );
        drop(slots);
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (shared, reading) = (self.clone(), read());
        tokio::spawn(async move {
            let result = reading.await;
            {
                let mut slots = shared.slots();
                if slots.in_flight.get(&key).is_some_and(|read| read.id == id) {
                    slots.in_flight.remove(&key);
                }
            }
            let _ = tell.send(Some(result));
        });
        Err(outcome)
    }

    fn slots(&self) -> MutexGuard<'_, Slots<K, V>> {
        // Every change under this lock is one insert, one removal or a count: a panic cannot
        // leave it half done.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::SharedReads;

    /// A read that takes a while and counts how often it ran.
    fn slow_read(
        ran: &Arc<AtomicU64>,
        value: u64,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<u64, crate::error::DomainError>> + Send>,
    > {
        let ran = ran.clone();
        move || {
            Box::pin(async move {
                ran.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(value)
            })
        }
    }

    #[tokio::test]
    async fn requests_at_one_stamp_share_one_read_and_a_newer_stamp_starts_its_own() {
        let reads: SharedReads<&str, u64> = SharedReads::default();
        let ran = Arc::new(AtomicU64::new(0));
        let mut same = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (reads, read) = (reads.clone(), slow_read(&ran, 7));
            same.spawn(async move { reads.get("k", 3, || None, read).await });
        }
        // After the first read began: its stamp is older than this request's.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let newer = reads.get("k", 4, || None, slow_read(&ran, 8)).await;
        while let Some(value) = same.join_next().await {
            assert_eq!(value.expect("task").ok(), Some(7));
        }
        assert_eq!(
            newer.ok(),
            Some(8),
            "a newer stamp does not take the older read"
        );
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        assert_eq!(reads.reads(), 2);

        // Once the reads ended, a request takes what they left (`ready`) and reads nothing.
        assert_eq!(
            reads.get("k", 3, || Some(9), slow_read(&ran, 1)).await.ok(),
            Some(9)
        );
        assert_eq!(
            ran.load(Ordering::Relaxed),
            2,
            "what the last read left was used"
        );
    }
}
