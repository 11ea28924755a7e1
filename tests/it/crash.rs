//! Crash consistency: an apply killed with SIGKILL at a known write (the proxy holds
//! it, sent on to moto or not, and the kill lands while strata waits for the answer),
//! then run again, ends where an uninterrupted apply ends: the same resources, none
//! twice, none untagged, and a plan with nothing left to do.

use std::time::Duration;

use crate::proxy::Hold;
use crate::scenario::Scenario;

/// The apply lock's lease in these runs, in seconds.
const LEASE: u64 = 2;

/// Kills the apply of `example` at `points` of its writes (spread over all of them,
/// every layer) and checks that each rerun converges.
async fn killed_and_rerun(example: &str, points: usize) {
    let apply = ["apply", "--env", example];
    let mut undisturbed = Scenario::new(example).await;
    // A killed apply's lock holds the rerun back for no more than this.
    undisturbed.set_lease(LEASE);
    let out = undisturbed.run(&apply, Some(1)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let writes = undisturbed.proxy.writes();
    let expected = undisturbed.inventory().await;
    expected.assert_clean("undisturbed");
    assert!(
        writes.len() >= points,
        "{} writes: {writes:?}",
        writes.len()
    );

    for i in 0..points {
        // Evenly over the writes, from the first to the last; the write itself done
        // or not, alternately.
        let nth = 1 + i * (writes.len() - 1) / (points - 1);
        let hold = if i % 2 == 0 {
            Hold::After(nth)
        } else {
            Hold::Before(nth)
        };
        let context = format!("{example}: killed at {hold:?} ({})", writes[nth - 1]);
        let mut s = Scenario::new(example).await;
        s.set_lease(LEASE);
        s.proxy.hold(hold);
        let mut child = s.start(&apply);
        let held = tokio::task::block_in_place(|| s.proxy.wait_held(Duration::from_secs(120)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let held = held.unwrap_or_else(|| panic!("{context}: the write was never sent"));
        assert_eq!(
            held.operation,
            writes[nth - 1],
            "{context}: writes come in the same order"
        );

        s.reconnect();
        let killed = s.inventory().await;
        assert_ne!(killed, expected, "{context}: the kill stopped nothing");

        let rerun = s.run(&apply, Some(1)).await;
        assert_eq!(
            rerun.code, 0,
            "{context}: the rerun failed:\n{}",
            rerun.stderr
        );
        let plan = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
        assert_eq!(
            plan.code, 0,
            "{context}: left to do:\n{}{}",
            plan.stdout, plan.stderr
        );
        let got = s.inventory().await;
        got.assert_clean(&context);
        assert_eq!(got, expected, "{context}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_cluster_apply_killed_at_any_write_converges_when_run_again() {
    killed_and_rerun("rabbitmq-prod", 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_scaling_apply_killed_at_any_write_converges_when_run_again() {
    killed_and_rerun("web-prod", 10).await;
}

/// A node change's apply on an auto-scaling group writes, counted from a fresh proxy:
/// `CreateLaunchTemplateVersion`, `ModifyLaunchTemplate` (the new default), then
/// `UpdateAutoScalingGroup`, which pins the group to it, then `StartInstanceRefresh`.
const MADE: (usize, &str) = (1, "CreateLaunchTemplateVersion");
const PINNED: (usize, &str) = (3, "UpdateAutoScalingGroup");

/// The group's actions in a JSON plan: the layer, the action, its rollout, why, and
/// its field changes (`field: from → to`).
fn group_actions(plan: &str) -> Vec<(String, String, u64, String, Vec<String>)> {
    let json: serde_json::Value = serde_json::from_str(plan).expect("a JSON plan");
    let mut found = Vec::new();
    for env in json["environments"].as_array().into_iter().flatten() {
        for layer in env["layers"].as_array().into_iter().flatten() {
            for a in layer["actions"].as_array().into_iter().flatten() {
                if a["kind"] != "auto_scaling_group" {
                    continue;
                }
                let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
                let changes = a["changes"].as_array().into_iter().flatten();
                found.push((
                    text(&layer["layer"]),
                    text(&a["action"]),
                    a["rollout"].as_u64().unwrap_or(0),
                    text(&a["forced_by"]),
                    changes
                        .map(|c| {
                            format!(
                                "{}: {} → {}",
                                text(&c["field"]),
                                text(&c["from"]),
                                text(&c["to"])
                            )
                        })
                        .collect(),
                ));
            }
        }
    }
    found
}

/// `web-prod` applied, then a node change's apply killed right after write `at` (its
/// operation checked): the machines still run template version 1. The next plan shows
/// the group's update with a rollout of all three and `changes`, saying why; the rerun
/// replaces them, and then nothing is left to do.
async fn a_group_rollout_killed_after(at: (usize, &str), changes: &[&str]) {
    let mut s = Scenario::new("web-prod").await;
    s.set_lease(LEASE);
    let first = s.run(&["apply"], Some(1)).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let old = s.group_machines("web-prod").await;
    assert_eq!(old.values().collect::<Vec<_>>(), ["1", "1", "1"], "{old:?}");

    // A node change: a new template version the group must roll out.
    let path = "environments/web-prod.yaml";
    let text = std::fs::read_to_string(s.repo.path().join(path)).unwrap();
    s.repo
        .write(path, text.replace("LOG_LEVEL: info", "LOG_LEVEL: debug"));
    s.repo.commit("log more");
    s.reconnect();
    s.proxy.hold(Hold::After(at.0));
    let mut child = s.start(&["apply"]);
    let held = tokio::task::block_in_place(|| s.proxy.wait_held(Duration::from_secs(120)));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let writes = s.proxy.writes();
    let held = held.unwrap_or_else(|| panic!("the write was never sent: {writes:?}"));
    assert_eq!(held.operation, at.1, "{writes:?}");
    s.reconnect();
    assert_eq!(
        s.group_machines("web-prod").await,
        old,
        "killed before the refresh: the machines still run version 1"
    );

    // The plan sees what the machines run.
    let plan = s.run(&["plan", "--format", "json"], Some(1)).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let why = "3 of 3 machines still run template version 1; the group launches version 2";
    let changes = changes.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(
        group_actions(&plan.stdout),
        [(
            "cluster".to_owned(),
            "update".to_owned(),
            3,
            why.to_owned(),
            changes
        )],
        "{}",
        plan.stdout
    );
    let rerun = s.run(&["apply"], Some(1)).await;
    assert_eq!(rerun.code, 0, "{}{}", rerun.stdout, rerun.stderr);
    assert!(
        rerun
            .stdout
            .contains("web-prod: ~ rolled out the template's latest version to asg"),
        "{}",
        rerun.stdout
    );
    let new = s.group_machines("web-prod").await;
    assert_eq!(new.values().collect::<Vec<_>>(), ["2", "2", "2"], "{new:?}");
    assert!(
        new.keys().all(|id| !old.contains_key(id)),
        "{old:?} {new:?}"
    );
    let after = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
    assert_eq!(
        after.code, 0,
        "left to do:\n{}{}",
        after.stdout, after.stderr
    );
    s.inventory().await.assert_clean("after the rerun");
}

const ROLLOUT: &str = "rollout:  → instance refresh, 90% kept in service, 60s warm-up";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_killed_between_pinning_a_version_and_its_refresh_rolls_it_out_when_run_again() {
    a_group_rollout_killed_after(PINNED, &[ROLLOUT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_killed_before_pinning_a_new_version_moves_to_it_when_run_again() {
    a_group_rollout_killed_after(MADE, &["launch_template_version: 1 → 2", ROLLOUT]).await;
}
