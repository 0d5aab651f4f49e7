//! A browser-like client (its own cookie jar, the site's Origin, redirects not followed) and
//! what tests read off the pages it gets.

use domain::live::ViewVersion;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, ORIGIN};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};

use super::{TestServer, PASSWORD};

#[derive(Clone)]
pub struct TestClient {
    pub http: Client,
    pub base: String,
}

impl TestClient {
    /// A browser-like client of the site at `base` (a server, or a load balancer in front).
    pub fn new(base: &str) -> TestClient {
        TestClient::built(Client::builder(), base)
    }

    /// The same browser speaking HTTP/2 from its first byte (as a proxy in front does).
    pub fn over_http2(base: &str) -> TestClient {
        TestClient::built(Client::builder().http2_prior_knowledge(), base)
    }

    fn built(builder: reqwest::ClientBuilder, base: &str) -> TestClient {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(base).expect("origin"));
        TestClient {
            http: builder
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

    /// A request to this client's site, for a test that sets its own headers or body; send it
    /// with [`Sent::sent`].
    pub fn to(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.to(Method::GET, path).sent().await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.to(Method::POST, path)
            // This client's server, also after `against` (the default is the first server's).
            .header(ORIGIN, &self.base)
            .form(form)
            .sent()
            .await
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

/// Sending a request the test built, where no answer at all fails the test.
pub trait Sent {
    fn sent(self) -> impl std::future::Future<Output = Response> + Send;
}

impl Sent for RequestBuilder {
    async fn sent(self) -> Response {
        let what = self
            .try_clone()
            .and_then(|request| request.build().ok())
            .map(|request| format!("{} {}", request.method(), request.url().path()))
            .unwrap_or_default();
        self.send()
            .await
            .unwrap_or_else(|err| panic!("{what}: no answer: {err}"))
    }
}

/// The body of a page answered with `status` (the body is in the failure message otherwise).
pub async fn body_of(response: Response, status: StatusCode) -> String {
    let got = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    body
}

/// The body of a page answered with `status` that says `message`.
pub async fn expect_page(response: Response, status: StatusCode, message: &str) -> String {
    let body = body_of(response, status).await;
    assert!(body.contains(message), "expected {message:?} in:\n{body}");
    body
}

/// A response header's value, or "" when it is absent.
pub fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// A response header's value, `None` when it is absent.
pub fn header_of(response: &Response, name: &str) -> Option<String> {
    let value = response.headers().get(name)?;
    value.to_str().ok().map(str::to_owned)
}

/// A client as a script would be: no cookie jar, no `Origin`, redirects not followed.
pub fn plain_http() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

pub fn location(response: &Response) -> String {
    header(response, LOCATION.as_str()).to_owned()
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

impl TestServer {
    /// A fresh server and a member signed up on it: the start of most tests.
    pub async fn with_member(name: &str) -> (TestServer, TestClient) {
        Self::with_member_on(&[], name).await
    }

    /// [`Self::with_member`] on a server started with `vars` in its environment.
    pub async fn with_member_on(vars: &[(&str, &str)], name: &str) -> (TestServer, TestClient) {
        let server = TestServer::start_with(vars);
        let client = member(&server, name).await;
        (server, client)
    }
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

    /// The first list page as the browser's refetch reads it (the `list_topics` server
    /// function).
    pub async fn list_topics(&self) -> domain::topics::TopicListing {
        let response = self
            .post_form(
                "/api/list_topics",
                &[("request[page]", "1"), ("request[query]", "")],
            )
            .await;
        let body = body_of(response, StatusCode::OK).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// [`Self::list_topics`]: its rows, and the version they are as of.
    pub async fn listing(&self) -> (ViewVersion, Vec<(i64, String, i64, bool)>) {
        let listing = self.list_topics().await;
        (listing.version, rows_of(&listing))
    }

    /// The topics of every list page, in order (the pager's `data-pages` says how many).
    pub async fn all_topics(&self) -> Vec<(i64, String, i64, bool)> {
        let first = body_of(self.get("/topics/").await, StatusCode::OK).await;
        let pages: usize = first
            .split("data-pages=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut listed = topics(&first);
        for page in 2..=pages {
            let path = format!("/topics/?page={page}");
            listed.extend(topics(
                &body_of(self.get(&path).await, StatusCode::OK).await,
            ));
        }
        listed
    }

    /// Subscribes through the plain form, which answers with a redirect to the list.
    pub async fn subscribe(&self, topic_id: i64) {
        expect_redirect(self.toggle(topic_id, true).await, "/topics/").await;
    }

    /// Asserts that the first list page shows `topic` as `name` with `subscribers`, and whether
    /// this client is subscribed.
    pub async fn expect_row(&self, topic: i64, name: &str, subscribers: i64, subscribed: bool) {
        let listed = self.topics().await;
        let row = (topic, name.to_owned(), subscribers, subscribed);
        assert!(listed.contains(&row), "expected {row:?} in {listed:?}");
    }

    /// Subscribes to the topic called `name`; its id.
    pub async fn subscribe_to(&self, name: &str) -> i64 {
        let topic = self.topic_id(name).await;
        self.subscribe(topic).await;
        topic
    }

    /// Posts a form that must be accepted with the redirect back to the list.
    pub async fn post_listed(&self, path: &str, form: &[(&str, &str)]) {
        expect_redirect(self.post_form(path, form).await, "/topics/").await;
    }

    /// Subscribes or unsubscribes through the plain form; the answer as it came.
    pub async fn toggle(&self, topic_id: i64, subscribe: bool) -> Response {
        let action = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        self.post_form(&format!("/topics/{action}/{topic_id}/"), &[])
            .await
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

/// A listing's rows as the test client reads them from a page: (id, name, subscribers,
/// subscribed).
pub fn rows_of(listing: &domain::topics::TopicListing) -> Vec<(i64, String, i64, bool)> {
    listing
        .topics
        .iter()
        .map(|t| (t.id.0, t.name.clone(), t.subscribers, t.subscribed))
        .collect()
}
