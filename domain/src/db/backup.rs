//! A consistent copy of a live SQLite database, for `server backup PATH`.
//!
//! `VACUUM INTO` reads the whole database inside one read transaction, so the copy is the
//! state of one commit while writers go on (WAL lets them), and it writes a compact file
//! with no `-wal` beside it: the copy is a database on its own, ready to serve. It is written
//! under a temporary name beside the target, checked, flushed to disk and only then linked
//! to its name, so a copy that exists under PATH is always whole. PostgreSQL is backed up
//! with its own tool, `pg_dump`, which does the same for a server (README, "Backups").

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

use super::{Conn, Db, DbError};

/// A finished backup.
#[derive(Debug)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already: a backup never replaces a file")]
    Exists(String),
    #[error(
        "a PostgreSQL database is backed up with pg_dump, e.g. \
         `pg_dump --format=custom --file {0} \"$DATABASE_URL\"` (README, \"Backups\")"
    )]
    Postgres(String),
    #[error("cannot write the backup {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("the copy written to {path} is damaged ({reason}); nothing was kept")]
    Damaged { path: String, reason: String },
}

/// Copies the SQLite database `db` to `path`, which must not exist yet.
pub async fn backup(db: &Db, path: &Path) -> Result<Backup, BackupError> {
    let started = Instant::now();
    let shown = path.display().to_string();
    if path.exists() {
        return Err(BackupError::Exists(shown));
    }
    let write_error = |reason: String| BackupError::Write {
        path: shown.clone(),
        reason,
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| write_error(e.to_string()))?;
    }
    let partial = partial_name(path);
    // A copy left by a backup that was killed: never whole, never used.
    let _ = std::fs::remove_file(&partial);
    let into = partial.to_string_lossy().into_owned();
    let vacuumed = db
        .run(move |conn| match conn {
            Conn::Sqlite(conn) => diesel::sql_query("VACUUM INTO ?")
                .bind::<Text, _>(into)
                .execute(conn)
                .map(|_| true)
                .map_err(DbError::from),
            Conn::Pg(_) => Ok(false),
        })
        .await;
    match vacuumed {
        Ok(true) => {}
        Ok(false) => return Err(BackupError::Postgres(shown)),
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(write_error(err.to_string()));
        }
    }
    let kept = check(&partial).and_then(|()| keep(&partial, path).map_err(write_error));
    let _ = std::fs::remove_file(&partial);
    kept?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Backup {
        path: path.to_owned(),
        bytes,
        took: started.elapsed(),
    })
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// SQLite's own check of every page and index of the copy.
fn check(copy: &Path) -> Result<(), BackupError> {
    #[derive(QueryableByName)]
    struct Verdict {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let damaged = |reason: String| BackupError::Damaged {
        path: copy.display().to_string(),
        reason,
    };
    let mut conn =
        SqliteConnection::establish(&copy.to_string_lossy()).map_err(|e| damaged(e.to_string()))?;
    conn.batch_execute("PRAGMA query_only = ON;")
        .map_err(|e| damaged(e.to_string()))?;
    let verdicts = diesel::sql_query("PRAGMA integrity_check")
        .load::<Verdict>(&mut conn)
        .map_err(|e| damaged(e.to_string()))?;
    match verdicts.as_slice() {
        [only] if only.integrity_check == "ok" => Ok(()),
        problems => Err(damaged(
            problems
                .iter()
                .map(|v| v.integrity_check.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// Flushes the checked copy and gives it its name; a hard link fails rather than replace a
/// file that appeared meanwhile.
fn keep(partial: &Path, path: &Path) -> Result<(), String> {
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::hard_link(partial, path).map_err(|e| e.to_string())?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The new name itself survives a power cut only once its folder is on disk.
        let _ = std::fs::File::open(folder).and_then(|dir| dir.sync_all());
    }
    Ok(())
}
