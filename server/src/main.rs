use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use server::cli::{self, Cli, Command};
use server::config::DEFAULT_LOG_FILTER;
use server::Config;

/// mimalloc, without transparent huge pages. Under a 90/10 read/write mix nearly every page is
/// assembled or rendered anew, and with glibc's allocator a quarter of that time went to
/// `malloc`/`free` and their arena locks; mimalloc serves it about 20 % faster (BENCHMARKS.md,
/// "Busy days, second step"). Its huge pages would inflate the memory of ten thousand open
/// streams (368 MiB against 242 with glibc); without them it stays at ~250 MiB. Large buffers
/// (Argon2's 19 MiB per password check) are handed back to the system after use: 58 MiB
/// resident after 200 logins and a mixed run. The `system-allocator` feature keeps the
/// system's instead, for heap profilers that watch `malloc` (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let parsed = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => logs
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        Ok(other) => {
            eprintln!("error: LOG_FORMAT must be `text` or `json`, not `{other}`");
            return ExitCode::from(2);
        }
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = cli::run(parsed.command.unwrap_or(Command::Serve), config).await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = err.to_string();
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
