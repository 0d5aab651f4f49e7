//! Command-line interface: serve (the default) and account administration.

use std::io::BufRead;

use clap::{Parser, Subcommand};

use domain::db::Db;
use domain::services::Services;
use domain::signals::account_changes::HEARD_WITHIN;
use domain::signals::AccountChange;
use domain::users::{create_user, Password, Username};

use crate::Config;

#[derive(Debug, Parser)]
#[command(name = "server", about = "The Subscriptions web server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the app (the default).
    Serve,
    /// Create an account. The password comes from $SUBSCRIPTIONS_PASSWORD, or else from the
    /// first line of standard input.
    CreateUser {
        username: String,
        /// Make the account staff (may rename and delete topics).
        #[arg(long)]
        staff: bool,
    },
    /// Make an account staff. Running servers apply it before this returns.
    MakeStaff { username: String },
    /// Take staff away from an account: its next request has no staff forms and no staff
    /// rights, on every running server.
    UnmakeStaff { username: String },
    /// Sign an account out everywhere: every session it has ends.
    EndSessions { username: String },
    /// Delete an account with its subscriptions; its sessions end.
    DeleteUser { username: String },
    /// Write a consistent copy of the SQLite database to PATH (which must not exist) while
    /// servers go on using it; serve the copy with DATABASE_URL=sqlite://PATH. A PostgreSQL
    /// database is backed up with pg_dump instead (README, "Backups").
    Backup { path: std::path::PathBuf },
    /// Fill an empty database with a benchmark dataset (users bench1…benchN, password
    /// "bench-password"): `small` = 203 topics, 1,000 users, 10,000 subscriptions; `large` =
    /// 10,000 topics, 100,000 users, 1,000,000 subscriptions.
    BenchSeed {
        #[arg(long, default_value = "small")]
        profile: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
    #[error(transparent)]
    Database(#[from] domain::db::OpenError),
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Backup(#[from] domain::db::backup::BackupError),
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
}

/// Runs `command` (serving is one of them) with `config`.
pub async fn run(command: Command, config: Config) -> Result<(), CliError> {
    use AccountChange::{Deleted, SessionsEnded, StaffGranted, StaffRevoked};
    match command {
        Command::Serve => Ok(crate::serve(config).await?),
        Command::CreateUser { username, staff } => {
            create_user_command(&config, &username, staff).await
        }
        Command::MakeStaff { username } => {
            change_account_command(&config, &username, StaffGranted).await
        }
        Command::UnmakeStaff { username } => {
            change_account_command(&config, &username, StaffRevoked).await
        }
        Command::EndSessions { username } => {
            change_account_command(&config, &username, SessionsEnded).await
        }
        Command::DeleteUser { username } => {
            change_account_command(&config, &username, Deleted).await
        }
        Command::Backup { path } => backup_command(&config, &path).await,
        Command::BenchSeed { profile } => bench_seed_command(&config, &profile).await,
    }
}

async fn backup_command(config: &Config, path: &std::path::Path) -> Result<(), CliError> {
    let db = Db::open(&config.database_url).await?;
    let backup = domain::db::backup::backup(&db, path).await?;
    println!(
        "backed up to {} ({} KiB, checked) in {:.1} s",
        backup.path.display(),
        backup.bytes.div_ceil(1024),
        backup.took.as_secs_f64()
    );
    Ok(())
}

async fn bench_seed_command(config: &Config, profile: &str) -> Result<(), CliError> {
    let profile = domain::bench::Profile::named(profile).ok_or_else(|| {
        CliError::Rejected(format!("unknown profile `{profile}`: use small or large"))
    })?;
    let db = Db::open(&config.database_url).await?;
    domain::bench::ensure_no_accounts(&db)
        .await
        .map_err(|e| CliError::Rejected(e.to_string()))?;
    let seeded = domain::bench::seed(&db, profile)
        .await
        .map_err(|e| CliError::Rejected(e.to_string()))?;
    println!(
        "seeded {} topics, {} users, {} subscriptions in {:.1} s",
        seeded.topics,
        seeded.users,
        seeded.subscriptions,
        seeded.took.as_secs_f64()
    );
    Ok(())
}

async fn create_user_command(config: &Config, username: &str, staff: bool) -> Result<(), CliError> {
    let raw_password = match std::env::var("SUBSCRIPTIONS_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(CliError::Stdin)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let username = Username::parse(username).map_err(|e| CliError::Rejected(e.to_string()))?;
    let password =
        Password::parse(&raw_password, &username).map_err(|e| CliError::Rejected(e.to_string()))?;
    let db = Db::open(&config.database_url).await?;
    let user = create_user(&db, username, password, staff)
        .await
        .map_err(|e| CliError::Rejected(e.to_string()))?;
    println!(
        "created {} “{}” (id {})",
        if user.is_staff { "staff user" } else { "user" },
        user.username,
        user.id
    );
    Ok(())
}

/// Applies an administrator's change to an account, then waits until every running server
/// has had time to read it (`domain::signals::account_changes`).
async fn change_account_command(
    config: &Config,
    username: &str,
    change: AccountChange,
) -> Result<(), CliError> {
    let db = Db::open(&config.database_url).await?;
    let services = Services::for_a_command(db);
    let user_id = domain::users::admin::change_account(&services, username, change)
        .await
        .map_err(|e| CliError::Rejected(e.to_string()))?;
    tokio::time::sleep(HEARD_WITHIN).await;
    let done = match change {
        AccountChange::StaffGranted => "is staff now",
        AccountChange::StaffRevoked => "is no longer staff",
        AccountChange::SessionsEnded => "is signed out everywhere",
        AccountChange::Deleted => "is deleted",
    };
    println!("“{username}” (id {user_id}) {done}");
    Ok(())
}
