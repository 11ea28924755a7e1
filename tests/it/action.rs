//! `strata action` through the runner's contract: the real binary with an event file,
//! `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY` and `INPUT_*`, a wiremock GitHub answering
//! with GitHub's own examples, and moto.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::cloud::binary_vars;
use crate::github::{
    self, BOT_REST, GitHub, Trigger, comment, dispatch_event, merged_pull, no_credentials,
    pull_request_event, push_event, run_action,
};
use crate::harness::GitRepo;
use strata::plan::comment::{Header, MARKER};

/// A network-only environment (quick to apply on moto); `octet` keeps tests apart in
/// moto's default account.
pub(crate) fn environment(octet: u8, ports: &[u16]) -> String {
    let rules: Vec<String> = ports
        .iter()
        .map(|p| format!("{{ protocol: tcp, ports: {p}, from: 10.0.0.0/8 }}"))
        .collect();
    format!(
        "region: eu-west-1\nnetwork:\n  cidr: 10.{octet}.0.0/16\n  zones: 1\n  private_subnets: 1\n  public_subnets: 0\n  nat: none\n  security_groups:\n    web:\n      ingress: [{}]\n",
        rules.join(", ")
    )
}

/// Runs the action for pull request `number` (`opened`, `synchronize`, ...) of
/// `repo`, from `base` to `head`, checked out as its merge ref.
pub(crate) fn open_pull_request(
    repo: &GitRepo,
    github: &GitHub,
    action: &str,
    number: u64,
    base: &str,
    head: &str,
    aws: &[(&'static str, String)],
) -> github::ActionRun {
    let event = pull_request_event(action, number, base, head, &[]);
    run_action(
        repo.path(),
        github,
        Trigger {
            name: "pull_request",
            payload: &event,
            sha: head,
            git_ref: &format!("refs/pull/{number}/merge"),
        },
        &[],
        aws,
    )
}

/// A repository with a base commit and a pull request's head commit on top of it.
pub(crate) fn pull_request_repo(name: &str, octet: u8) -> (GitRepo, String, String) {
    let repo = GitRepo::new();
    repo.write("README.md", "infrastructure\n");
    let base = repo.commit("base");
    repo.write(
        &format!("environments/{name}.yaml"),
        environment(octet, &[22]),
    );
    let head = repo.commit("add an environment");
    (repo, base, head)
}

fn creates(body: &str) -> bool {
    body.starts_with(MARKER)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_gets_one_comment_edited_in_place_on_the_next_push() {
    let (repo, base, head) = pull_request_repo("action-pr", 141);
    let github = GitHub::start().await;
    github.comments(2, vec![]).await;
    github.accept_create(2, 501).await;
    let run = open_pull_request(&repo, &github, "opened", 2, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert_eq!(written.len(), 1, "{written:?}");
    let (verb, body) = &written[0];
    assert_eq!(verb, "POST");
    assert!(creates(body), "{body}");
    assert!(
        body.contains("| `action-pr` | 4 | 0 | 0 | 0 | 0 |"),
        "{body}"
    );
    let header = Header::parse(body).expect("a hidden header");
    assert!(header.digests.contains_key("action-pr"));
    assert_eq!(run.outputs["changed_environments"], "[\"action-pr\"]");
    assert_eq!(run.outputs["has_changes"], "true");
    assert_eq!(run.outputs["failure_reason"], "");
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join(&run.outputs["plan_json"])).unwrap(),
    )
    .unwrap();
    assert_eq!(plan["summary"]["create"], 4);
    assert!(
        run.summary.contains("create security group sg/web"),
        "{}",
        run.summary
    );
    assert!(
        run.out
            .stdout
            .contains("::group::action-pr · network layer"),
        "{}",
        run.out.stdout
    );

    // The next push: strata's comment is found by marker and login (REST names the bot
    // with `[bot]`, GraphQL without) and edited; a marked comment by someone else stays.
    let github = GitHub::start().await;
    github
        .comments(
            2,
            vec![
                comment(77, "mallory", &format!("{MARKER}\nplanted")),
                comment(501, BOT_REST, body),
            ],
        )
        .await;
    github.accept_update(501).await;
    let run = open_pull_request(
        &repo,
        &github,
        "synchronize",
        2,
        &base,
        &head,
        &binary_vars(),
    );
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let requests = github.requests().await;
    let written = github.written().await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].0, "PATCH");
    assert!(
        requests
            .iter()
            .any(|(m, p, _)| m == "PATCH" && p.ends_with("/issues/comments/501")),
        "{requests:?}"
    );
    assert!(!requests.iter().any(|(_, p, _)| p.ends_with("/comments/77")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_that_github_made_is_not_posted_twice() {
    let (repo, base, head) = pull_request_repo("action-retry", 142);
    let github = GitHub::start().await;
    // The first listing finds nothing; the create answers 502 although GitHub made
    // the comment, which the second listing shows.
    let comments = format!(
        "/repos/{}/{}/issues/3/comments",
        github::OWNER,
        github::REPO
    );
    Mock::given(method("GET"))
        .and(path(comments.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&github.server)
        .await;
    github
        .comments(3, vec![comment(601, BOT_REST, &format!("{MARKER}\nplan"))])
        .await;
    Mock::given(method("POST"))
        .and(path(comments))
        .respond_with(ResponseTemplate::new(502))
        .mount(&github.server)
        .await;
    github.accept_update(601).await;
    let run = open_pull_request(&repo, &github, "opened", 3, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    let verbs: Vec<&str> = written.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(verbs, ["POST", "PATCH"], "{}", run.out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_become_annotations_and_a_comment() {
    let repo = GitRepo::new();
    repo.write("README.md", "x\n");
    let base = repo.commit("base");
    repo.write(
        "environments/broken.yaml",
        "region: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/33\n  zones: 1\n  private_subnets: 1\n",
    );
    let head = repo.commit("broken");
    let github = GitHub::start().await;
    github.comments(4, vec![]).await;
    github.accept_create(4, 701).await;
    let run = open_pull_request(&repo, &github, "opened", 4, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert!(
        run.out
            .stdout
            .contains("::error file=environments/broken.yaml,line=3,col=9,title=strata::"),
        "{}",
        run.out.stdout
    );
    assert_eq!(run.outputs["failure_reason"], "config-error");
    let written = github.written().await;
    assert_eq!(written.len(), 1);
    assert!(
        written[0].1.contains("### ❌ No plan: 1 problem in 1 file"),
        "{}",
        written[0].1
    );
    assert!(
        written[0].1.contains("environments/broken.yaml:3:9"),
        "{}",
        written[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_aws_credentials_a_model_only_plan_is_posted() {
    let (repo, base, head) = pull_request_repo("action-fork", 143);
    let github = GitHub::start().await;
    github.comments(5, vec![]).await;
    github.accept_create(5, 801).await;
    let run = open_pull_request(&repo, &github, "opened", 5, &base, &head, &no_credentials());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert_eq!(written.len(), 1);
    let body = &written[0].1;
    assert!(
        body.contains("Model only: not compared with live AWS"),
        "{body}"
    );
    assert!(
        body.contains("| `action-fork` | 4 | 0 | 0 | 0 | 0 |"),
        "{body}"
    );
    assert!(Header::parse(body).unwrap().model_only);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_that_changes_nothing_strata_manages_posts_no_comment() {
    let repo = GitRepo::new();
    repo.write("environments/quiet.yaml", environment(144, &[22]));
    let base = repo.commit("base");
    repo.write("README.md", "docs only\n");
    let head = repo.commit("docs");
    let github = GitHub::start().await;
    github.comments(6, vec![]).await;
    let run = open_pull_request(&repo, &github, "opened", 6, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(github.written().await, Vec::<(String, String)>::new());
    assert_eq!(run.outputs["has_changes"], "false");
    assert_eq!(run.outputs["changed_environments"], "[]");
    assert!(run.summary.contains("changes nothing strata manages"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_leaves_a_notice_and_a_green_job() {
    let (repo, base, head) = pull_request_repo("action-readonly", 145);
    let github = GitHub::start().await;
    github.comments(7, vec![]).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{}/{}/issues/7/comments",
            github::OWNER,
            github::REPO
        )))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&github.server)
        .await;
    let run = open_pull_request(&repo, &github, "opened", 7, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert!(
        run.out
            .stdout
            .contains("::notice::strata could not comment on #7"),
        "{}",
        run.out.stdout
    );
    assert!(run.summary.contains("create VPC vpc"));
}

/// Plans pull request `number` of `repo` (base..head) and returns the comment body.
pub(crate) async fn reviewed_plan(repo: &GitRepo, number: u64, base: &str, head: &str) -> String {
    let github = GitHub::start().await;
    github.comments(number, vec![]).await;
    github.accept_create(number, 900 + number).await;
    let run = open_pull_request(repo, &github, "opened", number, base, head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    github.written().await.remove(0).1
}

/// Runs the push of `head` to main with the merged pull request `number` carrying
/// `comment_body` (or no comment) and `labels`, with the action's `inputs`.
pub(crate) async fn merge(
    repo: &GitRepo,
    number: u64,
    head: &str,
    comment_body: Option<&str>,
    labels: &[&str],
    inputs: &[(&str, &str)],
) -> (github::ActionRun, Vec<(String, String)>) {
    merge_on(
        &GitHub::start().await,
        repo,
        number,
        head,
        comment_body,
        labels,
        inputs,
    )
    .await
}

/// [`merge`] against `github`, which a test has given answers of its own.
pub(crate) async fn merge_on(
    github: &GitHub,
    repo: &GitRepo,
    number: u64,
    head: &str,
    comment_body: Option<&str>,
    labels: &[&str],
    inputs: &[(&str, &str)],
) -> (github::ActionRun, Vec<(String, String)>) {
    github.pulls_of(head, merged_pull(number, labels)).await;
    let comments = comment_body
        .map(|b| vec![comment(900 + number, BOT_REST, b)])
        .unwrap_or_default();
    github
        .keep_comments(number, comments, std::time::Duration::ZERO)
        .await;
    let event = push_event("0000000000000000000000000000000000000000", head);
    let run = run_action(
        repo.path(),
        github,
        Trigger {
            name: "push",
            payload: &event,
            sha: head,
            git_ref: "refs/heads/main",
        },
        inputs,
        &binary_vars(),
    );
    let written = github.written().await;
    (run, written)
}

pub(crate) async fn vpc_commit(name: &str) -> Option<Option<String>> {
    let config = crate::cloud::moto_config("eu-west-1").await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:strata:environment")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap();
    vpcs.vpcs().first().map(|v| {
        v.tags()
            .iter()
            .find(|t| t.key() == Some("strata:commit"))
            .and_then(|t| t.value().map(str::to_owned))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_applies_the_reviewed_plan_and_records_it_on_the_comment() {
    let (repo, base, head) = pull_request_repo("action-merge", 146);
    let body = reviewed_plan(&repo, 8, &base, &head).await;
    let (run, written) = merge(&repo, 8, &head, Some(&body), &[], &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "");
    let verbs: Vec<&str> = written.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(verbs, ["PATCH", "PATCH"], "{written:?}");
    assert!(written[0].1.contains("Applying"), "{}", written[0].1);
    assert!(
        written[1]
            .1
            .contains("✅ `action-merge`: applied 4 changes"),
        "{}",
        written[1].1
    );
    // The record keeps the reviewed plan's header.
    assert_eq!(Header::parse(&written[1].1), Header::parse(&body));
    assert_eq!(vpc_commit("action-merge").await, Some(Some(head.clone())));
    assert!(
        run.out
            .stdout
            .contains("action-merge: network, cluster, node since its last applied commit"),
        "{}",
        run.out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_changed_since_review_is_not_applied() {
    let (repo, base, head) = pull_request_repo("action-moved", 147);
    let body = reviewed_plan(&repo, 9, &base, &head).await;
    // What was reviewed opened port 22; main has moved on to port 2222 since.
    repo.write("environments/action-moved.yaml", environment(147, &[2222]));
    let moved = repo.commit("moved");
    let (run, written) = merge(&repo, 9, &moved, Some(&body), &[], &[]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "plan-changed");
    assert_eq!(
        vpc_commit("action-moved").await,
        None,
        "nothing was created"
    );
    let last = &written.last().expect("the comment records it").1;
    assert!(
        last.contains("not applied: the plan differs from the one reviewed"),
        "{last}"
    );
    assert!(last.contains("review the plan now (below, "), "{last}");
    assert!(
        last.contains("+   ingress: tcp 2222 from 10.0.0.0/8"),
        "the plan now: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_approved_plan_a_merge_without_a_reviewed_plan_applies_nothing() {
    let (repo, _, head) = pull_request_repo("action-unreviewed", 155);
    let (run, written) = merge(
        &repo,
        16,
        &head,
        None,
        &[],
        &[("require_approved_plan", "true")],
    )
    .await;
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "plan-changed");
    assert_eq!(
        vpc_commit("action-unreviewed").await,
        None,
        "nothing was created"
    );
    let last = &written.last().expect("the pull request records it").1;
    assert!(
        last.contains("`require_approved_plan` is set: nothing is applied"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_without_consent_changes_nothing() {
    let (repo, base, head) = pull_request_repo("action-teardown", 148);
    let body = reviewed_plan(&repo, 10, &base, &head).await;
    let (run, _) = merge(&repo, 10, &head, Some(&body), &[], &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    repo.remove("environments/action-teardown.yaml");
    let gone = repo.commit("remove the environment");
    // No reviewed plan for it: applied without one, but the teardown needs consent.
    let (run, written) = merge(&repo, 11, &gone, None, &[], &[]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "needs-consent");
    assert_eq!(
        vpc_commit("action-teardown").await,
        Some(Some(head.clone())),
        "the VPC stays"
    );
    let last = &written.last().expect("the comment records it").1;
    assert!(last.contains("strata:allow-destroy"), "{last}");
    // With the label, it goes.
    let (run, _) = merge(&repo, 11, &gone, None, &["strata:allow-destroy"], &[]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(vpc_commit("action-teardown").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_plans_exactly_the_asked_environment_and_layer() {
    let repo = GitRepo::new();
    repo.write("environments/action-manual.yaml", environment(149, &[22]));
    repo.write("environments/action-other.yaml", environment(150, &[22]));
    let head = repo.commit("two environments");
    let github = GitHub::start().await;
    let event = dispatch_event(
        json!({ "environment": "action-manual", "layer": "network", "mode": "plan" }),
    );
    let run = run_action(
        repo.path(),
        &github,
        Trigger {
            name: "workflow_dispatch",
            payload: &event,
            sha: &head,
            git_ref: "refs/heads/main",
        },
        &[
            ("environment", "action-manual"),
            ("layer", "network"),
            ("mode", "plan"),
        ],
        &binary_vars(),
    );
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(run.outputs["changed_environments"], "[\"action-manual\"]");
    assert!(
        run.summary
            .contains("| `action-manual` | 4 | 0 | 0 | 0 | 0 |"),
        "{}",
        run.summary
    );
    assert!(!run.summary.contains("action-other"));
    assert_eq!(
        vpc_commit("action-manual").await,
        None,
        "a plan writes nothing"
    );
    let unknown = run_action(
        repo.path(),
        &github,
        Trigger {
            name: "workflow_dispatch",
            payload: &event,
            sha: &head,
            git_ref: "refs/heads/main",
        },
        &[("environment", "nope")],
        &binary_vars(),
    );
    assert_eq!(unknown.code_and_reason(), (1, "config-error".to_owned()));
    assert!(
        unknown.out.stdout.contains("no environment `nope`"),
        "{}",
        unknown.out.stdout
    );
    // The manual run's own inputs count when the workflow passes none to the action.
    let typo = dispatch_event(json!({ "environment": "action-manual", "layer": "nodes" }));
    let typo = run_action(
        repo.path(),
        &github,
        Trigger {
            name: "workflow_dispatch",
            payload: &typo,
            sha: &head,
            git_ref: "refs/heads/main",
        },
        &[],
        &binary_vars(),
    );
    assert_eq!(typo.code_and_reason(), (1, "config-error".to_owned()));
    assert!(
        typo.out.stdout.contains("unknown layer `nodes`"),
        "{}",
        typo.out.stdout
    );
}

impl github::ActionRun {
    fn code_and_reason(&self) -> (i32, String) {
        (
            self.out.code,
            self.outputs
                .get("failure_reason")
                .cloned()
                .unwrap_or_default(),
        )
    }
}
