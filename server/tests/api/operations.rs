//! Operating several instances: a rolling restart behind nginx with the configuration the
//! README documents (`deploy/nginx.conf`), while people read and write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{count_sql, expect_redirect, topics, Database, TestClient, TestServer};

/// nginx, run as a foreground process in a folder of its own with `deploy/nginx.conf`
/// pointed at the given ports. Killed when dropped.
struct Nginx {
    child: Child,
    _folder: tempfile::TempDir,
}

impl Nginx {
    fn start(front: u16, instances: [u16; 2]) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .expect("nginx is installed (scripts/setup.sh installs it)");
        let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
        let config = std::fs::read_to_string(&documented).expect("deploy/nginx.conf");
        let config = config
            .replace("127.0.0.1:3001", &format!("127.0.0.1:{}", instances[0]))
            .replace("127.0.0.1:3002", &format!("127.0.0.1:{}", instances[1]))
            .replace(
                "listen 127.0.0.1:3000",
                &format!("listen 127.0.0.1:{front}"),
            )
            // In the test's output, where a failure's cause can be read.
            .replace("error_log error.log warn;", "error_log stderr warn;");
        assert!(config.contains(&format!("127.0.0.1:{}", instances[1])));
        let folder = tempfile::tempdir().expect("nginx folder");
        std::fs::create_dir(folder.path().join("tmp")).expect("tmp folder");
        // nginx's workers drop root privileges; they must reach their folder.
        for path in [folder.path().to_owned(), folder.path().join("tmp")] {
            let mut permissions = std::fs::metadata(&path).expect("metadata").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o777);
            std::fs::set_permissions(&path, permissions).expect("permissions");
        }
        let config_path = folder.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write the configuration");
        let child = Command::new(binary)
            .arg("-p")
            .arg(folder.path())
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        Nginx {
            child,
            _folder: folder,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master process ends its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn wait_until(url: &str, what: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(url).send().await {
            if response.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not become ready at {url}");
}

fn instance(db: &Database, port: u16) -> TestServer {
    TestServer::start_on_with(
        db,
        &[
            ("LEPTOS_SITE_ADDR", &format!("127.0.0.1:{port}")),
            // The default drain, longer than nginx's idle keep-alive (deploy/nginx.conf).
            ("SHUTDOWN_DRAIN_SECONDS", "5"),
            ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ],
    )
}

/// What went wrong for the people using the site during the restarts.
#[derive(Default)]
struct Load {
    requests: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failures.lock().expect("failures").push(what);
    }
}

/// One person: subscribes and unsubscribes in turn, reading the list after each change, until
/// told to stop. Returns the subscription state of every topic they changed, as acknowledged.
async fn person(
    client: TestClient,
    topic_ids: Vec<i64>,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) -> HashMap<i64, bool> {
    let mut acknowledged = HashMap::new();
    let mut turn = 0_usize;
    while !stop.load(Ordering::Relaxed) {
        let topic = topic_ids[turn % topic_ids.len()];
        let subscribe = !acknowledged.get(&topic).copied().unwrap_or(false);
        turn += 1;
        let action = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let path = format!("/topics/{action}/{topic}/");
        load.requests.fetch_add(2, Ordering::Relaxed);
        match client.to(Method::POST, &path).send().await {
            Ok(response) if response.status() == StatusCode::SEE_OTHER => {
                acknowledged.insert(topic, subscribe);
            }
            Ok(response) => {
                load.fail(format!("POST {path}: {}", response.status()));
                continue;
            }
            Err(err) => {
                load.fail(format!("POST {path}: {err}"));
                continue;
            }
        }
        match client.get("/topics/").await {
            response if response.status() == StatusCode::OK => {
                let page = response.text().await.unwrap_or_default();
                let shown = topics(&page)
                    .into_iter()
                    .find(|row| row.0 == topic)
                    .map(|row| row.3);
                if shown != Some(subscribe) {
                    load.fail(format!(
                        "after {path} the page showed subscribed = {shown:?}"
                    ));
                }
            }
            response => load.fail(format!("GET /topics/: {}", response.status())),
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_behind_nginx_fails_no_request_and_loses_no_write() {
    if !crate::scale_out::postgres_pass() {
        return;
    }
    let db = Database::new();
    let ports = [free_port(), free_port()];
    let mut instances = [Some(instance(&db, ports[0])), Some(instance(&db, ports[1]))];
    let front = free_port();
    let _nginx = Nginx::start(front, ports);
    let base = format!("http://127.0.0.1:{front}");
    wait_until(&format!("{base}/readyz"), "nginx").await;

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut people = tokio::task::JoinSet::new();
    for n in 0..6 {
        let client = TestClient::new(&base);
        expect_redirect(client.signup(&format!("person{n}")).await, "/topics/").await;
        let topic_ids: Vec<i64> = client.topics().await.iter().map(|row| row.0).collect();
        let (load, stop) = (load.clone(), stop.clone());
        people.spawn(async move {
            let username = format!("person{n}");
            (username, person(client, topic_ids, load, stop).await)
        });
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    for (slot, port) in ports.into_iter().enumerate() {
        let before = load.requests.load(Ordering::Relaxed);
        let old = instances[slot].take().expect("running");
        // SIGTERM, the drain, the exit; then the new process on the same port.
        tokio::task::spawn_blocking(move || old.stop())
            .await
            .expect("stopped");
        instances[slot] = Some(instance(&db, port));
        wait_until(
            &format!("http://127.0.0.1:{port}/readyz"),
            "the new instance",
        )
        .await;
        // nginx skips an instance for 1 s after it refused a connection (deploy/nginx.conf):
        // the next one restarts once this one is back in rotation.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            load.requests.load(Ordering::Relaxed) > before,
            "requests ran while instance {slot} restarted"
        );
    }
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    while let Some(done) = people.join_next().await {
        acknowledged.push(done.expect("joined"));
    }
    let failures = load.failures.lock().expect("failures").clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the rolling restart: {failures:?}",
        failures.len(),
        load.requests.load(Ordering::Relaxed)
    );
    // Every write that got its redirect is in the database.
    for (username, topics) in acknowledged {
        for (topic, subscribed) in topics {
            let rows = count_sql(
                &db,
                format!(
                    "SELECT count(*) AS n FROM topic_subscribers s JOIN users u ON u.id = s.user_id \
                     WHERE u.username = '{username}' AND s.topic_id = {topic}"
                ),
            )
            .await;
            assert_eq!(rows, i64::from(subscribed), "{username}, topic {topic}");
        }
    }
}

/// `deploy/subscriptions.service` as systemd reads it (where systemd is installed): known
/// keys only, valid values, the binary executable.
#[test]
fn the_systemd_unit_is_what_systemd_accepts() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here: the unit is not checked");
        return;
    };
    assert!(probe.status.success());
    let documented = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/subscriptions.service");
    let unit = std::fs::read_to_string(&documented).expect("deploy/subscriptions.service");
    assert!(unit.contains("DynamicUser=yes") && unit.contains("ProtectSystem=strict"));
    // The unit names the installed path; the check needs a binary that exists.
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/subscriptions",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_server")),
    );
    let folder = tempfile::tempdir().expect("folder");
    let path = folder.path().join("subscriptions.service");
    std::fs::write(&path, unit).expect("write the unit");
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}
