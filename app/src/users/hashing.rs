//! Password hashing on two dedicated threads.
//!
//! Argon2 (as `password-auth` configures it) needs about 19 MiB per hash. On tokio's blocking
//! pool every login may land on a different thread, and each thread's allocator arena keeps
//! its 19 MiB afterwards: two hundred logins left the server at ~500 MiB. Two long-lived
//! threads reuse their buffers, so hashing costs a bounded ~40 MiB, and at most two hashes
//! run at once — which the two cores of a small machine could not exceed anyway.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::error::AppError;

const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> &'static Mutex<Sender<Job>> {
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..THREADS {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || work(&receiver));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Mutex::new(sender)
    })
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

/// Runs `f` on a hashing thread and waits for it without blocking the async runtime.
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, AppError> {
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(f());
    });
    let sent = match queue().lock() {
        Ok(sender) => sender.send(job),
        Err(poisoned) => poisoned.into_inner().send(job),
    };
    if sent.is_err() {
        tracing::error!("the password hashing threads are gone");
        return Err(AppError::Internal);
    }
    answer.await.map_err(|_| {
        tracing::error!("a password hashing job ended without an answer");
        AppError::Internal
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn jobs_run_off_the_runtime_and_answer() {
        let name = super::run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("answer");
        assert!(name.is_some_and(|n| n.starts_with("password-hash-")));
        let sums = futures_sum().await;
        assert_eq!(sums, (0..10).map(|n| n * 2).collect::<Vec<_>>());
    }

    async fn futures_sum() -> Vec<u64> {
        let mut out = Vec::new();
        for n in 0..10u64 {
            out.push(super::run(move || n * 2).await.expect("answer"));
        }
        out
    }
}
