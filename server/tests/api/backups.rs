//! Backups: `server backup PATH` copies a live SQLite database, writes going on, and a new
//! server on the copy serves the same pages; on PostgreSQL the command points to pg_dump, and
//! the README's procedure (pg_dump, pg_restore into a new database) serves the same pages.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;

use crate::support::{body_of, member, run_ok, staff, Database, Reader, TestClient, TestServer};

/// A little of everything the pages show: subscriptions, a created, a renamed and a deleted
/// topic (with their activity rows), another member.
async fn some_history(server: &TestServer) -> TestClient {
    let root = staff(server, "root").await;
    let alice = member(server, "alice").await;
    let django = alice.topic_id("Django").await;
    let python = alice.topic_id("Python").await;
    alice.subscribe(django).await;
    alice.subscribe(python).await;
    root.subscribe(python).await;
    for (path, form) in [
        ("/topics/create/".to_owned(), vec![("name", "Backups")]),
        (format!("/topics/rename/{django}/"), vec![("name", "Flask")]),
        (format!("/topics/delete/{python}/"), vec![]),
    ] {
        let done = root.post_form(&path, &form).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{path}");
    }
    alice
}

/// What `client` is shown: every list page's topics and the activity feed's rows.
async fn pages(client: &TestClient) -> (Vec<(i64, String, i64, bool)>, String) {
    let listed = client.all_topics().await;
    let activity = body_of(client.get("/topics/activity/").await, StatusCode::OK).await;
    // The feed's rows (the rest of the page carries a nonce of its own per response).
    let feed = activity
        .split("<tbody>")
        .nth(1)
        .and_then(|rows| rows.split("</tbody>").next())
        .unwrap_or_default()
        .to_owned();
    (listed, feed)
}

fn backup_command(server: &TestServer, path: &Path) -> std::process::Output {
    server.account_command(&["backup", &path.to_string_lossy()])
}

#[tokio::test]
async fn a_sqlite_backup_taken_while_writes_go_on_serves_the_same_pages() {
    let folder = tempfile::tempdir().expect("temp dir");
    let db = Database::sqlite_in(folder.path());
    let server = TestServer::start_on(&db);
    let alice = some_history(&server).await;

    // Another member toggles without pause while the first copy is taken.
    let bob = member(&server, "bob").await;
    let devops = bob.topic_id("DevOps").await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut toggles = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                let done = bob.toggle(devops, toggles.is_multiple_of(2)).await;
                assert_eq!(done.status(), StatusCode::SEE_OTHER);
                toggles += 1;
            }
            toggles
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let during = folder.path().join("copies/during.db");
    let output = backup_command(&server, &during);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("checked"));
    stop.store(true, Ordering::Relaxed);
    let toggles = writes.await.expect("writer");
    assert!(toggles > 1, "writes went on around the backup ({toggles})");
    // The copy taken mid-stream is one commit's state: its stored counts agree with its rows.
    let copy = Reader::open(&Database::sqlite_in_file(&during)).await;
    assert_eq!(
        copy.count(
            "SELECT COUNT(*) AS n FROM topics t WHERE t.subscriber_count <> \
             (SELECT COUNT(*) FROM topic_subscribers s WHERE s.topic_id = t.id)"
        )
        .await,
        0
    );

    // Quiet now: a second copy, served by a new server, shows alice what the first shows her.
    let quiet = folder.path().join("copies/quiet.db");
    assert!(backup_command(&server, &quiet).status.success());
    let restored = TestServer::start_on(&Database::sqlite_in_file(&quiet));
    let original = pages(&alice).await;
    assert!(original.0.iter().any(|t| t.1 == "Flask" && t.2 == 1 && t.3));
    assert!(original.1.contains("Backups"));
    // Same cookie jar: the session is in the copy too.
    let on_copy = alice.against(&restored);
    assert_eq!(pages(&on_copy).await, original);

    // The copy is a database of its own: a change there is not seen on the original.
    on_copy.subscribe_to("DevOps").await;
    assert_ne!(pages(&on_copy).await, original);
    assert_eq!(pages(&alice).await, original);

    // A backup never replaces a file.
    let again = backup_command(&server, &quiet);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert!(!folder.path().join("copies/quiet.db.partial").exists());
}

#[tokio::test]
async fn a_postgres_backup_is_pg_dump_and_restores_into_a_new_database() {
    if !domain::db::scratch::tests_use_postgres() {
        eprintln!("PostgreSQL only (TEST_BACKEND=postgres)");
        return;
    }
    let server = TestServer::start();
    let alice = some_history(&server).await;
    let folder = tempfile::tempdir().expect("temp dir");
    let dump = folder.path().join("subscriptions.dump");

    let refused = backup_command(&server, &dump);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pg_dump --format=custom"));

    // The README's commands, as an operator runs them.
    run_ok(
        std::process::Command::new("pg_dump")
            .args(["--format=custom", "--file"])
            .arg(&dump)
            .arg(server.db.url()),
    );
    let fresh = Database::new();
    run_ok(
        std::process::Command::new("pg_restore")
            .args(["--no-owner", "--exit-on-error", "--dbname"])
            .arg(fresh.url())
            .arg(&dump),
    );

    let on_restored = TestServer::start_on(&fresh);
    let original = pages(&alice).await;
    assert_eq!(pages(&alice.against(&on_restored)).await, original);
}
