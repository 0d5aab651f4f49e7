//! Random and malformed requests to every form route and server function: none may answer a
//! 5xx or take the server down. A fixed seed and a modest number of cases keep the suite
//! quick and repeatable; run longer with e.g.
//! `FUZZ_CASES=20000 FUZZ_SEED=7 cargo test -p server --features app/ssr --test api fuzz`.

use reqwest::StatusCode;

use crate::support::{expect_redirect, TestServer};

/// xorshift64*: deterministic, good enough to pick cases.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A string of random length drawn from awkward pieces.
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "9",
            " ",
            "%",
            "%00",
            "%ZZ",
            "%E2%80%AE",
            "&",
            "=",
            "+",
            ";",
            "'",
            "\"",
            "<script>",
            "\\u{0}",
            "é",
            "👍",
            "\u{202E}",
            "\u{200B}",
            "../",
            "NULL",
            "-1",
            "99999999999999999999999",
            "1e9",
            "[]",
            "{}",
            "\r\n",
            "\t",
        ];
        let length = self.below(40);
        (0..length).map(|_| self.pick(PIECES)).collect()
    }

    fn id(&mut self) -> String {
        match self.below(6) {
            0 => "1".into(),
            1 => "-1".into(),
            2 => "0".into(),
            3 => "18446744073709551616".into(),
            4 => self.text().replace('/', "%2F"),
            _ => (self.next() % 1000).to_string(),
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn random_and_malformed_requests_never_get_a_5xx() {
    let cases = env_number("FUZZ_CASES", 300);
    let mut rng = Cases(env_number("FUZZ_SEED", 0x5EED_CAFE).max(1));
    let server = TestServer::start();
    let member = server.client();
    expect_redirect(member.signup("fuzzer").await, "/topics/").await;
    let anonymous = server.client();

    for case in 0..cases {
        let path = match rng.below(12) {
            0 => "/signup".to_owned(),
            1 => "/login".to_owned(),
            2 => "/topics/create/".to_owned(),
            3 => format!("/topics/subscribe/{}/", rng.id()),
            4 => format!("/topics/unsubscribe/{}/", rng.id()),
            5 => format!("/topics/rename/{}/", rng.id()),
            6 => format!("/topics/delete/{}/", rng.id()),
            7 => "/topics/unsubscribe-all/".to_owned(),
            8 => format!(
                "/api/{}",
                rng.pick(&[
                    "list_topics",
                    "create_topic",
                    "rename_topic",
                    "delete_topic",
                    "subscribe",
                    "unsubscribe",
                    "unsubscribe_all",
                    "list_activity",
                    "no_such_function",
                ])
            ),
            9 => format!("/topics/?page={}&q={}", rng.id(), rng.text()),
            10 => format!("/topics/activity/?page={}", rng.id()),
            _ => format!("/{}", rng.text()),
        };
        let fields = [
            "name", "username", "password", "next", "topic_id", "request", "page",
        ];
        let body: String = (0..rng.below(4))
            .map(|_| format!("{}={}", rng.pick(&fields), rng.text()))
            .collect::<Vec<_>>()
            .join("&");
        let content_type = rng.pick(&[
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]);
        let client = if rng.below(4) == 0 {
            &anonymous
        } else {
            &member
        };
        let url = server.url(&path);
        let mut request = match rng.below(5) {
            0 => client.http.get(&url),
            1 => client.http.put(&url),
            _ => client.http.post(&url),
        };
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let Ok(response) = request.body(body.clone()).send().await else {
            // A URL reqwest itself refuses to send never reached the server.
            continue;
        };
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "case {case}: {path} ({content_type}) with {body:?} got {status}"
        );
    }
    // Still up and serving after all of it.
    assert_eq!(member.get("/topics/").await.status(), StatusCode::OK);
}
