//! The server under test: its database (a temporary SQLite file or a scratch PostgreSQL
//! database) and its process, with what an operator does beside it (the CLI, `/metrics`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{TestClient, METRICS_TOKEN, PASSWORD};

/// A test's database, removed when the last handle to it drops.
#[derive(Clone)]
pub struct Database(Arc<Place>);

enum Place {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    SqliteFile(PathBuf),
    Postgres(domain::db::scratch::ScratchDatabase),
}

impl Database {
    /// An empty database on the backend the tests run on.
    pub fn new() -> Database {
        if domain::db::scratch::tests_use_postgres() {
            Database(Arc::new(Place::Postgres(
                domain::db::scratch::ScratchDatabase::create(),
            )))
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            Database(Arc::new(Place::Sqlite {
                path: dir.path().join("app.db"),
                _dir: dir,
            }))
        }
    }

    /// An empty SQLite database in `folder` (which outlives it), whatever backend the tests
    /// run on: for a test of the file's surroundings (a full disk, say).
    pub fn sqlite_in(folder: &std::path::Path) -> Database {
        let dir = tempfile::tempdir_in(folder).expect("temp dir");
        Database(Arc::new(Place::Sqlite {
            path: dir.path().join("app.db"),
            _dir: dir,
        }))
    }

    /// An existing SQLite file (a backup, say), left in place when the handle drops.
    pub fn sqlite_in_file(path: &std::path::Path) -> Database {
        Database(Arc::new(Place::SqliteFile(path.to_owned())))
    }

    /// `DATABASE_URL` for a server on this database.
    pub fn url(&self) -> String {
        match &*self.0 {
            Place::Sqlite { path, .. } | Place::SqliteFile(path) => {
                format!("sqlite://{}", path.display())
            }
            Place::Postgres(scratch) => scratch.url().to_owned(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(&*self.0, Place::Postgres(_))
    }

    pub(super) async fn open(&self) -> domain::db::Db {
        domain::db::Db::open(&self.url())
            .await
            .expect("open the server's database")
    }
}

/// A running server process. Dropping it kills the process.
pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub db: Database,
    logs: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::spawn(&Database::new(), &[])
    }

    /// Starts a server with extra environment variables.
    pub fn start_with(vars: &[(&str, &str)]) -> TestServer {
        Self::spawn(&Database::new(), vars)
    }

    /// Starts a server on an existing database (used to restart).
    pub fn start_on(db: &Database) -> TestServer {
        Self::spawn(db, &[])
    }

    /// [`Self::start_on`] with extra environment variables.
    pub fn start_on_with(db: &Database, vars: &[(&str, &str)]) -> TestServer {
        Self::spawn(db, vars)
    }

    fn spawn(db: &Database, vars: &[(&str, &str)]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            // Tests sign many people up from one address; a test of the limit sets its own.
            .env("SIGNUPS_PER_IP_PER_HOUR", "10000")
            .env("METRICS_TOKEN", METRICS_TOKEN)
            // No load balancer to wait for; a test of the drain sets its own.
            .env("SHUTDOWN_DRAIN_SECONDS", "0")
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split("listening on ").nth(1) {
                        // A text line ends with the address; a JSON line goes on after it.
                        let addr = addr.split(['"', ' ']).next().unwrap_or_default();
                        let _ = tx.send(addr.trim().to_owned());
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(stderr) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
                }
                panic!(
                    "the server did not start: {err}\n{:?}",
                    logs.lock().map(|l| l.clone())
                )
            });
        TestServer {
            child: Some(child),
            base,
            db: db.clone(),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A raw connection, for clients no HTTP library would imitate.
    pub async fn raw_connection(&self) -> tokio::net::TcpStream {
        let address = self.base.trim_start_matches("http://");
        tokio::net::TcpStream::connect(address)
            .await
            .expect("connect")
    }

    /// A browser-like client: its own cookie jar, sends this site's Origin on POSTs.
    pub fn client(&self) -> TestClient {
        TestClient::new(&self.base)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Sends SIGTERM and returns at once (the shutdown goes on).
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for a clean exit; returns the database for a restart.
    pub fn stop(self) -> Database {
        self.terminate();
        self.wait_for_exit()
    }

    /// Waits for the exit a SIGTERM began, which must be clean; returns the database.
    pub fn wait_for_exit(mut self) -> Database {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                assert!(exit.success(), "graceful shutdown exits with 0, got {exit}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.db.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl TestServer {
    /// Creates a staff account through the CLI, as an operator would.
    pub fn create_staff(&self, username: &str) {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_server"))
                .args(["create-user", username, "--staff"])
                .env("DATABASE_URL", self.db.url())
                .env("SUBSCRIPTIONS_PASSWORD", PASSWORD),
        );
    }

    /// Runs an account command of the CLI (`unmake-staff root`, say) against this server's
    /// database, as an operator would; its output.
    pub fn account_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env("DATABASE_URL", self.db.url())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run the account command")
    }

    /// A counter from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (value, body) = self.metric_series(name).await;
        value
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{body}"))
    }

    /// The value of one series of `/metrics` (its name and labels exactly as printed), if
    /// present, and the whole text.
    pub async fn metric_series(&self, series: &str) -> (Option<String>, String) {
        let body = reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        let value = body
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{series} ")))
            .map(|value| value.trim().to_owned());
        (value, body)
    }

    /// The activity feed straight from the database: (topic_id, topic_name, action).
    pub async fn activity_rows(&self) -> Vec<(Option<i64>, String, String)> {
        let db = self.db.open().await;
        let page = db
            .run(|conn| domain::activity::page(conn, 1).map_err(domain::error::DomainError::from))
            .await
            .expect("activity");
        page.items
            .into_iter()
            .map(|item| (item.topic_id.map(|id| id.0), item.topic_name, item.action))
            .collect()
    }
}

/// Runs a command that must succeed (its standard error is the failure message); its
/// standard output.
pub fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
