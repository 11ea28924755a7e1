//! `strata action` on `merge_group`, a merge queue's check, with GitHub's own
//! `merge_group` sample: the queue's commit is planned as its pull request's merge
//! would be, nothing is applied and nothing is posted; a checkout that is not the
//! queue's commit, a configuration error or a plan that cannot be made fails the
//! check, and an entry that changes nothing strata manages passes at once.

use crate::action::{environment, pull_request_repo, vpc_commit};
use crate::cloud::binary_vars;
use crate::github::{self, GitHub, Trigger, merge_group_event, run_action};
use crate::harness::GitRepo;

/// Runs the merge queue's check of `head` (built on `base`) in `repo`.
fn check_queue(
    repo: &GitRepo,
    github: &GitHub,
    base: &str,
    head: &str,
    aws: &[(&'static str, String)],
) -> github::ActionRun {
    let event = merge_group_event(base, head);
    run_action(
        repo.path(),
        github,
        Trigger {
            name: "merge_group",
            payload: &event,
            sha: head,
            git_ref: event["merge_group"]["head_ref"].as_str().unwrap(),
        },
        &[],
        aws,
    )
}

/// AWS credentials with an endpoint nothing listens on: any AWS call fails the run.
fn unreachable_aws() -> Vec<(&'static str, String)> {
    let mut vars = binary_vars();
    vars[0].1 = "http://127.0.0.1:9".to_owned();
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_entry_is_planned_into_the_summary_and_nothing_is_applied_or_posted() {
    let (repo, base, head) = pull_request_repo("queue-plan", 161);
    let github = GitHub::start().await;
    let run = check_queue(&repo, &github, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(run.outputs["changed_environments"], "[\"queue-plan\"]");
    assert_eq!(run.outputs["has_changes"], "true");
    assert_eq!(run.outputs["failure_reason"], "");
    assert!(
        run.summary.contains("| `queue-plan` | 4 | 0 | 0 | 0 | 0 |"),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("create security group sg/web"));
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join(&run.outputs["plan_json"])).unwrap(),
    )
    .unwrap();
    assert_eq!(plan["summary"]["create"], 4);
    assert!(
        run.out.stdout.contains(&format!(
            "planning what {} changes since {}",
            &head[..12],
            &base[..12]
        )),
        "{}",
        run.out.stdout
    );
    // No comment, not even a look for one: the queue's check talks to GitHub not at all.
    assert_eq!(github.requests().await, vec![]);
    assert_eq!(vpc_commit("queue-plan").await, None, "nothing was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_that_is_not_the_queues_commit_is_refused_naming_both() {
    let (repo, base, head) = pull_request_repo("queue-checkout", 162);
    repo.write(
        "environments/queue-checkout.yaml",
        environment(162, &[22, 443]),
    );
    let checkout = repo.commit("a later commit, not the queue's");
    let github = GitHub::start().await;
    let run = check_queue(&repo, &github, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert!(
        run.out.stdout.contains(&format!(
            "::error::the checkout is at {checkout}, not at the merge queue's commit {head}"
        )),
        "{}",
        run.out.stdout
    );
    assert_eq!(run.outputs["failure_reason"], "config-error");
    assert_eq!(run.outputs["has_changes"], "false");
    assert_eq!(run.summary, "", "nothing was planned");
    assert_eq!(github.requests().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_error_fails_the_queues_check_without_a_comment() {
    let repo = GitRepo::new();
    repo.write("README.md", "x\n");
    let base = repo.commit("base");
    repo.write(
        "environments/broken.yaml",
        "region: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/33\n  zones: 1\n  private_subnets: 1\n",
    );
    let head = repo.commit("broken");
    let github = GitHub::start().await;
    let run = check_queue(&repo, &github, &base, &head, &binary_vars());
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "config-error");
    assert!(
        run.out
            .stdout
            .contains("::error file=environments/broken.yaml,line=3,col=9,title=strata::"),
        "{}",
        run.out.stdout
    );
    assert!(
        run.summary.contains("### ❌ No plan: 1 problem in 1 file"),
        "{}",
        run.summary
    );
    assert_eq!(github.requests().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_cannot_be_made_fails_the_queues_check() {
    let (repo, base, head) = pull_request_repo("queue-unreachable", 163);
    let github = GitHub::start().await;
    let run = check_queue(&repo, &github, &base, &head, &unreachable_aws());
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "plan-failed");
    assert!(
        run.summary.contains("### strata plan could not be made"),
        "{}",
        run.summary
    );
    assert_eq!(github.requests().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_entry_that_changes_nothing_strata_manages_passes_without_reading_aws() {
    let repo = GitRepo::new();
    repo.write("environments/queue-quiet.yaml", environment(164, &[22]));
    let base = repo.commit("base");
    repo.write("README.md", "docs only\n");
    let head = repo.commit("docs");
    let github = GitHub::start().await;
    // Any AWS call would fail the run: it passes because it makes none.
    let run = check_queue(&repo, &github, &base, &head, &unreachable_aws());
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert_eq!(run.outputs["has_changes"], "false");
    assert_eq!(run.outputs["changed_environments"], "[]");
    assert_eq!(run.outputs["failure_reason"], "");
    assert!(
        run.summary.contains("This merge queue entry (at `"),
        "{}",
        run.summary
    );
    assert_eq!(github.requests().await, vec![]);
}
