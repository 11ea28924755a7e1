//! Environments are independent: an apply works on several side by side
//! (`--parallel`), and one that fails, at apply or at plan time, stops no other; the
//! next run converges.

use crate::action::environment;
use crate::harness::{GitRepo, example_with_feed, project_root};
use crate::proxy::{Fault, Proxy, Requests};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_environment_failing_at_apply_stops_no_other_and_the_next_run_converges() {
    let proxy = Proxy::new(&crate::cloud::Cloud::new().account);
    let repo = GitRepo::new();
    for (name, octet) in [("par-a", 193), ("par-b", 194), ("par-c", 195)] {
        repo.write(
            &format!("environments/{name}.yaml"),
            environment(octet, &[22]),
        );
    }
    repo.commit("three environments");
    // AWS refuses par-b's subnet, and only par-b's.
    proxy.inject(
        Requests::Carrying("CreateSubnet".to_owned(), "10.194.".to_owned()),
        &[Fault::Status(400)],
    );
    let failed = proxy.run(&repo, &["apply", "--parallel", "3"]).await;
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    for name in ["par-a", "par-c"] {
        assert!(
            failed
                .stdout
                .contains(&format!("{name}: + create security group sg/web")),
            "{}",
            failed.stdout
        );
    }
    assert!(
        failed
            .stderr
            .starts_with("error: environment `par-b`: creating subnet subnet/private/0: "),
        "{}",
        failed.stderr
    );
    // par-a's and par-c's 4 resources each, and par-b's VPC.
    assert!(
        failed
            .stderr
            .contains("applied before the failure: 9 changes\n"),
        "{}",
        failed.stderr
    );
    let not_applied = &failed.stderr[failed.stderr.find("not applied:").unwrap()..];
    assert!(not_applied.contains("par-b"), "{}", failed.stderr);
    assert!(
        !not_applied.contains("par-a") && !not_applied.contains("par-c"),
        "{}",
        failed.stderr
    );
    // The others are whole; par-b still has its work to do.
    for (name, code) in [("par-a", 0), ("par-b", 2), ("par-c", 0)] {
        let plan = proxy
            .run(&repo, &["plan", "--env", name, "--detailed-exitcode"])
            .await;
        assert_eq!(plan.code, code, "{name}: {}{}", plan.stdout, plan.stderr);
    }

    proxy.heal();
    let healed = proxy.run(&repo, &["apply"]).await;
    assert_eq!(healed.code, 0, "{}\n{}", healed.stdout, healed.stderr);
    assert!(
        healed
            .stdout
            .contains("par-b: + create subnet subnet/private/0"),
        "{}",
        healed.stdout
    );
    assert!(!healed.stdout.contains("par-a: +"), "{}", healed.stdout);
    let plan = proxy.run(&repo, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_environment_that_cannot_be_planned_stops_no_other() {
    let proxy = Proxy::new(&crate::cloud::Cloud::new().account);
    let feed = crate::feed::flatcar_feed(crate::feed::FLATCAR_AMI).await;
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    // web-prod's SSH key was never stored in this account; par-e needs none.
    repo.write(
        "environments/web-prod.yaml",
        example_with_feed("web-prod", &feed.uri()),
    );
    repo.write("environments/par-e.yaml", environment(196, &[22]));
    repo.commit("two environments");
    let missing = "error: environment `web-prod`: reading secret strata/web-prod/ssh-public-key in eu-west-1: ResourceNotFoundException";

    let plan = proxy.run(&repo, &["plan", "--format", "json"]).await;
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stderr.starts_with(missing), "{}", plan.stderr);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("the plan's JSON");
    assert_eq!(json["environments"][0]["name"], "par-e", "{json}");
    assert_eq!(json["environments"][0]["summary"]["create"], 4, "{json}");
    assert_eq!(json["unplanned"][0]["name"], "web-prod", "{json}");
    assert!(
        json["unplanned"][0]["error"]
            .as_str()
            .unwrap()
            .contains("hint: "),
        "{json}"
    );

    let applied = proxy.run(&repo, &["apply"]).await;
    assert_eq!(applied.code, 1, "{}\n{}", applied.stdout, applied.stderr);
    assert!(applied.stderr.starts_with(missing), "{}", applied.stderr);
    assert!(
        applied
            .stdout
            .contains("par-e: + create security group sg/web"),
        "{}",
        applied.stdout
    );
    assert!(
        applied
            .stdout
            .contains("`web-prod` (eu-west-1) could not be planned"),
        "{}",
        applied.stdout
    );
    assert!(
        !applied.stdout.contains("web-prod: +"),
        "{}",
        applied.stdout
    );
    let after = proxy
        .run(&repo, &["plan", "--env", "par-e", "--detailed-exitcode"])
        .await;
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);

    // A drift check checks par-e and says it could not check web-prod.
    let drift = proxy.run(&repo, &["drift", "--format", "json"]).await;
    assert_eq!(drift.code, 1, "{}\n{}", drift.stdout, drift.stderr);
    assert!(drift.stderr.starts_with(missing), "{}", drift.stderr);
    let report: serde_json::Value = serde_json::from_str(&drift.stdout).expect("the report");
    assert_eq!(report["environments"][0]["name"], "par-e", "{report}");
    assert_eq!(
        report["environments"][0]["items"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["unchecked"][0]["name"], "web-prod", "{report}");
}
