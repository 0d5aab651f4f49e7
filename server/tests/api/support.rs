//! Starts the real server binary on port 0 with a database of its own (a temporary SQLite
//! file, or with `TEST_BACKEND=postgres` a scratch PostgreSQL database), and talks to it over
//! HTTP like a browser would (cookies kept, redirects not followed).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, LOCATION, ORIGIN};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

pub const PASSWORD: &str = "correct horse battery";

/// The operator's token for `/metrics` on test servers.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// A test's database, removed when the last handle to it drops.
#[derive(Clone)]
pub struct Database(Arc<Place>);

enum Place {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
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

    /// `DATABASE_URL` for a server on this database.
    pub fn url(&self) -> String {
        match &*self.0 {
            Place::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Place::Postgres(scratch) => scratch.url().to_owned(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(&*self.0, Place::Postgres(_))
    }

    async fn open(&self) -> domain::db::Db {
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

#[derive(Clone)]
pub struct TestClient {
    pub http: Client,
    pub base: String,
}

impl TestClient {
    /// A browser-like client of the site at `base` (a server, or a load balancer in front).
    pub fn new(base: &str) -> TestClient {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(base).expect("origin"));
        TestClient {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .default_headers(headers)
                .build()
                .expect("client"),
            base: base.to_owned(),
        }
    }

    /// The same browser (cookie jar and all) pointed at another server, e.g. after a restart.
    pub fn against(&self, server: &TestServer) -> TestClient {
        TestClient {
            http: self.http.clone(),
            base: server.base.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("GET")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(format!("{}{}", self.base, path))
            // This client's server, also after `against` (the default is the first server's).
            .header(ORIGIN, &self.base)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    pub async fn signup(&self, username: &str) -> Response {
        self.post_form("/signup", &[("username", username), ("password", PASSWORD)])
            .await
    }

    pub async fn login(&self, username: &str, password: &str, next: &str) -> Response {
        self.post_form(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub async fn expect_redirect(response: Response, to: &str) {
    let status = response.status();
    let target = location(&response);
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "expected 303 to {to}; body: {body}"
    );
    assert_eq!(target, to);
}

/// A client signed up as `name`, on the topic page.
pub async fn member(server: &TestServer, name: &str) -> TestClient {
    let client = server.client();
    expect_redirect(client.signup(name).await, "/topics/").await;
    client
}

/// A client logged in to a staff account `name`, made through the CLI.
pub async fn staff(server: &TestServer, name: &str) -> TestClient {
    server.create_staff(name);
    let client = server.client();
    expect_redirect(client.login(name, PASSWORD, "").await, "/topics/").await;
    client
}

/// The `data-topic-name` values of a topics page, in page order.
pub fn topic_names(html: &str) -> Vec<String> {
    html.split("data-topic-name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

impl TestServer {
    /// Creates a staff account through the CLI, as an operator would.
    pub fn create_staff(&self, username: &str) {
        let output = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["create-user", username, "--staff"])
            .env("DATABASE_URL", self.db.url())
            .env("SUBSCRIPTIONS_PASSWORD", PASSWORD)
            .output()
            .expect("run create-user");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
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

/// Holds the database's write lock from another connection (as another process busy writing
/// would) for `duration`; returns once the lock is held. Join the handle to wait for release.
/// On PostgreSQL: every table locked against writers, readers still let through.
pub fn hold_write_lock(db: &Database, duration: Duration) -> std::thread::JoinHandle<()> {
    use diesel::connection::SimpleConnection;
    let target = domain::db::Target::parse(&db.url()).expect("database URL");
    let take = if db.is_postgres() {
        "BEGIN; LOCK TABLE users, topics, topic_subscribers, topic_activities, sessions \
         IN EXCLUSIVE MODE;"
    } else {
        "BEGIN IMMEDIATE;"
    };
    let (held, acquired) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut conn = target.connect().expect("open the database");
        conn.batch_execute(take).expect("take the write lock");
        let _ = held.send(());
        std::thread::sleep(duration);
        conn.batch_execute("COMMIT;")
            .expect("release the write lock");
    });
    acquired
        .recv_timeout(Duration::from_secs(10))
        .expect("the write lock was taken");
    holder
}

/// Runs SQL statements on a server's database, as an operator (or a crash) might.
pub async fn execute_sql(db: &Database, sql: impl Into<String>) {
    use diesel::connection::SimpleConnection;
    let sql = sql.into();
    db.open()
        .await
        .run(move |conn| {
            conn.batch_execute(&sql)
                .map_err(domain::error::DomainError::from)
        })
        .await
        .expect("execute SQL");
}

/// The number `sql` selects as a column named `n`.
pub async fn count_sql(db: &Database, sql: impl Into<String>) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = sql.into();
    db.open()
        .await
        .run(move |conn| {
            diesel::sql_query(sql)
                .get_result::<Count>(conn)
                .map_err(domain::error::DomainError::from)
        })
        .await
        .expect("count")
        .n
}

/// One topic element of a list page: (id, name, subscribers, subscribed).
pub fn topics(html: &str) -> Vec<(i64, String, i64, bool)> {
    html.split("<li")
        .skip(1)
        .filter(|item| item.contains("data-topic-id="))
        .map(|item| {
            let attr = |name: &str| -> String {
                item.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                attr("data-topic-id").parse().unwrap_or(-1),
                attr("data-topic-name"),
                attr("data-subscribers").parse().unwrap_or(-1),
                attr("data-subscribed") == "true",
            )
        })
        .collect()
}

impl TestClient {
    pub async fn topics(&self) -> Vec<(i64, String, i64, bool)> {
        let response = self.get("/topics/").await;
        assert_eq!(response.status(), StatusCode::OK);
        topics(&response.text().await.expect("body"))
    }

    /// Subscribes through the plain form, which answers with a redirect to the list.
    pub async fn subscribe(&self, topic_id: i64) {
        expect_redirect(
            self.post_form(&format!("/topics/subscribe/{topic_id}/"), &[])
                .await,
            "/topics/",
        )
        .await;
    }

    pub async fn topic_id(&self, name: &str) -> i64 {
        self.topics()
            .await
            .into_iter()
            .find(|t| t.1 == name)
            .map(|t| t.0)
            .unwrap_or_else(|| panic!("no topic {name}"))
    }
}
