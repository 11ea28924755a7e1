//! The issues strata keeps, through octocrab against the GitHub test server answering
//! with GitHub's own examples: found again by marker and login (a look-alike by
//! someone else and pull requests are left alone), opened once, edited, closed with a
//! comment; the exact requests are checked.

use serde_json::{Value, json};
use strata::github::client::{GitHub as Client, RetryPolicy};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::github::{BOT_GRAPHQL, BOT_REST, GitHub, OWNER, REPO, openapi};

const MARKER: &str = "<!-- strata:drift web-prod -->";

/// GitHub's example issue as issue `number` by `login` with `body` (`pull`: a pull
/// request, which the issues API lists too).
fn issue(number: u64, login: &str, body: &str, pull: bool) -> Value {
    let mut i = openapi("issue-items")[0].clone();
    i["number"] = json!(number);
    i["user"]["login"] = json!(login);
    i["body"] = json!(body);
    i["state"] = json!("open");
    if !pull {
        i["pull_request"] = Value::Null;
    }
    i
}

async fn listing(github: &GitHub, issues: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
        .and(query_param("state", "open"))
        .and(query_param("per_page", "100"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(issues)))
        .mount(&github.server)
        .await;
}

fn client(github: &GitHub) -> Client {
    let url = github.server.uri();
    Client::new(
        &url,
        &format!("{url}/graphql"),
        "token",
        OWNER,
        REPO,
        RetryPolicy::default(),
    )
    .expect("a client")
}

#[tokio::test]
async fn a_drift_issue_is_opened_once_edited_then_closed_and_look_alikes_are_left_alone() {
    let github = GitHub::start().await;
    // Someone else's issue with the same marker, and a pull request of ours: neither is
    // strata's issue.
    listing(
        &github,
        vec![
            issue(11, "mallory", &format!("{MARKER}\nnot strata's"), false),
            issue(12, BOT_REST, &format!("{MARKER}\na pull request"), true),
        ],
    )
    .await;
    let mut opened = openapi("issue");
    opened["number"] = json!(13);
    opened["user"]["login"] = json!(BOT_REST);
    Mock::given(method("POST"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
        .and(body_json(
            json!({ "title": "strata: drift in web-prod", "body": format!("{MARKER}\nfirst") }),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(&opened))
        .expect(1)
        .mount(&github.server)
        .await;
    let mut gh = client(&github);
    let login = gh.viewer_login().await;
    assert_eq!(login, BOT_GRAPHQL);
    let none = gh.find_issue(MARKER, &login).await.expect("listed");
    assert_eq!(
        none, None,
        "a look-alike by someone else and a pull request are not ours"
    );
    let first = gh
        .upsert_issue(
            MARKER,
            &login,
            None,
            "strata: drift in web-prod",
            &format!("{MARKER}\nfirst"),
        )
        .await
        .expect("opened");
    assert_eq!(first.number, 13);

    // The next check finds its own issue (GraphQL's login matches REST's `[bot]`) and
    // edits it: no second issue.
    github.server.reset().await;
    listing(
        &github,
        vec![
            issue(11, "mallory", &format!("{MARKER}\nnot strata's"), false),
            issue(13, BOT_REST, &format!("{MARKER}\nfirst"), false),
        ],
    )
    .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/13")))
        .and(body_json(
            json!({ "title": "strata: drift in web-prod", "body": format!("{MARKER}\nsecond") }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(&opened))
        .expect(1)
        .mount(&github.server)
        .await;
    let existing = gh.find_issue(MARKER, &login).await.expect("listed");
    assert_eq!(existing.as_ref().map(|i| i.number), Some(13));
    let again = gh
        .upsert_issue(
            MARKER,
            &login,
            existing.map(|i| i.number),
            "strata: drift in web-prod",
            &format!("{MARKER}\nsecond"),
        )
        .await
        .expect("edited");
    assert_eq!(again.number, 13);
    let found = gh.find_issue(MARKER, &login).await.expect("listed");
    assert_eq!(found.map(|i| i.number), Some(13));

    // Clean: a comment says so, then the issue closes as completed.
    Mock::given(method("POST"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/13/comments")))
        .and(body_json(json!({ "body": "✅ clean" })))
        .respond_with(ResponseTemplate::new(201).set_body_json(openapi("issue-comment")))
        .expect(1)
        .mount(&github.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/13")))
        .and(body_json(
            json!({ "state": "closed", "state_reason": "completed" }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(&opened))
        .expect(1)
        .mount(&github.server)
        .await;
    gh.close_issue(13, "✅ clean").await.expect("closed");
    let written: Vec<String> = github
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(
        written,
        [
            "PATCH /repos/octocat/Hello-World/issues/13",
            "POST /repos/octocat/Hello-World/issues/13/comments",
            "PATCH /repos/octocat/Hello-World/issues/13"
        ]
    );
}
