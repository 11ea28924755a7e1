//! The GitHub side of the harness: GitHub's own samples (response examples from its
//! OpenAPI description, real webhook payloads; `scripts/github-fixtures` extracts
//! them), a wiremock GitHub, and a runner for `strata action` with the runner's
//! contract (event file, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `INPUT_*`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{self, Output};

/// The repository every test's runner names.
pub const OWNER: &str = "octocat";
pub const REPO: &str = "Hello-World";
/// The login the token has: GraphQL names the bot without `[bot]`, REST with it.
pub const BOT_GRAPHQL: &str = "github-actions";
pub const BOT_REST: &str = "github-actions[bot]";

fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("STRATA_GITHUB_FIXTURES") {
        return dir.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"))
        .join("strata/github-fixtures")
}

fn sample(relative: &str) -> Value {
    let file = fixtures().join(relative);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run scripts/setup (scripts/github-fixtures extracts GitHub's samples)",
            file.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// `components.examples[name].value` of GitHub's OpenAPI description.
pub fn openapi(name: &str) -> Value {
    sample(&format!("openapi/{name}.json"))
}

/// A real webhook payload, e.g. `pull_request.opened`.
pub fn webhook(name: &str) -> Value {
    sample(&format!("webhooks/{name}.json"))
}

/// GitHub's issue-comment example with this id, author and body.
pub fn comment(id: u64, login: &str, body: &str) -> Value {
    let mut c = openapi("issue-comment");
    c["id"] = json!(id);
    c["user"]["login"] = json!(login);
    c["body"] = json!(body);
    c
}

/// GitHub's pull-request-simple example, merged, with this number and labels.
pub fn merged_pull(number: u64, labels: &[&str]) -> Value {
    let mut items = openapi("pull-request-simple-items");
    let mut pr = items[0].take();
    pr["number"] = json!(number);
    pr["state"] = json!("closed");
    pr["merged_at"] = json!("2026-12-01T12:00:00Z");
    let label = pr["labels"][0].clone();
    pr["labels"] = Value::Array(
        labels
            .iter()
            .map(|name| {
                let mut l = label.clone();
                l["name"] = json!(name);
                l
            })
            .collect(),
    );
    json!([pr])
}

/// A pull_request payload (real sample) rewritten to the test repository's commits.
pub fn pull_request_event(
    action: &str,
    number: u64,
    base: &str,
    head: &str,
    labels: &[&str],
) -> Value {
    let mut e = webhook(&format!("pull_request.{action}"));
    e["number"] = json!(number);
    e["pull_request"]["number"] = json!(number);
    e["pull_request"]["base"]["sha"] = json!(base);
    e["pull_request"]["head"]["sha"] = json!(head);
    let label = json!({"id": 1, "name": "x", "color": "fff", "default": false});
    e["pull_request"]["labels"] = Value::Array(
        labels
            .iter()
            .map(|n| {
                let mut l = label.clone();
                l["name"] = json!(n);
                l
            })
            .collect(),
    );
    e["repository"]["full_name"] = json!(format!("{OWNER}/{REPO}"));
    e
}

/// A push payload (real sample) of `after` to main.
pub fn push_event(before: &str, after: &str) -> Value {
    let mut e = webhook("push");
    e["ref"] = json!("refs/heads/main");
    e["before"] = json!(before);
    e["after"] = json!(after);
    e["repository"]["default_branch"] = json!("main");
    e["repository"]["full_name"] = json!(format!("{OWNER}/{REPO}"));
    e
}

/// A merge_group payload (real sample): the queue's commit `head` built on `base`.
pub fn merge_group_event(base: &str, head: &str) -> Value {
    let mut e = webhook("merge_group.checks_requested");
    e["merge_group"]["base_sha"] = json!(base);
    e["merge_group"]["head_sha"] = json!(head);
    e["merge_group"]["head_ref"] = json!(format!("refs/heads/gh-readonly-queue/main/pr-2-{base}"));
    e["merge_group"]["head_commit"]["id"] = json!(head);
    e["repository"]["full_name"] = json!(format!("{OWNER}/{REPO}"));
    e
}

/// A workflow_dispatch payload (real sample) with these inputs.
pub fn dispatch_event(inputs: Value) -> Value {
    let mut e = webhook("workflow_dispatch");
    e["inputs"] = inputs;
    e["ref"] = json!("refs/heads/main");
    e
}

/// The GitHub test server.
pub struct GitHub {
    pub server: MockServer,
}

impl GitHub {
    pub async fn start() -> GitHub {
        let server = MockServer::start().await;
        let github = GitHub { server };
        github.viewer().await;
        github
    }

    /// GraphQL `viewer`, as a `GITHUB_TOKEN` sees itself.
    pub async fn viewer(&self) {
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .and(body_json(json!({ "query": "query { viewer { login } }" })))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "data": { "viewer": { "login": BOT_GRAPHQL } } })),
            )
            .mount(&self.server)
            .await;
    }

    /// The comments of `number`, one page.
    pub async fn comments(&self, number: u64, comments: Vec<Value>) {
        self.comments_page(number, 1, comments).await;
    }

    /// Page `page` (of 100 comments each) of the comments of `number`.
    pub async fn comments_page(&self, number: u64, page: u32, comments: Vec<Value>) {
        Mock::given(method("GET"))
            .and(path(format!(
                "/repos/{OWNER}/{REPO}/issues/{number}/comments"
            )))
            .and(query_param("per_page", "100"))
            .and(query_param("page", page.to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(comments)))
            .mount(&self.server)
            .await;
    }

    /// Pull request `number`'s comments as GitHub keeps them, starting with
    /// `comments`: listed as they are at each read, edited and created in place, each
    /// answer GitHub's example with the stored text. A list answers `read_delay` after
    /// it was read, so writers that start together read the same text.
    pub async fn keep_comments(
        &self,
        number: u64,
        comments: Vec<Value>,
        read_delay: std::time::Duration,
    ) -> CommentStore {
        let store = CommentStore(std::sync::Arc::new(std::sync::Mutex::new(comments)));
        let list = format!("/repos/{OWNER}/{REPO}/issues/{number}/comments");
        Mock::given(method("GET"))
            .and(path(list.clone()))
            .and(query_param("page", "1"))
            .respond_with(Listed(store.clone(), read_delay))
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path(list.clone()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&self.server)
            .await;
        Mock::given(method("PATCH"))
            .and(wiremock::matchers::path_regex(format!(
                "^/repos/{OWNER}/{REPO}/issues/comments/[0-9]+$"
            )))
            .respond_with(Edited(store.clone()))
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path(list))
            .respond_with(Created(store.clone()))
            .mount(&self.server)
            .await;
        store
    }

    /// Creating a comment on `number` answers with GitHub's example as comment `id`.
    pub async fn accept_create(&self, number: u64, id: u64) {
        Mock::given(method("POST"))
            .and(path(format!(
                "/repos/{OWNER}/{REPO}/issues/{number}/comments"
            )))
            .respond_with(ResponseTemplate::new(201).set_body_json(comment(id, BOT_REST, "x")))
            .mount(&self.server)
            .await;
    }

    /// Attempt `attempt` of workflow run `id` is in `status` (GitHub's example).
    pub async fn run_attempt(&self, id: u64, attempt: u32, status: &str, conclusion: Option<&str>) {
        let mut run = openapi("workflow-run");
        run["id"] = json!(id);
        run["run_attempt"] = json!(attempt);
        run["status"] = json!(status);
        run["conclusion"] = json!(conclusion);
        Mock::given(method("GET"))
            .and(path(format!(
                "/repos/{OWNER}/{REPO}/actions/runs/{id}/attempts/{attempt}"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(run))
            .mount(&self.server)
            .await;
    }

    /// Editing comment `id` answers with GitHub's example.
    pub async fn accept_update(&self, id: u64) {
        Mock::given(method("PATCH"))
            .and(path(format!("/repos/{OWNER}/{REPO}/issues/comments/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(comment(id, BOT_REST, "x")))
            .mount(&self.server)
            .await;
    }

    /// The pull requests of commit `sha`.
    pub async fn pulls_of(&self, sha: &str, pulls: Value) {
        Mock::given(method("GET"))
            .and(path(format!("/repos/{OWNER}/{REPO}/commits/{sha}/pulls")))
            .respond_with(ResponseTemplate::new(200).set_body_json(pulls))
            .mount(&self.server)
            .await;
    }

    /// Every request received: (method, path, body as JSON when it is).
    pub async fn requests(&self) -> Vec<(String, String, Value)> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    r.method.to_string(),
                    r.url.path().to_owned(),
                    serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    /// Bodies of the comment writes (POST and PATCH), in order.
    pub async fn written(&self) -> Vec<(String, String)> {
        self.requests()
            .await
            .into_iter()
            .filter(|(m, p, _)| (m == "POST" || m == "PATCH") && p.contains("/comments"))
            .map(|(m, _, b)| (m, b["body"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }
}

/// What a run of `strata action` left: exit code, log, outputs and summary.
#[derive(Debug)]
pub struct ActionRun {
    pub out: Output,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

/// What started a run: the event, its payload, the commit and ref checked out.
pub struct Trigger<'a> {
    pub name: &'a str,
    pub payload: &'a Value,
    pub sha: &'a str,
    pub git_ref: &'a str,
}

/// Where the runner puts what it hands a step: the checkout, the event file, and the
/// output and summary files, as the process running the step sees them.
pub struct RunnerPaths {
    pub workspace: String,
    pub event: String,
    pub output: String,
    pub summary: String,
}

/// The variables the runner gives a step of `strata action`: `GITHUB_*` for `trigger`,
/// the token, `INPUT_*` for `inputs`, then the AWS settings `aws`.
pub fn runner_vars(
    github: &GitHub,
    trigger: &Trigger<'_>,
    paths: &RunnerPaths,
    inputs: &[(&str, &str)],
    aws: &[(&'static str, String)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("GITHUB_EVENT_NAME", trigger.name.to_owned()),
        ("GITHUB_EVENT_PATH", paths.event.clone()),
        ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
        ("GITHUB_SHA", trigger.sha.to_owned()),
        ("GITHUB_REF", trigger.git_ref.to_owned()),
        ("GITHUB_API_URL", github.server.uri()),
        (
            "GITHUB_GRAPHQL_URL",
            format!("{}/graphql", github.server.uri()),
        ),
        ("GITHUB_WORKSPACE", paths.workspace.clone()),
        ("GITHUB_OUTPUT", paths.output.clone()),
        ("GITHUB_STEP_SUMMARY", paths.summary.clone()),
        ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
        ("GITHUB_RUN_ID", "4242".to_owned()),
        (
            "INPUT_GITHUB_TOKEN",
            "ghs_0123456789abcdefTESTTOKEN".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(
        inputs
            .iter()
            .map(|(k, v)| (format!("INPUT_{}", k.to_uppercase()), (*v).to_owned())),
    );
    vars.extend(aws.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    vars
}

/// Runs `strata action` on `repo` for `trigger`, with `inputs` and AWS settings `aws`.
pub fn run_action(
    repo: &Path,
    github: &GitHub,
    trigger: Trigger<'_>,
    inputs: &[(&str, &str)],
    aws: &[(&'static str, String)],
) -> ActionRun {
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(trigger.payload).unwrap()).unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary");
    let paths = RunnerPaths {
        workspace: repo.display().to_string(),
        event: event_path.display().to_string(),
        output: output.display().to_string(),
        summary: summary.display().to_string(),
    };
    let vars = runner_vars(github, &trigger, &paths, inputs, aws);
    let vars: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let out = harness::strata_with(repo, &["action"], &vars);
    ActionRun {
        out,
        outputs: read_outputs(&std::fs::read_to_string(&output).unwrap_or_default()),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// Parses `name<<DELIM` / value / `DELIM` blocks.
pub fn read_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some((name, delimiter)) = line.split_once("<<") else {
            continue;
        };
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delimiter {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_owned(), value.join("\n"));
    }
    out
}

/// AWS settings for a run without credentials: no keys, no profile, no instance
/// role, and an endpoint nothing listens on, so any AWS call would fail the run.
pub fn no_credentials() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent/strata-config".to_owned()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/strata-credentials".to_owned(),
        ),
        ("AWS_MAX_ATTEMPTS", "1".to_owned()),
    ]
}

/// The comments [`GitHub::keep_comments`] keeps.
#[derive(Clone)]
pub struct CommentStore(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl CommentStore {
    /// The text of each comment, in order.
    pub fn bodies(&self) -> Vec<String> {
        let comments = self.0.lock().unwrap();
        comments
            .iter()
            .map(|c| c["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

struct Listed(CommentStore, std::time::Duration);

impl wiremock::Respond for Listed {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let comments = self.0.0.lock().unwrap().clone();
        ResponseTemplate::new(200)
            .set_body_json(Value::Array(comments))
            .set_delay(self.1)
    }
}

struct Edited(CommentStore);

impl wiremock::Respond for Edited {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let id: u64 = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut comments = self.0.0.lock().unwrap();
        match comments.iter_mut().find(|c| c["id"] == json!(id)) {
            Some(c) => {
                c["body"] = body["body"].clone();
                ResponseTemplate::new(200).set_body_json(c.clone())
            }
            None => ResponseTemplate::new(404).set_body_json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/issues/comments#update-an-issue-comment"
            })),
        }
    }
}

struct Created(CommentStore);

impl wiremock::Respond for Created {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut comments = self.0.0.lock().unwrap();
        let id = 900 + comments.len() as u64;
        let created = comment(id, BOT_REST, body["body"].as_str().unwrap_or_default());
        comments.push(created.clone());
        ResponseTemplate::new(201).set_body_json(created)
    }
}
