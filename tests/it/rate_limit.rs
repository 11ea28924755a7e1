//! GitHub's rate limits through strata's client and a wiremock GitHub answering with
//! GitHub's own examples: after a 403 or 429 that asks to wait (`retry-after`, or
//! `x-ratelimit-remaining: 0` with `x-ratelimit-reset`), no request of any kind
//! (a retry, the next call, the REST fallback of GraphQL) reaches GitHub before the
//! wait is over, and none at all when the wait is longer than strata waits. The mock
//! records when each request arrives; the tests assert the order and that none came
//! early.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::github::{BOT_REST, OWNER, REPO, comment, openapi};
use strata::github::{GitHub, RetryPolicy};

/// Short waits for tests: GitHub's waits are whole seconds; backoff is not the subject.
const POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    backoff: Duration::from_millis(20),
    total_wait: Duration::from_secs(5),
};

/// A request as the mock received it, with when it arrived.
#[derive(Debug, Clone)]
struct Arrival {
    method: String,
    path: String,
    at: Instant,
    wall: SystemTime,
}

/// Every request any recorded mock answered, in arrival order.
#[derive(Debug, Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Arrival>>>);

impl Arrivals {
    fn seen(&self) -> Vec<Arrival> {
        self.0.lock().unwrap().clone()
    }

    /// `METHOD path` of each request, in order.
    fn sequence(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|a| format!("{} {}", a.method, a.path))
            .collect()
    }
}

/// An answer that records the request's arrival first.
struct Recorded {
    arrivals: Arrivals,
    answer: ResponseTemplate,
}

impl Respond for Recorded {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals.0.lock().unwrap().push(Arrival {
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            at: Instant::now(),
            wall: SystemTime::now(),
        });
        self.answer.clone()
    }
}

/// The GitHub test server, every answer recorded.
struct LimitedGitHub {
    server: MockServer,
    arrivals: Arrivals,
}

impl LimitedGitHub {
    async fn start() -> LimitedGitHub {
        LimitedGitHub {
            server: MockServer::start().await,
            arrivals: Arrivals::default(),
        }
    }

    /// `verb path` answers `answer`, the first `times` requests only (when given),
    /// before answers mounted later.
    async fn answer(&self, verb: &str, at: &str, answer: ResponseTemplate, times: Option<u64>) {
        let mock = Mock::given(method(verb))
            .and(path(at))
            .respond_with(Recorded {
                arrivals: self.arrivals.clone(),
                answer,
            });
        let mock = match times {
            Some(n) => mock.up_to_n_times(n).with_priority(1),
            None => mock,
        };
        mock.mount(&self.server).await;
    }

    fn client(&self) -> GitHub {
        GitHub::new(
            &self.server.uri(),
            &format!("{}/graphql", self.server.uri()),
            "ghs_0123456789abcdefTESTTOKEN",
            OWNER,
            REPO,
            POLICY,
        )
        .unwrap()
    }

    /// How many requests reached the server at all (recorded or not).
    async fn received(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }
}

/// GitHub's answer to a secondary rate limit, status `status`, with `headers`.
fn limited(status: u16, headers: &[(&str, String)]) -> ResponseTemplate {
    let mut answer = ResponseTemplate::new(status).set_body_json(json!({
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
    }));
    for (name, value) in headers {
        answer = answer.insert_header(*name, value.as_str());
    }
    answer
}

fn comments_path(number: u64) -> String {
    format!("/repos/{OWNER}/{REPO}/issues/{number}/comments")
}

#[tokio::test]
async fn the_rest_fallback_of_graphql_waits_out_a_secondary_rate_limit() {
    let github = LimitedGitHub::start().await;
    github
        .answer(
            "POST",
            "/graphql",
            limited(403, &[("retry-after", "1".into())]),
            None,
        )
        .await;
    let user = openapi("private-user-response-with-public-and-private-profile-information");
    github
        .answer(
            "GET",
            "/user",
            ResponseTemplate::new(200).set_body_json(&user),
            None,
        )
        .await;
    let login = github.client().viewer_login().await;
    assert_eq!(login, user["login"].as_str().unwrap());
    assert_eq!(github.arrivals.sequence(), ["POST /graphql", "GET /user"]);
    let seen = github.arrivals.seen();
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "GET /user came {:?} after the 403 that asked for 1 s",
        seen[1].at - seen[0].at
    );
    assert_eq!(github.received().await, 2);
}

#[tokio::test]
async fn an_exhausted_rate_limit_holds_every_request_until_its_reset() {
    let github = LimitedGitHub::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset = now + 1;
    github
        .answer(
            "GET",
            &comments_path(5),
            limited(
                429,
                &[
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
            ),
            Some(1),
        )
        .await;
    github
        .answer(
            "GET",
            &comments_path(5),
            ResponseTemplate::new(200).set_body_json(json!([])),
            None,
        )
        .await;
    let sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    let pulls = openapi("pull-request-simple-items");
    github
        .answer(
            "GET",
            &format!("/repos/{OWNER}/{REPO}/commits/{sha}/pulls"),
            ResponseTemplate::new(200).set_body_json(&pulls),
            None,
        )
        .await;
    // One attempt only: the listing fails at once, and the next call (another
    // endpoint) is the one that must wait for the reset.
    let mut client = GitHub::new(
        &github.server.uri(),
        &format!("{}/graphql", github.server.uri()),
        "ghs_0123456789abcdefTESTTOKEN",
        OWNER,
        REPO,
        RetryPolicy {
            attempts: 1,
            ..POLICY
        },
    )
    .unwrap();
    let error = client.comments(5).await.unwrap_err();
    assert_eq!(error.status, Some(429), "{error}");
    let found = client.pulls_of_commit(sha).await.unwrap();
    assert_eq!(found.len(), pulls.as_array().unwrap().len());
    assert_eq!(
        github.arrivals.sequence(),
        [
            format!("GET {}", comments_path(5)),
            format!("GET /repos/{OWNER}/{REPO}/commits/{sha}/pulls"),
        ]
    );
    let next = github.arrivals.seen()[1].wall;
    assert!(
        next >= UNIX_EPOCH + Duration::from_secs(reset),
        "the next request came at {next:?}, before the reset at {reset}"
    );
}

#[tokio::test]
async fn a_create_refused_by_a_secondary_rate_limit_is_looked_for_again_only_after_the_wait() {
    let github = LimitedGitHub::start().await;
    github
        .answer(
            "GET",
            &comments_path(9),
            ResponseTemplate::new(200).set_body_json(json!([])),
            None,
        )
        .await;
    github
        .answer(
            "POST",
            &comments_path(9),
            limited(403, &[("retry-after", "1".into())]),
            Some(1),
        )
        .await;
    github
        .answer(
            "POST",
            &comments_path(9),
            ResponseTemplate::new(201).set_body_json(comment(901, BOT_REST, "plan")),
            None,
        )
        .await;
    let mut client = github.client();
    let upserted = client
        .upsert_comment(
            9,
            "<!-- strata -->",
            BOT_REST,
            None,
            "<!-- strata -->\nplan",
        )
        .await
        .unwrap();
    assert_eq!(upserted, strata::github::client::Upserted::Created(901));
    let list = format!("GET {}", comments_path(9));
    let post = format!("POST {}", comments_path(9));
    assert_eq!(github.arrivals.sequence(), [post.clone(), list, post]);
    let seen = github.arrivals.seen();
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "the comments were read again {:?} after the 403 that asked for 1 s",
        seen[1].at - seen[0].at
    );
    assert!(seen[2].at >= seen[1].at);
}

#[tokio::test]
async fn a_wait_longer_than_strata_waits_sends_nothing_more() {
    let github = LimitedGitHub::start().await;
    github
        .answer(
            "POST",
            "/graphql",
            limited(429, &[("retry-after", "60".into())]),
            None,
        )
        .await;
    let user: Value = openapi("private-user-response-with-public-and-private-profile-information");
    github
        .answer(
            "GET",
            "/user",
            ResponseTemplate::new(200).set_body_json(&user),
            None,
        )
        .await;
    github
        .answer(
            "GET",
            &comments_path(5),
            ResponseTemplate::new(200).set_body_json(json!([])),
            None,
        )
        .await;
    let mut client = github.client();
    // Neither the REST fallback nor a later call is sent: the login falls back to the
    // Actions bot and the listing fails, saying why.
    assert_eq!(client.viewer_login().await, BOT_REST);
    let error = client.comments(5).await.unwrap_err();
    assert!(
        error
            .message
            .starts_with("not sent: GitHub asked strata to wait"),
        "{error}"
    );
    assert!(error.passing, "{error}");
    assert_eq!(github.arrivals.sequence(), ["POST /graphql"]);
    assert_eq!(github.received().await, 1);
}
