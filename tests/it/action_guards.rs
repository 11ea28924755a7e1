//! What the Action never does, through the runner's contract: post over GitHub's
//! size limit, give up on a passing GitHub fault or post twice after one, let a
//! secret reach GitHub, the summary or the outputs, or read a file outside the
//! repository.

use std::fmt::Write as _;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::action::{environment, merge, open_pull_request, pull_request_repo};
use crate::cloud::binary_vars;
use crate::github::{self, BOT_REST, GitHub, comment};
use crate::harness::{self, GitRepo};
use strata::plan::comment::{COMMENT_BUDGET, MARKER, SUMMARY_BUDGET};

/// A network of `groups` security groups with `rules` rules each: a plan of about
/// 40 bytes a rule.
fn large_environment(octet: u8, groups: usize, rules: u16) -> String {
    let mut text = format!(
        "region: eu-west-1\nnetwork:\n  cidr: 10.{octet}.0.0/16\n  zones: 1\n  private_subnets: 1\n  public_subnets: 0\n  nat: none\n  security_groups:\n"
    );
    for g in 0..groups {
        let ports: Vec<String> = (0..rules)
            .map(|p| format!("{{ protocol: tcp, ports: {}, from: 10.0.0.0/8 }}", 1000 + p))
            .collect();
        let _ = writeln!(text, "    g{g}:\n      ingress: [{}]", ports.join(", "));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_too_large_for_a_comment_is_cut_and_the_summary_has_it_whole() {
    let repo = GitRepo::new();
    repo.write("README.md", "x\n");
    let base = repo.commit("base");
    repo.write(
        "environments/action-large.yaml",
        large_environment(151, 60, 50),
    );
    let head = repo.commit("sixty groups");
    let github = GitHub::start().await;
    github.comments(12, vec![]).await;
    github.accept_create(12, 1201).await;
    let run = open_pull_request(&repo, &github, "opened", 12, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert_eq!(written.len(), 1);
    let body = &written[0].1;
    assert!(
        body.chars().count() <= COMMENT_BUDGET,
        "{} characters",
        body.chars().count()
    );
    assert!(
        body.contains("| `action-large` | 63 | 0 | 0 | 0 | 0 |"),
        "{body}"
    );
    assert!(
        body.contains("more in “the details of `action-large`”: see the job summary._"),
        "{}",
        &body[body.len().saturating_sub(400)..]
    );
    assert!(run.summary.len() > COMMENT_BUDGET && run.summary.len() <= SUMMARY_BUDGET);
    assert!(run.summary.contains("+ create  sg/g59"));
    assert!(
        run.summary
            .contains("+   ingress: tcp 1049 from 10.0.0.0/8")
    );
    assert!(!run.summary.contains("more in"), "the summary is whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_and_a_secondary_rate_limit_are_waited_out_and_one_comment_is_posted() {
    let (repo, base, head) = pull_request_repo("action-limits", 152);
    let github = GitHub::start().await;
    let comments = format!(
        "/repos/{}/{}/issues/13/comments",
        github::OWNER,
        github::REPO
    );
    Mock::given(method("GET"))
        .and(path(comments.clone()))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&github.server)
        .await;
    Mock::given(method("GET"))
        .and(path(comments.clone()))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .set_body_json(json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                })),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&github.server)
        .await;
    github.comments(13, vec![]).await;
    github.accept_create(13, 1301).await;
    let run = open_pull_request(&repo, &github, "opened", 13, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let requests = github.requests().await;
    let listings = requests
        .iter()
        .filter(|(m, p, _)| m == "GET" && *p == comments)
        .count();
    assert_eq!(listings, 3, "{requests:?}");
    let written = github.written().await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].0, "POST");
    assert!(
        run.out.stdout.contains("comment 1301 posted on #13"),
        "{}",
        run.out.stdout
    );
}

/// What a run wrote that no secret may reach: the job summary, stderr, every request
/// body the GitHub test server received, and the outputs.
async fn everything_written(run: &github::ActionRun, github: &GitHub) -> Vec<String> {
    let mut all = vec![run.summary.clone(), run.out.stderr.clone()];
    all.extend(
        github
            .requests()
            .await
            .into_iter()
            .map(|(_, _, body)| body.to_string()),
    );
    all.extend(run.outputs.values().cloned());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_key_reaches_no_comment_summary_output_or_file() {
    let key = harness::unique_key("action-key");
    crate::cloud::put_secret("eu-west-1", "strata/action-key/ssh-public-key", &key).await;
    let repo = GitRepo::new();
    repo.write("README.md", "x\n");
    let base = repo.commit("base");
    let cluster = "cluster:\n  mode: autoscaling\n  min: 1\n  max: 1\n  instance_type: t3.small\n  ami: ami-0f1a7ca7000000001\n  subnets: private\n  security_groups: [web]\nnode:\n  units: [web.service]\n  ssh: { public_key_secret: strata/action-key/ssh-public-key }\n";
    repo.write(
        "environments/action-key.yaml",
        environment(153, &[22]) + cluster,
    );
    repo.write(
        "units/web.service",
        "[Service]\nExecStart=/usr/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n",
    );
    let head = repo.commit("a cluster with a key");
    let github = GitHub::start().await;
    github.comments(14, vec![]).await;
    github.accept_create(14, 1401).await;
    let run = open_pull_request(&repo, &github, "opened", 14, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert!(
        written[0].1.contains("**node** · 1 created"),
        "{}",
        written[0].1
    );
    let body = key.split(' ').nth(1).unwrap();
    // The log holds it only where the runner is told to mask it.
    for line in run.out.stdout.lines().filter(|l| l.contains(body)) {
        assert!(line.starts_with("::add-mask::"), "{line}");
    }
    let seen = everything_written(&run, &github).await;
    let everything: Vec<&str> = seen.iter().map(String::as_str).collect();
    harness::assert_key_nowhere(&key, &everything);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strata_finds_its_comment_past_the_first_page_and_never_posts_a_second() {
    let (repo, base, head) = pull_request_repo("action-pages", 156);
    let github = GitHub::start().await;
    let others: Vec<_> = (1..=100).map(|id| comment(id, "octocat", "LGTM")).collect();
    github.comments_page(17, 1, others).await;
    github
        .comments_page(
            17,
            2,
            vec![comment(1701, BOT_REST, &format!("{MARKER}\nold plan"))],
        )
        .await;
    github.accept_update(1701).await;
    let run = open_pull_request(
        &repo,
        &github,
        "synchronize",
        17,
        &base,
        &head,
        &binary_vars(),
    );
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let verbs: Vec<String> = github.written().await.into_iter().map(|(m, _)| m).collect();
    assert_eq!(verbs, ["PATCH"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_that_stops_changing_anything_gets_its_comment_updated() {
    let repo = GitRepo::new();
    repo.write("environments/action-undone.yaml", environment(157, &[22]));
    let base = repo.commit("base");
    repo.write("README.md", "docs only now\n");
    let head = repo.commit("the change was reverted; docs remain");
    let github = GitHub::start().await;
    github
        .comments(
            18,
            vec![comment(
                1801,
                BOT_REST,
                &format!("{MARKER}\nan earlier plan"),
            )],
        )
        .await;
    github.accept_update(1801).await;
    let run = open_pull_request(
        &repo,
        &github,
        "synchronize",
        18,
        &base,
        &head,
        &binary_vars(),
    );
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, "PATCH");
    assert!(
        written[0].1.contains("changes nothing strata manages"),
        "{}",
        written[0].1
    );
}

/// A repository whose pull request adds a unit that is a link to a file outside it.
fn linked_unit_repo(outside: &std::path::Path) -> (GitRepo, String, String) {
    let repo = GitRepo::new();
    repo.write("environments/action-link.yaml", environment(154, &[22]));
    let base = repo.commit("base");
    std::fs::create_dir_all(repo.path().join("units")).unwrap();
    std::os::unix::fs::symlink(outside, repo.path().join("units/stolen.service")).unwrap();
    let head = repo.commit("a unit that is a link");
    (repo, base, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_unit_is_a_configuration_error_on_a_pull_request_and_a_merge() {
    let secret = "runner-file-that-must-stay-on-the-runner";
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        outside.path(),
        format!("[Service]\nExecStart=/bin/echo {secret}\n"),
    )
    .unwrap();
    let (repo, base, head) = linked_unit_repo(outside.path());

    let github = GitHub::start().await;
    github.comments(15, vec![]).await;
    github.accept_create(15, 1501).await;
    let run = open_pull_request(&repo, &github, "opened", 15, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "config-error");
    assert!(
        run.out
            .stdout
            .contains("::error file=units/stolen.service,title=strata::is a symbolic link"),
        "{}",
        run.out.stdout
    );
    let written = github.written().await;
    assert!(
        written[0]
            .1
            .contains("units/stolen.service: is a symbolic link"),
        "{}",
        written[0].1
    );

    let (merged, written) = merge(&repo, 15, &head, None, &[], &[]).await;
    assert_eq!(merged.out.code, 1, "{}", merged.out.stdout);
    assert_eq!(merged.outputs["failure_reason"], "config-error");
    assert!(
        merged
            .out
            .stdout
            .contains("::error file=units/stolen.service"),
        "{}",
        merged.out.stdout
    );
    for text in [
        &run.out.stdout,
        &run.summary,
        &merged.out.stdout,
        &merged.summary,
    ] {
        assert!(!text.contains(secret));
    }
    assert!(written.iter().all(|(_, b)| !b.contains(secret)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_discovery_token_reaches_no_comment_summary_output_or_file() {
    let key = harness::unique_key("action-etcd");
    crate::cloud::put_secret("eu-west-1", "strata/action-etcd/ssh-public-key", &key).await;
    // A token of its own, stored as the first apply that launched the cluster left it.
    let secret = harness::unique_token("action-etcd");
    let secret = secret.as_str();
    let token = format!("https://discovery.etcd.io/{secret}");
    crate::cloud::put_secret("eu-west-1", "strata/action-etcd/etcd-discovery", &token).await;
    let repo = GitRepo::new();
    repo.write("README.md", "x\n");
    let base = repo.commit("base");
    let cluster = "cluster:\n  mode: fixed\n  size: 3\n  instance_type: t3.small\n  ami: ami-0f1a7ca7000000001\n  subnets: private\n  security_groups: [web]\nnode:\n  units: [etcd.service]\n  ssh: { public_key_secret: strata/action-etcd/ssh-public-key }\n  etcd: { bootstrap: discovery }\n";
    repo.write(
        "environments/action-etcd.yaml",
        environment(172, &[2379, 2380]) + cluster,
    );
    repo.copy_dir(&harness::project_root().join("units"), "units");
    let head = repo.commit("an etcd cluster by discovery");
    let github = GitHub::start().await;
    github.comments(22, vec![]).await;
    github.accept_create(22, 2201).await;
    let run = open_pull_request(&repo, &github, "opened", 22, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let written = github.written().await;
    assert!(
        written[0].1.contains("**node** · 1 created"),
        "{}",
        written[0].1
    );
    // The token was read (the runner is told to mask it) and is in no other line.
    let lines: Vec<&str> = run
        .out
        .stdout
        .lines()
        .filter(|l| l.contains(secret))
        .collect();
    assert!(!lines.is_empty(), "the token was read:\n{}", run.out.stdout);
    for line in lines {
        assert!(line.starts_with("::add-mask::"), "{line}");
    }
    let seen = everything_written(&run, &github).await;
    let everything: Vec<&str> = seen.iter().map(String::as_str).collect();
    harness::assert_secret_nowhere(secret, &everything);
    harness::assert_key_nowhere(&key, &everything);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_slow_and_failing_github_answers_are_retried_and_one_comment_is_posted() {
    let (repo, base, head) = pull_request_repo("action-github-faults", 173);
    let github = GitHub::start().await;
    github.comments(23, vec![]).await;
    github.accept_create(23, 2301).await;
    let port = github.server.address().port();
    // Every other request to GitHub: dropped before it arrives, answered 1.5 s late,
    // or answered 503, in turn.
    let proxy = crate::proxy::Proxy::in_front_of(port);
    proxy.inject(
        crate::proxy::Requests::EveryNth(2),
        &[
            crate::proxy::Fault::Drop,
            crate::proxy::Fault::Slow(std::time::Duration::from_millis(1500)),
            crate::proxy::Fault::Status(503),
        ],
    );
    let mut vars = binary_vars();
    vars.push(("GITHUB_API_URL", proxy.url()));
    vars.push(("GITHUB_GRAPHQL_URL", format!("{}/graphql", proxy.url())));
    let run = open_pull_request(&repo, &github, "opened", 23, &base, &head, &vars);
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    let faults: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.fault.is_some())
        .collect();
    assert!(faults.len() >= 2, "{:?}", proxy.calls());
    let written = github.written().await;
    assert_eq!(written.len(), 1, "exactly one comment: {written:?}");
    assert_eq!(written[0].0, "POST");
    assert!(
        run.out.stdout.contains("comment 2301 posted on #23"),
        "{}\n{:?}",
        run.out.stdout,
        proxy.calls()
    );
}
