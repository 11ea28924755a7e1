//! Two applies of one environment at once (two processes, as two workflow runs or a
//! laptop and CI would start them): the apply lock in Secrets Manager lets exactly
//! one proceed; the other waits or stops naming the holder; nothing is made twice; a
//! holder that was killed blocks only until its lease ends.

use std::process::Child;
use std::time::Duration;

use crate::github::GitHub;
use crate::harness::Output;
use crate::proxy::{Hold, Proxy};
use crate::scenario::Scenario;

const APPLY: [&str; 3] = ["apply", "--env", "rabbitmq-prod"];

/// Waits for a started run, off this thread (which serves the image feed).
async fn finished(child: Child) -> Output {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joined")
        .expect("the run ends");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The holder a refused apply names: `... is being applied by HOLDER, since ...`.
fn refused_holder(stderr: &str) -> &str {
    let from = stderr.find("is being applied by ").expect("a held lock") + 20;
    let to = from + stderr[from..].find(", since ").expect("since");
    &stderr[from..to]
}

#[tokio::test]
async fn two_applies_started_together_take_turns_and_make_nothing_twice() {
    let s = Scenario::new("rabbitmq-prod").await;
    let other = Proxy::new(&s.cloud.account);
    let first = s.start_through(&s.proxy, &APPLY);
    let second = s.start_through(&other, &APPLY);
    let (a, b) = tokio::join!(finished(first), finished(second));
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let waited: Vec<&Output> = [&a, &b]
        .into_iter()
        .filter(|o| {
            o.stdout
                .contains("rabbitmq-prod: waiting for the apply of ")
        })
        .collect();
    assert_eq!(
        waited.len(),
        1,
        "exactly one waits:\n{}\n---\n{}",
        a.stdout,
        b.stdout
    );
    // The one that waited planned after the other had applied: it had nothing to do.
    assert!(
        waited[0].stdout.contains("Nothing to apply."),
        "{}",
        waited[0].stdout
    );
    let creates = |o: &Output| o.stdout.matches(": + create ").count();
    assert_eq!(
        creates(&a) + creates(&b),
        21,
        "{}\n---\n{}",
        a.stdout,
        b.stdout
    );
    s.inventory().await.assert_clean("two applies");
    let plan = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_names_its_holder_and_a_killed_holder_on_this_machine_is_taken_over_at_once() {
    let mut s = Scenario::new("rabbitmq-prod").await;
    // The holder stops, lock taken, at its 3rd write (the VPC's DNS), and is killed.
    s.proxy.hold(Hold::After(3));
    let mut holder = s.start(&APPLY);
    let held = tokio::task::block_in_place(|| s.proxy.wait_held(Duration::from_secs(60)))
        .expect("the holder reaches its 3rd write");
    assert_eq!(held.operation, "ModifyVpcAttribute");

    let impatient = Proxy::new(&s.cloud.account);
    let mut args = APPLY.to_vec();
    args.extend(["--lock-wait", "0"]);
    let refused = finished(s.start_through(&impatient, &args)).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let holder_name = format!("(pid {})", holder.id());
    assert!(
        refused
            .stderr
            .starts_with("error: environment `rabbitmq-prod` is being applied by "),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(&holder_name), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "its lock (secret `strata/rabbitmq-prod/apply-lock` in eu-west-1) lasts until "
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(
        impatient.writes(),
        Vec::<String>::new(),
        "a refused apply writes nothing"
    );

    holder.kill().expect("SIGKILL");
    let _ = holder.wait();
    s.reconnect();
    // Its lease has most of its 300 s to run, but its process is gone: the lock is
    // taken at once, saying whose claim and why.
    let mut args = APPLY.to_vec();
    args.extend(["--lock-wait", "0"]);
    let after = finished(s.start_through(&s.proxy, &args)).await;
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(
        after.stdout.contains(&format!(
            "rabbitmq-prod: took over the lock from {}",
            refused_holder(&refused.stderr)
        )) && after.stdout.contains(&format!(
            ": its process ({}) on this machine has ended",
            holder.id()
        )),
        "{}",
        after.stdout
    );
    assert!(!after.stdout.contains("waiting for"), "{}", after.stdout);
    let plan = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
    s.inventory().await.assert_clean("after the killed holder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_whose_environment_is_being_applied_stops_as_locked_and_applies_nothing() {
    let (repo, _, head) = crate::action::pull_request_repo("action-locked", 171);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claim = serde_json::json!({
        "holder": "octo/infra run 41 (attempt 1)",
        "since": now,
        "until": now + 3600,
    });
    // Another workflow run holds the lock (the Action runs in moto's default account).
    crate::cloud::put_secret(
        "eu-west-1",
        "strata/action-locked/apply-lock",
        &claim.to_string(),
    )
    .await;
    let (run, written) =
        crate::action::merge(&repo, 21, &head, None, &[], &[("lock_wait", "0")]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "locked");
    assert!(
        run.out.stdout.contains(
            "environment `action-locked` is being applied by octo/infra run 41 (attempt 1), since "
        ),
        "{}",
        run.out.stdout
    );
    assert_eq!(
        crate::action::vpc_commit("action-locked").await,
        None,
        "nothing was created"
    );
    // The pull request's comment keeps the reviewed plan: nothing is written to it.
    assert_eq!(written, Vec::<(String, String)>::new());
}

/// A claim on `env`'s lock by attempt 1 of workflow run 41 of the tests' repository,
/// with most of an hour of lease left, as a run that was cancelled leaves it.
async fn claimed_by_run_41(env: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claim = serde_json::json!({
        "holder": "octocat/Hello-World run 41 (attempt 1)",
        "run": { "repository": "octocat/Hello-World", "id": 41, "attempt": 1 },
        "since": now,
        "until": now + 3600,
    });
    crate::cloud::put_secret(
        "eu-west-1",
        &format!("strata/{env}/apply-lock"),
        &claim.to_string(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_run_github_reports_completed_is_taken_at_once() {
    let (repo, _, head) = crate::action::pull_request_repo("action-took-over", 191);
    claimed_by_run_41("action-took-over").await;
    let github = GitHub::start().await;
    github
        .run_attempt(41, 1, "completed", Some("cancelled"))
        .await;
    let (run, _) =
        crate::action::merge_on(&github, &repo, 22, &head, None, &[], &[("lock_wait", "0")]).await;
    assert_eq!(run.out.code, 0, "{}", run.out.stdout);
    assert!(
        run.out.stdout.contains(
            "action-took-over: took over the lock from octocat/Hello-World run 41 (attempt 1) (since "
        ) && run
            .out
            .stdout
            .contains("): GitHub reports run 41 (attempt 1) as completed"),
        "{}",
        run.out.stdout
    );
    assert_eq!(
        crate::action::vpc_commit("action-took-over").await,
        Some(Some(head.clone())),
        "applied"
    );
    let asked: Vec<String> = github
        .requests()
        .await
        .into_iter()
        .filter(|(_, p, _)| p.contains("/actions/runs/"))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        asked,
        ["GET /repos/octocat/Hello-World/actions/runs/41/attempts/1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_run_is_still_in_progress_stays_held() {
    let (repo, _, head) = crate::action::pull_request_repo("action-run-going", 192);
    claimed_by_run_41("action-run-going").await;
    let github = GitHub::start().await;
    github.run_attempt(41, 1, "in_progress", None).await;
    let (run, _) =
        crate::action::merge_on(&github, &repo, 23, &head, None, &[], &[("lock_wait", "0")]).await;
    assert_eq!(run.out.code, 1, "{}", run.out.stdout);
    assert_eq!(run.outputs["failure_reason"], "locked");
    assert!(!run.out.stdout.contains("took over"), "{}", run.out.stdout);
    assert_eq!(crate::action::vpc_commit("action-run-going").await, None);
}
