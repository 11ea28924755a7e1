//! The Action's drift check on `schedule`: a change made by hand in AWS opens one issue
//! for its environment, the outputs name it, `fail_on_drift` fails the job, and once
//! the change is undone the next check closes the issue with a comment. No AWS write.

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use strata::plan::comment::drift::ORPHANS_MARKER;

use crate::action::environment;
use crate::cloud::{Cloud, binary_vars, moto_config};
use crate::github::{BOT_REST, GitHub, OWNER, REPO, Trigger, openapi, run_action};
use crate::harness::{self, GitRepo};
use crate::proxy::{Fault, Proxy, Requests};

const NAME: &str = "action-drift";

fn issue(number: u64, login: &str, body: &str) -> Value {
    let mut i = openapi("issue-items")[0].clone();
    i["number"] = json!(number);
    i["user"]["login"] = json!(login);
    i["body"] = json!(body);
    i["pull_request"] = Value::Null;
    i
}

async fn open_issues(github: &GitHub, issues: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(issues)))
        .mount(&github.server)
        .await;
}

/// The issue requests that wrote: method, path, and the body's start.
async fn written(github: &GitHub) -> Vec<(String, String, String)> {
    github
        .requests()
        .await
        .into_iter()
        .filter(|(m, p, _)| m != "GET" && p.contains("/issues"))
        .map(|(m, p, b)| {
            let text = b["body"]
                .as_str()
                .or(b["state"].as_str())
                .unwrap_or_default();
            (m, p, text.lines().next().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Runs the drift check on `schedule` (narrowed to the environment: moto's default
/// account holds other tests' environments too).
fn check(
    repo: &GitRepo,
    github: &GitHub,
    sha: &str,
    inputs: &[(&str, &str)],
) -> crate::github::ActionRun {
    let mut all = vec![("environment", NAME)];
    all.extend_from_slice(inputs);
    scheduled(repo, github, sha, &all, &binary_vars())
}

/// Runs the Action on `schedule` with `inputs`, reaching AWS through `aws`.
fn scheduled(
    repo: &GitRepo,
    github: &GitHub,
    sha: &str,
    inputs: &[(&str, &str)],
    aws: &[(&'static str, String)],
) -> crate::github::ActionRun {
    run_action(
        repo.path(),
        github,
        Trigger {
            name: "schedule",
            payload: &json!({ "schedule": "17 6 * * 1-5" }),
            sha,
            git_ref: "refs/heads/main",
        },
        inputs,
        aws,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_hand_opens_one_issue_and_its_undoing_closes_it() {
    let repo = GitRepo::new();
    repo.write(
        &format!("environments/{NAME}.yaml"),
        environment(151, &[22]),
    );
    let sha = repo.commit("an environment");
    let applied = harness::strata_with(repo.path(), &["apply"], &binary_vars());
    assert_eq!(applied.code, 0, "{}", applied.stderr);

    // By hand, in AWS: node exporter's port opened on the group.
    let ec2 = aws_sdk_ec2::Client::new(&moto_config("eu-west-1").await);
    let groups = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("tag:strata:environment")
                .values(NAME)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("tag:strata:id")
                .values("sg/web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_owned();
    let rule = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(9100)
        .to_port(9100)
        .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
        .build();
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(rule.clone())
        .send()
        .await
        .unwrap();

    let github = GitHub::start().await;
    open_issues(&github, Vec::new()).await;
    let mut opened = openapi("issue");
    opened["number"] = json!(31);
    Mock::given(method("POST"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
        .respond_with(ResponseTemplate::new(201).set_body_json(&opened))
        .expect(1)
        .mount(&github.server)
        .await;
    let run = check(&repo, &github, &sha, &[]);
    assert_eq!(run.out.code, 0, "{}\n{}", run.out.stdout, run.out.stderr);
    assert_eq!(run.outputs["has_drift"], "true");
    assert_eq!(run.outputs["drifted_environments"], format!("[\"{NAME}\"]"));
    assert!(
        run.summary.contains("differs from `main`"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains("tcp 9100 from 10.0.0.0/8"),
        "{}",
        run.summary
    );
    let marker = format!("<!-- strata:drift {NAME} -->");
    assert_eq!(
        written(&github).await,
        [(
            "POST".to_owned(),
            format!("/repos/{OWNER}/{REPO}/issues"),
            marker.clone()
        )]
    );
    let issue_body = github
        .requests()
        .await
        .into_iter()
        .find(|(m, p, _)| m == "POST" && p.ends_with("/issues"))
        .map(|(_, _, b)| b)
        .unwrap();
    assert_eq!(issue_body["title"], format!("strata: drift in {NAME}"));

    // fail_on_drift: the same finding fails the job; the issue is edited, not doubled.
    github.server.reset().await;
    github.viewer().await;
    open_issues(
        &github,
        vec![issue(31, BOT_REST, &format!("{marker}\nbefore"))],
    )
    .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/31")))
        .respond_with(ResponseTemplate::new(200).set_body_json(&opened))
        .mount(&github.server)
        .await;
    let failing = check(&repo, &github, &sha, &[("fail_on_drift", "true")]);
    assert_eq!(failing.out.code, 1, "{}", failing.out.stdout);
    assert_eq!(failing.outputs["failure_reason"], "drift");
    let patched = written(&github).await;
    assert_eq!(patched.len(), 1, "{patched:?}");
    assert_eq!(patched[0].0, "PATCH");

    // Undone by hand: the next check closes the issue, saying why.
    ec2.revoke_security_group_ingress()
        .group_id(&group)
        .ip_permissions(rule)
        .send()
        .await
        .unwrap();
    github.server.reset().await;
    github.viewer().await;
    open_issues(
        &github,
        vec![issue(31, BOT_REST, &format!("{marker}\nbefore"))],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/31/comments")))
        .respond_with(ResponseTemplate::new(201).set_body_json(openapi("issue-comment")))
        .expect(1)
        .mount(&github.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues/31")))
        .respond_with(ResponseTemplate::new(200).set_body_json(&opened))
        .expect(1)
        .mount(&github.server)
        .await;
    let clean = check(&repo, &github, &sha, &[]);
    assert_eq!(clean.out.code, 0, "{}", clean.out.stdout);
    assert_eq!(clean.outputs["has_drift"], "false");
    let closing = written(&github).await;
    assert_eq!(closing.len(), 2, "{closing:?}");
    assert!(
        closing[0]
            .2
            .starts_with(&format!("✅ `{NAME}` matches `main` again")),
        "{closing:?}"
    );
    assert_eq!(closing[1].2, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_write_issues_leaves_the_summary_and_a_warning() {
    let repo = GitRepo::new();
    repo.write(
        &format!("environments/{NAME}-ro.yaml"),
        environment(152, &[22]),
    );
    let sha = repo.commit("an environment, never applied");
    let github = GitHub::start().await;
    open_issues(&github, Vec::new()).await;
    // What GitHub answers a token without `issues: write`.
    Mock::given(method("POST"))
        .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue"
        })))
        .mount(&github.server)
        .await;
    let only = format!("{NAME}-ro");
    let run = scheduled(
        &repo,
        &github,
        &sha,
        &[("environment", &only)],
        &binary_vars(),
    );
    // Never applied: everything is missing, which is drift; the job stays green.
    assert_eq!(run.out.code, 0, "{}\n{}", run.out.stdout, run.out.stderr);
    assert_eq!(run.outputs["has_drift"], "true");
    assert!(run.summary.contains("missing"), "{}", run.summary);
    assert!(
        run.out.stdout.contains("::warning::")
            && run.out.stdout.contains("give the job `issues: write`"),
        "{}",
        run.out.stdout
    );
}

/// An environment that cannot be checked may be one without a file, whose orphans went
/// unread: the orphans issue is then left as it is, never closed as clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchecked_environment_leaves_the_orphans_issue_open() {
    let proxy = Proxy::new(&Cloud::new().account);
    // The plan's subnet listing fails; the search for orphans, which reads VPCs and
    // templates, does not.
    proxy.inject(
        Requests::Operation("DescribeSubnets".to_owned()),
        &[Fault::Status(400)],
    );
    let repo = GitRepo::new();
    repo.write(
        &format!("environments/{NAME}-unchecked.yaml"),
        environment(153, &[22]),
    );
    let sha = repo.commit("an environment");
    let github = GitHub::start().await;
    open_issues(
        &github,
        vec![issue(41, BOT_REST, &format!("{ORPHANS_MARKER}\nbefore"))],
    )
    .await;
    // Every environment asked for: the orphans issue is the check's to keep.
    let run = scheduled(&repo, &github, &sha, &[], &proxy.binary_vars(Some(1)));
    assert_eq!(run.out.code, 1, "{}\n{}", run.out.stdout, run.out.stderr);
    assert_eq!(run.outputs["failure_reason"], "plan-failed");
    let sent: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
    assert!(sent.iter().any(|o| o == "DescribeSubnets"), "{sent:?}");
    assert_eq!(written(&github).await, Vec::new());
}
