//! The live-update load tool (`./scripts/bench.sh live`): holds many open pages' event
//! streams against a running server while a steady rate of subscription toggles runs, and
//! reports how soon every page reached what was committed, how many requests the live
//! updates caused, and what the streams cost the server.
//!
//! ```text
//! cargo run --release -p server --example bench_live -- --base http://127.0.0.1:3400 \
//!     --users 12500 --streams 100000 --connections 250 --pages 100 \
//!     --writes-per-second 20 --seconds 30 --server-pid PID
//! ```
//!
//! `--connections 0` opens each stream on its own HTTP/1.1 connection (a process may hold
//! only so many sockets); otherwise all traffic shares that many HTTP/2 connections. Stream
//! `n` follows list page `1 + (n + n / users) % pages`, and the writes toggle topics of those
//! pages: a page is measured on the writes to the topics it shows (the others it is not told
//! of).
//!
//! Each stream behaves as an open topic page does: a `patch` moves the counts it names (each
//! carries its topic's count version) and, when they lead from the user's version it holds,
//! the flags; a newer `version` (or flags from elsewhere) makes it refetch its list. A page
//! has converged on a write once it holds the written topic's count at a version at least the
//! write's (read from the writer's list right after the write answered, so at least the
//! write's own; a later write of the same topic in between only makes the page wait for that
//! one too), and for pages of the writer the user's version the write returned. Latency
//! counts from the moment the write was sent.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use domain::ids::TopicId;
use domain::live::ViewVersion;
use futures::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use host::{cpu_ticks, lock, raise_open_file_limit, rss_kib, Random};
use page::{client, list, log_in, toggle, Page, Session};

mod host;
mod page;

#[derive(Parser)]
struct Args {
    /// The server to load; given more than once (instances sharing one database), stream
    /// `n` opens on the `n`-th in turn and so does write `n`: pages hear of writes made
    /// through other instances.
    #[arg(long = "base", default_value = "http://127.0.0.1:3400")]
    bases: Vec<String>,
    /// Benchmark users to log in (`bench1`…, seeded by `server bench-seed`).
    #[arg(long, default_value_t = 1250)]
    users: usize,
    /// Open pages, spread over the users (the server takes 8 per user).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// HTTP/2 connections all traffic shares (0: HTTP/1.1, a connection per stream).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// List pages the streams follow, spread evenly; the writes toggle topics of these.
    #[arg(long, default_value_t = 1)]
    pages: usize,
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
    /// The servers' processes, for their memory and CPU time (summed; RSS also each).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

/// What one page came to hold at one moment, after an event or a refetch: the user's version,
/// and the count versions of the rows that event or refetch gave.
struct Seen {
    at: Instant,
    user: u64,
    counts: Vec<(TopicId, i64)>,
}

/// One committed toggle.
struct Write {
    user: usize,
    /// The list page showing the toggled topic.
    page: usize,
    topic: TopicId,
    sent: Instant,
    version: ViewVersion,
    /// The topic's count version read right after the write answered.
    count_version: i64,
}

#[derive(Default)]
struct Counters {
    patches: AtomicU64,
    versions: AtomicU64,
    refetches: AtomicU64,
    failed_refetches: AtomicU64,
    failed_writes: AtomicU64,
    /// Stream openings answered `503` and tried again.
    open_retries: AtomicU64,
}

const PASSWORD: &str = "bench-password";

/// Each user's subscribed flags, read from their page the first time a write needs one.
#[derive(Default)]
struct Flags(Mutex<HashMap<(usize, i64), bool>>);

impl Flags {
    /// Flips `user`'s flag of `topic_id` (shown on list page `page`); the flag to write.
    async fn toggled(
        &self,
        session: &Session,
        base: &str,
        user: usize,
        topic_id: i64,
        page: usize,
    ) -> Result<bool, String> {
        let known = lock(&self.0).contains_key(&(user, topic_id));
        if !known {
            let listing = list(session, base, page).await?;
            let mut flags = lock(&self.0);
            for topic in &listing.topics {
                // A write of the same user's page may have flipped one meanwhile.
                flags.entry((user, topic.id.0)).or_insert(topic.subscribed);
            }
        }
        let mut flags = lock(&self.0);
        let flag = flags.entry((user, topic_id)).or_insert(false);
        *flag = !*flag;
        Ok(*flag)
    }
}

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
    let sockets = if args.connections == 0 {
        args.streams
    } else {
        args.connections
    };
    if limit < sockets as u64 + 100 {
        return Err(format!(
            "{sockets} connections need as many sockets; the open-file limit is {limit} \
             (HTTP/2, --connections, shares them)"
        ));
    }
    let pages_followed = args.pages.max(1);
    let bases: Vec<String> = args
        .bases
        .iter()
        .map(|base| base.trim_end_matches('/').to_owned())
        .collect();
    let base_of = |n: usize| bases[n % bases.len()].clone();
    let base = base_of(0);
    let rss = || -> Vec<u64> { args.server_pids.iter().map(|&pid| rss_kib(pid)).collect() };
    let cpu = || -> Option<u64> {
        (!args.server_pids.is_empty())
            .then(|| args.server_pids.iter().map(|&pid| cpu_ticks(pid)).sum())
    };
    let rss_before = rss();

    eprintln!("logging in {} users", args.users);
    let shared: Vec<reqwest::Client> = (0..args.connections)
        .map(|_| client(true))
        .collect::<Result<_, _>>()?;
    let sessions: Vec<Session> = stream::iter(1..=args.users)
        .map(|n| {
            let pool = match shared.get(n % shared.len().max(1)) {
                Some(pool) => Ok(pool.clone()),
                None => client(false),
            };
            let base = base.clone();
            async move { log_in(pool?, &base, n).await }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let sessions = Arc::new(sessions);

    // The topics the writes toggle: those of the pages followed, with the page of each.
    let mut topics: Vec<(i64, usize)> = Vec::new();
    for page in 1..=pages_followed {
        let listing = list(&sessions[0], &base, page).await?;
        topics.extend(listing.topics.iter().map(|t| (t.id.0, page)));
    }
    if topics.is_empty() {
        return Err("the pages followed list no topics".into());
    }

    eprintln!("opening {} streams", args.streams);
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut pages = Vec::with_capacity(args.streams);
    let opening = Arc::new(tokio::sync::Semaphore::new(64));
    for n in 0..args.streams {
        let user = n % args.users;
        let followed = 1 + (n + n / args.users) % pages_followed;
        let page = Page {
            session: sessions[user].clone(),
            page: followed,
            base: base_of(n),
            counters: counters.clone(),
        };
        let (opening, opened, stopped) = (opening.clone(), opened_tx.clone(), stopped.clone());
        pages.push((
            (user, followed),
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
    let rss_open = rss();
    eprintln!("{} streams open", args.streams);
    if let Some(file) = &args.ready_file {
        std::fs::write(file, "ready\n").map_err(|e| format!("{}: {e}", file.display()))?;
    }
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;

    eprintln!(
        "{} toggles a second for {} s",
        args.writes_per_second, args.seconds
    );
    let cpu_before = cpu();
    let events_before =
        counters.patches.load(Ordering::Relaxed) + counters.versions.load(Ordering::Relaxed);
    let refetches_before = counters.refetches.load(Ordering::Relaxed);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let flags = Arc::new(Flags::default());
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / args.writes_per_second.max(1));
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let writing_started = Instant::now();
    let total_writes = u64::from(args.writes_per_second) * args.seconds;
    let mut in_flight = Vec::new();
    for n in 0..total_writes as usize {
        ticker.tick().await;
        let user = random.below(args.users);
        let (topic_id, page) = topics[random.below(topics.len())];
        let (session, base, writes, counters, flags) = (
            sessions[user].clone(),
            base_of(n),
            writes.clone(),
            counters.clone(),
            flags.clone(),
        );
        // Each write in a task of its own: a slow answer does not hold back the next write.
        in_flight.push(tokio::spawn(async move {
            let subscribe = match flags.toggled(&session, &base, user, topic_id, page).await {
                Ok(subscribe) => subscribe,
                Err(err) => {
                    counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    eprintln!("a write could not read its page: {err}");
                    return;
                }
            };
            let sent = Instant::now();
            let written = match toggle(&session, &base, topic_id, subscribe).await {
                Ok(version) => version,
                Err(err) => {
                    counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    eprintln!("a write failed: {err}");
                    return;
                }
            };
            let topic = TopicId(topic_id);
            let count_version = match list(&session, &base, page).await {
                Ok(listing) => listing
                    .topics
                    .iter()
                    .find(|row| row.id == topic)
                    .map(|row| row.count_version),
                Err(err) => {
                    eprintln!("a write's page could not be read after it: {err}");
                    None
                }
            };
            match count_version {
                Some(count_version) => lock(&writes).push(Write {
                    user,
                    page,
                    topic,
                    sent,
                    version: written,
                    count_version,
                }),
                None => {
                    counters.failed_writes.fetch_add(1, Ordering::Relaxed);
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
    let cpu_after = cpu();
    let window = writing_started.elapsed();
    let events = counters.patches.load(Ordering::Relaxed)
        + counters.versions.load(Ordering::Relaxed)
        - events_before;
    let refetches = counters.refetches.load(Ordering::Relaxed) - refetches_before;
    let rss_end = rss();
    let _ = stop.send(true);

    let mut histories = Vec::with_capacity(pages.len());
    for (followed, page) in pages {
        let history = page.await.map_err(|e| e.to_string())?;
        histories.push((followed, history));
    }
    let writes = std::mem::take(&mut *lock(&writes));
    // A page is measured on the writes to the topics it shows.
    let (mut latencies, mut missed) = (Vec::new(), 0_u64);
    for ((user, followed), history) in &histories {
        for write in writes.iter().filter(|write| write.page == *followed) {
            let own = write.user == *user;
            // The newest count version of the topic held so far, as the page keeps it.
            let mut held = 0;
            let reached = history.iter().find(|seen| {
                if let Some(&(_, version)) = seen.counts.iter().find(|(t, _)| *t == write.topic) {
                    held = held.max(version);
                }
                held >= write.count_version && (!own || seen.user >= write.version.user)
            });
            match reached {
                Some(seen) => latencies.push(seen.at.saturating_duration_since(write.sent)),
                None => missed += 1,
            }
        }
    }
    let pairs = latencies.len() as u64 + missed;
    latencies.sort_unstable();
    let percentile = |p: f64| -> String {
        if latencies.is_empty() {
            return "-".into();
        }
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        format!("{:.0}", latencies[index].as_secs_f64() * 1000.0)
    };
    let per_second = |n: u64| n as f64 / window.as_secs_f64();
    // The sum over the servers, and each one's after a slash when there are several.
    let mib = |kib: Vec<u64>| -> String {
        let shown = |k: u64| format!("{:.1}", k as f64 / 1024.0);
        match kib.as_slice() {
            [] => "-".into(),
            [one] => shown(*one),
            each => std::iter::once(shown(each.iter().sum()))
                .chain(each.iter().map(|&k| shown(k)))
                .collect::<Vec<_>>()
                .join("/"),
        }
    };
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
        "RESULT streams={} users={} connections={} pages={} writes={} writes_per_s={:.1} page_write_pairs={} refetches_per_write={:.2} converge_p50_ms={} converge_p99_ms={} converge_max_ms={} not_converged={} events_per_s={:.0} patches={} versions={} live_requests_per_s={:.1} failed_refetches={} failed_writes={} open_retries={} server_cpu_ms_per_write={} rss_before_mib={} rss_open_mib={} rss_end_mib={}",
        args.streams,
        args.users,
        args.connections,
        pages_followed,
        writes.len(),
        writes.len() as f64 / writing.as_secs_f64(),
        pairs,
        refetches as f64 / writes.len().max(1) as f64,
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
        counters.open_retries.load(Ordering::Relaxed),
        cpu_ms_per_write,
        mib(rss_before),
        mib(rss_open),
        mib(rss_end),
    );
    Ok(())
}
