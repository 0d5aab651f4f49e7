//! Account commands (`server unmake-staff` and its kin) take effect on the running servers at
//! once: the next request of the account they change sees it.

use std::process::Output;

use reqwest::StatusCode;

use crate::support::{
    execute_sql, expect_redirect, member, staff, TestClient, TestServer, PASSWORD,
};

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn page(client: &TestClient) -> String {
    let response = client.get("/topics/").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

#[tokio::test]
async fn taking_staff_away_removes_the_forms_and_the_rights_on_the_next_request() {
    let server = TestServer::start();
    // Several servers on PostgreSQL: each must hear of it.
    let second = server
        .db
        .is_postgres()
        .then(|| TestServer::start_on(&server.db));
    let root = staff(&server, "root").await;
    let django = root.topic_id("Django").await;
    let delete_form = format!("/topics/delete/{django}/");
    // Every server has the account, its page and its rights in memory.
    let clients: Vec<TestClient> = std::iter::once(root.clone())
        .chain(second.iter().map(|second| root.against(second)))
        .collect();
    for client in &clients {
        let html = page(client).await;
        assert!(
            html.contains(&delete_form) && html.contains("(staff)"),
            "{html}"
        );
    }

    let said = succeeded(&server.account_command(&["unmake-staff", "root"]));
    assert!(said.contains("no longer staff"), "{said}");
    for client in &clients {
        let html = page(client).await;
        assert!(
            !html.contains(&delete_form),
            "staff forms still offered: {html}"
        );
        assert!(!html.contains("(staff)"), "{html}");
        let refused = client
            .post_form(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }

    succeeded(&server.account_command(&["make-staff", "root"]));
    for client in &clients {
        assert!(page(client).await.contains(&delete_form));
    }
    root.post_listed(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
        .await;
}

#[tokio::test]
async fn staff_rights_are_checked_against_the_database_not_the_sessions_copy() {
    let server = TestServer::start();
    let root = staff(&server, "root").await;
    let django = root.topic_id("Django").await;
    assert!(page(&root).await.contains("(staff)"));

    // Behind the application's back: no command, so no server hears of it, and the server
    // still remembers root as staff. The rights are refused all the same.
    execute_sql(
        &server.db,
        "UPDATE users SET is_staff = FALSE WHERE username = 'root'",
    )
    .await;
    let rename = root
        .post_form(&format!("/topics/rename/{django}/"), &[("name", "Flask")])
        .await;
    assert_eq!(rename.status(), StatusCode::FORBIDDEN);
    let delete = root
        .post_form(&format!("/topics/delete/{django}/"), &[])
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert!(
        root.topic_id("Django").await == django,
        "nothing was changed"
    );
}

#[tokio::test]
async fn ending_a_users_sessions_signs_them_out_everywhere() {
    let (server, laptop) = TestServer::with_member("grace").await;
    let phone = server.client();
    expect_redirect(phone.login("grace", PASSWORD, "").await, "/topics/").await;
    let someone_else = member(&server, "alan").await;
    for client in [&laptop, &phone, &someone_else] {
        page(client).await;
    }

    let said = succeeded(&server.account_command(&["end-sessions", "grace"]));
    assert!(said.contains("signed out everywhere"), "{said}");
    for client in [&laptop, &phone] {
        expect_redirect(client.get("/topics/").await, "/login?next=/topics/").await;
    }
    page(&someone_else).await;
    // The account itself is untouched: signing in again works.
    expect_redirect(laptop.login("grace", PASSWORD, "").await, "/topics/").await;
    page(&laptop).await;
}

#[tokio::test]
async fn deleting_an_account_gives_back_its_subscriptions_and_signs_it_out() {
    let (server, grace) = TestServer::with_member("grace").await;
    let alan = member(&server, "alan").await;
    let django = grace.subscribe_to("Django").await;
    alan.expect_row(django, "Django", 1, false).await;

    let said = succeeded(&server.account_command(&["delete-user", "GRACE"]));
    assert!(said.contains("is deleted"), "{said}");
    assert!(
        alan.topics()
            .await
            .contains(&(django, "Django".into(), 0, false)),
        "the count still includes the deleted account"
    );
    expect_redirect(grace.get("/topics/").await, "/login?next=/topics/").await;
    let login = grace.login("grace", PASSWORD, "").await;
    assert_ne!(
        login.status(),
        StatusCode::SEE_OTHER,
        "a deleted account signed in"
    );
    // The name is free again.
    expect_redirect(grace.signup("grace").await, "/topics/").await;
}

#[tokio::test]
async fn an_unknown_account_is_a_clear_error_that_changes_nothing() {
    let server = TestServer::start();
    let output = server.account_command(&["unmake-staff", "nobody"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("No account is named “nobody”"), "{stderr}");
}
