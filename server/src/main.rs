use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use server::cli::{self, Cli, Command};
use server::config::DEFAULT_LOG_FILTER;
use server::Config;

fn main() -> ExitCode {
    keep_large_allocations_in_mmap();
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

/// Argon2 allocates about 19 MiB per password check. After the first such buffer is freed,
/// glibc raises its mmap threshold above that size, so later buffers come from the heap and
/// fragment it: two hundred logins left the server at 170–550 MiB resident. A fixed threshold
/// keeps large buffers in mmap, handed back to the system when freed (14 MiB after the same
/// logins).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_in_mmap() {
    // SAFETY: mallopt only sets an allocator tunable; it runs before any other thread exists.
    let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    if applied == 0 {
        eprintln!("warning: could not set the allocator's mmap threshold");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_in_mmap() {}

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
