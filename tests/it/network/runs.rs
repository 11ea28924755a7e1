//! The network layer through whole runs: the command line's plan and apply, a removed
//! environment torn down with consent, and a network change pulling in the cluster.

use std::collections::BTreeMap;

use strata::config::{Environment, Layer};
use strata::engine::{self, EngineError};

use super::{BASE, NETWORK, count_vpcs, env, subnets};
use crate::cloud::Cloud;
use crate::fixtures::{NO_UNITS, Planned};
use crate::harness::GitRepo;

#[tokio::test]
async fn a_removed_environment_file_is_torn_down_with_consent() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let repo = GitRepo::new();
    repo.write("environments/gone.yaml", BASE);
    let base = repo.commit("add");
    NETWORK
        .apply(&connector, &[&env("gone", BASE)], false)
        .await
        .unwrap();
    repo.remove("environments/gone.yaml");
    let head = repo.commit("remove");

    let git = strata::git::GitRepo::open(repo.path()).unwrap();
    let (b, h) = (git.commit(&base).unwrap(), git.commit(&head).unwrap());
    let set = strata::changes::detect(
        &git.diff(&b, &h).unwrap(),
        &mut strata::git::GitSource {
            repo: &git,
            head: &h,
        },
    )
    .unwrap();
    let old: BTreeMap<String, Environment> = [("gone".to_owned(), env("gone", BASE))].into();
    let targets = engine::from_changes(&set, &BTreeMap::new(), &old, &[]);
    assert!(targets[0].environment.is_none());

    let teardown = Planned::of(&connector, &targets, &NO_UNITS).await.unwrap();
    let p = &teardown.plan;
    assert!(p.environments[0].removed);
    assert_eq!(p.summary.delete, 16);
    assert_eq!(p.summary.create + p.summary.update + p.summary.replace, 0);
    let err = teardown.apply(&connector, false).await.unwrap_err();
    assert!(matches!(err, EngineError::NeedsConsent(_)));
    teardown.apply(&connector, true).await.unwrap();
    assert_eq!(count_vpcs(&connector, "gone").await, 0);
    assert!(subnets(&connector, "gone").await.is_empty());
}

#[test]
fn the_command_line_plans_applies_and_reports_changes_in_its_exit_code() {
    // The binary talks to moto's default account; the environment name keeps it apart.
    let vars = crate::cloud::binary_vars();
    let repo = GitRepo::new();
    repo.write(
        "environments/cli.yaml",
        BASE.replace("10.10.0.0/16", "10.99.0.0/16"),
    );
    let commit = repo.commit("cli");
    let run = |args: &[&str]| crate::harness::strata_with(repo.path(), args, &vars);

    let before = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(before.code, 2, "{}", before.stderr);
    assert!(before.stdout.contains("16 to create"), "{}", before.stdout);
    assert!(
        before
            .stdout
            .contains(&format!("for commit `{}`", &commit[..12])),
        "{}",
        before.stdout
    );

    let applied = run(&["apply", "--layer", "network"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains("cli: + create VPC vpc (vpc-"),
        "{}",
        applied.stdout
    );
    assert!(
        applied.stdout.contains("Applied 16 changes."),
        "{}",
        applied.stdout
    );

    let after = run(&["plan", "--detailed-exitcode", "--format", "json"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let json: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["commit"], commit.as_str());
    assert_eq!(
        json["summary"],
        serde_json::json!({"create": 0, "update": 0, "replace": 0, "delete": 0, "rollout": 0})
    );

    let unknown = run(&["plan", "--env", "nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no environment `nope`"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn a_network_change_pulls_in_the_cluster_layer_with_its_reason() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let with_cluster = format!(
        "{BASE}cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  ami: {}\n  security_groups: [app]\n",
        crate::feed::FLATCAR_AMI
    );
    let e = env("forced", &with_cluster);
    let set = strata::changes::ChangeSet {
        base: "a".into(),
        head: "b".into(),
        environments: vec![strata::changes::EnvironmentChange {
            name: "forced".into(),
            change: strata::changes::ChangeKind::Modified,
            layers: vec![Layer::Network],
            reasons: Vec::new(),
        }],
    };
    let head: BTreeMap<String, Environment> = [("forced".to_owned(), e)].into();
    let targets = engine::from_changes(&set, &head, &BTreeMap::new(), &[]);
    let p = Planned::of(&connector, &targets, &NO_UNITS)
        .await
        .unwrap()
        .plan;
    let layers: Vec<String> = p.environments[0]
        .layers
        .iter()
        .map(|l| format!("{} {:?}", l.layer, l.forced_by))
        .collect();
    assert_eq!(
        layers,
        [
            "network None",
            "cluster Some(\"the network creates subnet/private/0, which the cluster uses\")"
        ]
    );
}

#[test]
fn the_command_line_tears_down_a_removed_environment_only_with_consent() {
    let vars = crate::cloud::binary_vars();
    let repo = GitRepo::new();
    repo.write(
        "environments/cli-gone.yaml",
        BASE.replace("10.10.0.0/16", "10.98.0.0/16"),
    );
    repo.commit("add");
    let run = |args: &[&str]| crate::harness::strata_with(repo.path(), args, &vars);
    let created = run(&["apply", "--env", "cli-gone"]);
    assert_eq!(created.code, 0, "{}", created.stderr);

    repo.remove("environments/cli-gone.yaml");
    repo.commit("remove");
    let plan = run(&["plan", "--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout
            .contains("### cli-gone (eu-west-1) — environment removed: teardown"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("16 to delete"), "{}", plan.stdout);

    let refused = run(&["apply", "--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("the plan deletes or replaces 16 resources; nothing was changed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("strata apply --allow-destroy"),
        "{}",
        refused.stderr
    );

    let done = run(&[
        "apply",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--allow-destroy",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("cli-gone: - delete VPC vpc"),
        "{}",
        done.stdout
    );
    let again = run(&[
        "plan",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--detailed-exitcode",
    ]);
    assert_eq!(again.code, 0, "nothing left to tear down: {}", again.stdout);
}
