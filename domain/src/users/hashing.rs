//! Password hashing on two dedicated threads, behind a bounded queue.
//!
//! Argon2 (as `password-auth` configures it) needs about 19 MiB per hash. On tokio's blocking
//! pool every login may land on a different thread, and each thread's allocator arena keeps
//! its 19 MiB afterwards: two hundred logins left the server at ~500 MiB. Two long-lived
//! threads reuse their buffers, so hashing costs a bounded ~40 MiB, and at most two hashes
//! run at once — which the two cores of a small machine could not exceed anyway.
//!
//! The queue in front of them is bounded too: a flood of anonymous logins must not pile up
//! unbounded work (and memory). When it is full a request is refused at once with
//! [`DomainError::Busy`] instead of waiting, and a queued job whose client has gone is skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::error::DomainError;

const THREADS: usize = 2;
/// Jobs that may wait behind the running ones: about two seconds of work at ~0.1 s a hash on
/// each of two threads.
const QUEUE_DEPTH: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

/// Hashing threads and the bounded queue that feeds them.
pub(super) struct HashingQueue {
    sender: SyncSender<Job>,
    /// Jobs accepted and not yet finished (waiting or running), for the metrics.
    pending: Arc<AtomicUsize>,
}

impl HashingQueue {
    fn start(threads: usize, depth: usize) -> Self {
        let (sender, receiver) = mpsc::sync_channel::<Job>(depth);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || work(&receiver));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        HashingQueue {
            sender,
            pending: Arc::default(),
        }
    }

    /// Jobs waiting or running now.
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Runs `f` on a hashing thread and waits for it without blocking the async runtime;
    /// refused at once when the queue is full. If the caller stops waiting (the client went
    /// away), the job is skipped when its turn comes.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, DomainError> {
        let (reply, answer) = oneshot::channel();
        let pending = self.pending.clone();
        pending.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || {
            if !reply.is_closed() {
                let _ = reply.send(f());
            }
            pending.fetch_sub(1, Ordering::Relaxed);
        });
        let refused = |pending: &AtomicUsize| pending.fetch_sub(1, Ordering::Relaxed);
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                refused(&self.pending);
                tracing::warn!("password hashing queue full: request refused");
                return Err(DomainError::Busy(
                    "Too many sign-ins are being checked right now. Please try again in a moment."
                        .into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                refused(&self.pending);
                tracing::error!("the password hashing threads are gone");
                return Err(DomainError::Internal);
            }
        }
        answer.await.map_err(|_| {
            tracing::error!("a password hashing job ended without an answer");
            DomainError::Internal
        })
    }
}

/// The process's hashing queue.
pub(super) fn queue() -> &'static HashingQueue {
    static QUEUE: OnceLock<HashingQueue> = OnceLock::new();
    QUEUE.get_or_init(|| HashingQueue::start(THREADS, QUEUE_DEPTH))
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // the sender is gone: the process is ending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn jobs_run_off_the_runtime_and_answer() {
        let name = queue()
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("answer");
        assert!(name.is_some_and(|n| n.starts_with("password-hash-")));
        let mut sums = Vec::new();
        for n in 0..10u64 {
            sums.push(queue().run(move || n * 2).await.expect("answer"));
        }
        assert_eq!(sums, (0..10).map(|n| n * 2).collect::<Vec<_>>());
    }

    /// A queue for one test, alive for the rest of the test run.
    fn test_queue(threads: usize, depth: usize) -> &'static HashingQueue {
        Box::leak(Box::new(HashingQueue::start(threads, depth)))
    }

    /// Queues `f` now (the queueing happens on the first poll).
    fn spawn_job<R: Send + 'static>(
        queue: &'static HashingQueue,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<R, DomainError>> {
        tokio::spawn(queue.run(f))
    }

    /// A job that holds the queue's one thread until `release` is dropped.
    async fn occupy(queue: &'static HashingQueue) -> mpsc::Sender<()> {
        let (release, held) = mpsc::channel::<()>();
        spawn_job(queue, move || {
            let _ = held.recv_timeout(Duration::from_secs(10));
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // the thread has taken it
        release
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let queue = test_queue(1, 2);
        let release = occupy(queue).await;
        let waiting: Vec<_> = (0..2).map(|n| spawn_job(queue, move || n)).collect();
        tokio::time::sleep(Duration::from_millis(50)).await; // both are queued
        let refused = tokio::time::timeout(Duration::from_secs(1), queue.run(|| 99))
            .await
            .expect("answers without waiting for a thread");
        assert!(matches!(refused, Err(DomainError::Busy(_))), "{refused:?}");
        drop(release);
        for (n, job) in waiting.into_iter().enumerate() {
            assert_eq!(
                job.await.expect("task").ok(),
                Some(n),
                "queued jobs still run"
            );
        }
    }

    #[tokio::test]
    async fn a_job_whose_caller_stopped_waiting_is_skipped() {
        let queue = test_queue(1, 4);
        let release = occupy(queue).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let abandoned = spawn_job(queue, move || flag.store(true, Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(50)).await; // it is queued
        abandoned.abort(); // the client went away
        let _ = abandoned.await;
        drop(release);
        assert_eq!(queue.run(|| 1).await.ok(), Some(1), "the thread goes on");
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job did not run");
    }
}
