//! The live-update load tool (`./scripts/bench.sh live`): holds many open pages' event
//! streams against a running server while a steady rate of subscription toggles runs, and
//! reports how soon every page reached what was committed, how many requests the live
//! updates caused, and what the streams cost the server.
//!
//! ```text
//! cargo run --release -p server --example bench_live -- --base http://127.0.0.1:3400 \
//!     --users 1250 --streams 10000 --writes-per-second 20 --seconds 30 --server-pid PID
//! ```
//!
//! Each stream behaves as an open topic page does: a `patch` that leads from the version it
//! holds moves it there; a newer `version` (or a patch from elsewhere) makes it refetch its
//! list. A page has converged on a write once it holds a version at least the write's (the
//! version the write's server function returned; for pages of the writer, its own part too).
//! Latency counts from the moment the write was sent.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use domain::live::{Patch, ViewVersion};
use domain::topics::TopicListing;
use futures::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// The server (or load balancer) to load.
    #[arg(long, default_value = "http://127.0.0.1:3400")]
    base: String,
    /// Benchmark users to log in (`bench1`…, seeded by `server bench-seed`).
    #[arg(long, default_value_t = 1250)]
    users: usize,
    /// Open pages, spread over the users (the server takes 8 per user).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    #[arg(long, default_value_t = 20)]
    writes_per_second: u32,
    /// How long the writes run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// How long the streams stay open and idle before the writes (for a measurement of the
    /// server's hot path meanwhile); `--ready-file` is written when they are all open.
    #[arg(long, default_value_t = 0)]
    idle_seconds: u64,
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// The server's process, for its memory and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// One page's state at one moment: what it holds after an event or a refetch.
#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    version: ViewVersion,
}

/// One committed toggle.
struct Write {
    user: usize,
    sent: Instant,
    version: ViewVersion,
}

#[derive(Default)]
struct Counters {
    patches: AtomicU64,
    versions: AtomicU64,
    refetches: AtomicU64,
    failed_refetches: AtomicU64,
    failed_writes: AtomicU64,
}

const PASSWORD: &str = "bench-password";

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(err) = run(args).await {
        eprintln!("bench_live: {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let limit = raise_open_file_limit();
    if limit < args.streams as u64 + 100 {
        return Err(format!(
            "{} streams need as many sockets; the open-file limit is {limit}",
            args.streams
        ));
    }
    let base = args.base.trim_end_matches('/').to_owned();
    let rss_before = args.server_pid.map(rss_kib);

    eprintln!("logging in {} users", args.users);
    let clients: Vec<reqwest::Client> = stream::iter(1..=args.users)
        .map(|n| log_in(&base, n))
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let clients = Arc::new(clients);

    // What each user's first page holds: the topics the writes toggle, and their flags.
    let first = list(&clients[0], &base).await?;
    let topic_ids: Vec<i64> = first.topics.iter().map(|t| t.id.0).collect();
    if topic_ids.is_empty() {
        return Err("the first page lists no topics".into());
    }
    let flags: Vec<Vec<bool>> = stream::iter(clients.iter())
        .map(|client| async {
            let listing = list(client, &base).await?;
            Ok::<_, String>(
                topic_ids
                    .iter()
                    .map(|id| listing.topics.iter().any(|t| t.id.0 == *id && t.subscribed))
                    .collect(),
            )
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    eprintln!("opening {} streams", args.streams);
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut pages = Vec::with_capacity(args.streams);
    let opening = Arc::new(tokio::sync::Semaphore::new(64));
    for n in 0..args.streams {
        let user = n % args.users;
        let page = Page {
            client: clients[user].clone(),
            base: base.clone(),
            counters: counters.clone(),
        };
        let (opening, opened, stopped) = (opening.clone(), opened_tx.clone(), stopped.clone());
        pages.push((
            user,
            tokio::spawn(async move { page.follow(opening, opened, stopped).await }),
        ));
    }
    drop(opened_tx);
    for _ in 0..args.streams {
        match opened_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(err),
            None => return Err("a stream ended before it opened".into()),
        }
    }
    let rss_open = args.server_pid.map(rss_kib);
    eprintln!("{} streams open", args.streams);
    if let Some(file) = &args.ready_file {
        std::fs::write(file, "ready\n").map_err(|e| format!("{}: {e}", file.display()))?;
    }
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;

    eprintln!(
        "{} toggles a second for {} s",
        args.writes_per_second, args.seconds
    );
    let cpu_before = args.server_pid.map(cpu_ticks);
    let events_before =
        counters.patches.load(Ordering::Relaxed) + counters.versions.load(Ordering::Relaxed);
    let refetches_before = counters.refetches.load(Ordering::Relaxed);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new(Mutex::new(flags));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / args.writes_per_second.max(1));
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let writing_started = Instant::now();
    let total_writes = u64::from(args.writes_per_second) * args.seconds;
    let mut in_flight = Vec::new();
    for _ in 0..total_writes {
        ticker.tick().await;
        let user = random.below(args.users);
        let topic = random.below(topic_ids.len());
        let subscribe = {
            let mut flags = lock(&flags);
            let flag = &mut flags[user][topic];
            *flag = !*flag;
            *flag
        };
        let (client, base, writes, counters) = (
            clients[user].clone(),
            base.clone(),
            writes.clone(),
            counters.clone(),
        );
        let topic_id = topic_ids[topic];
        in_flight.push(tokio::spawn(async move {
            let sent = Instant::now();
            match toggle(&client, &base, topic_id, subscribe).await {
                Ok(version) => lock(&writes).push(Write {
                    user,
                    sent,
                    version,
                }),
                Err(err) => {
                    counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    eprintln!("a write failed: {err}");
                }
            }
        }));
    }
    for write in in_flight {
        let _ = write.await;
    }
    let writing = writing_started.elapsed();
    // Time for the last writes to reach every page (far more than the target's second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_after = args.server_pid.map(cpu_ticks);
    let window = writing_started.elapsed();
    let events = counters.patches.load(Ordering::Relaxed)
        + counters.versions.load(Ordering::Relaxed)
        - events_before;
    let refetches = counters.refetches.load(Ordering::Relaxed) - refetches_before;
    let rss_end = args.server_pid.map(rss_kib);
    let _ = stop.send(true);

    let mut histories = Vec::with_capacity(pages.len());
    for (user, page) in pages {
        let history = page.await.map_err(|e| e.to_string())?;
        histories.push((user, history));
    }
    let writes = std::mem::take(&mut *lock(&writes));
    let (mut latencies, mut missed) = (Vec::new(), 0_u64);
    for (user, history) in &histories {
        for write in &writes {
            let own = write.user == *user;
            let reached = history.iter().find(|seen| {
                seen.version.shared >= write.version.shared
                    && (!own || seen.version.user >= write.version.user)
            });
            match reached {
                Some(seen) => latencies.push(seen.at.saturating_duration_since(write.sent)),
                None => missed += 1,
            }
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> String {
        if latencies.is_empty() {
            return "-".into();
        }
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        format!("{:.0}", latencies[index].as_secs_f64() * 1000.0)
    };
    let per_second = |n: u64| n as f64 / window.as_secs_f64();
    let mib = |kib: Option<u64>| kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu_ms_per_write = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if !writes.is_empty() => format!(
            "{:.2}",
            (after - before) as f64 / ticks_per_second * 1000.0 / writes.len() as f64
        ),
        _ => "-".into(),
    };

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "RESULT streams={} users={} writes={} writes_per_s={:.1} converge_p50_ms={} converge_p99_ms={} converge_max_ms={} not_converged={} events_per_s={:.0} patches={} versions={} live_requests_per_s={:.1} failed_refetches={} failed_writes={} server_cpu_ms_per_write={} rss_before_mib={} rss_open_mib={} rss_end_mib={}",
        args.streams,
        args.users,
        writes.len(),
        writes.len() as f64 / writing.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        missed,
        per_second(events),
        counters.patches.load(Ordering::Relaxed),
        counters.versions.load(Ordering::Relaxed),
        per_second(refetches),
        counters.failed_refetches.load(Ordering::Relaxed),
        counters.failed_writes.load(Ordering::Relaxed),
        cpu_ms_per_write,
        mib(rss_before),
        mib(rss_open),
        mib(rss_end),
    );
    Ok(())
}

/// One open page: its user's session, following the stream.
struct Page {
    client: reqwest::Client,
    base: String,
    counters: Arc<Counters>,
}

impl Page {
    /// Follows the stream until told to stop; what the page held, and when.
    async fn follow(
        self,
        opening: Arc<tokio::sync::Semaphore>,
        opened: tokio::sync::mpsc::UnboundedSender<Result<(), String>>,
        mut stopped: watch::Receiver<bool>,
    ) -> Vec<Seen> {
        let mut history = Vec::new();
        // Opened a few at a time, as pages of a crowd arriving, not all in one instant.
        let mut permit = opening.acquire().await.ok();
        let response = self
            .client
            .get(format!("{}/topics/events/", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| match r.status() {
                reqwest::StatusCode::OK => Ok(r),
                status => Err(format!("the stream was refused: {status}")),
            });
        let mut response = match response {
            Ok(response) => response,
            Err(err) => {
                let _ = opened.send(Err(err));
                return history;
            }
        };
        let mut buffer = String::new();
        let mut held: Option<ViewVersion> = None;
        loop {
            let chunk = tokio::select! {
                _ = stopped.changed() => return history,
                chunk = response.chunk() => chunk,
            };
            let Ok(Some(bytes)) = chunk else {
                if held.is_none() {
                    let _ = opened.send(Err("a stream ended before its first event".into()));
                }
                return history;
            };
            buffer.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let data = block.lines().find_map(|line| line.strip_prefix("data: "));
                let (Some(data), Some(kind)) =
                    (data, block.lines().find_map(|l| l.strip_prefix("event: ")))
                else {
                    continue; // a heartbeat
                };
                let newer = match kind {
                    "patch" => {
                        self.counters.patches.fetch_add(1, Ordering::Relaxed);
                        let Ok(patch) = serde_json::from_str::<Patch>(data) else {
                            continue;
                        };
                        match held {
                            Some(shown) if patch.applies_to(&shown) => {
                                held = Some(patch.to);
                                history.push(Seen {
                                    at: Instant::now(),
                                    version: patch.to,
                                });
                                continue;
                            }
                            _ => patch.to,
                        }
                    }
                    _ => {
                        self.counters.versions.fetch_add(1, Ordering::Relaxed);
                        let Ok(version) = serde_json::from_str::<ViewVersion>(data) else {
                            continue;
                        };
                        if held.is_none() {
                            // The first event: the page was just loaded at this version.
                            held = Some(version);
                            drop(permit.take());
                            let _ = opened.send(Ok(()));
                            continue;
                        }
                        version
                    }
                };
                if held.is_some_and(|shown| !newer.is_newer_than(&shown)) {
                    continue;
                }
                self.counters.refetches.fetch_add(1, Ordering::Relaxed);
                match list(&self.client, &self.base).await {
                    Ok(listing) => {
                        held = Some(listing.version);
                        history.push(Seen {
                            at: Instant::now(),
                            version: listing.version,
                        });
                    }
                    Err(_) => {
                        self.counters
                            .failed_refetches
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn log_in(base: &str, n: usize) -> Result<reqwest::Client, String> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", format!("bench{n}").as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::SEE_OTHER {
        return Err(format!("login of bench{n}: {}", response.status()));
    }
    Ok(client)
}

/// The first page of the list, as an open page refetches it (its server function).
async fn list(client: &reqwest::Client, base: &str) -> Result<TopicListing, String> {
    let response = client
        .post(format!("{base}/api/list_topics"))
        .form(&[("request[page]", "1"), ("request[query]", "")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("list_topics: {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

async fn toggle(
    client: &reqwest::Client,
    base: &str,
    topic_id: i64,
    subscribe: bool,
) -> Result<ViewVersion, String> {
    let action = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    let response = client
        .post(format!("{base}/api/{action}"))
        .form(&[("topic_id", topic_id.to_string())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{action}: {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Raises this process's open-file limit to its hard limit; the limit now.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// The server's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The server's CPU time so far (user and system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which is in parentheses.
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

/// A small xorshift generator: which user writes and which topic it toggles.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}
