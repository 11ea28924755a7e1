//! "The plan is the truth", end to end on moto: the examples applied at a base commit,
//! then a handful of representative single-file changes, one commit each. For each, a
//! plan made from the diff holds the actions a plan of every layer holds; applied from
//! the diff, it leaves a plan of every layer empty and no instance in a subnet that no
//! longer exists. (`plan::truth_tests` checks the same property in the pure core over
//! every change its generator makes.)

use std::collections::BTreeMap;

use crate::inventory::Inventory;
use crate::scenario::Scenario;

/// A fixed-size cluster and an auto-scaling group, side by side in one account.
const EXAMPLES: [&str; 2] = ["etcd-prod", "web-prod"];

/// One single-file change: what it is, the file, and the text it replaces.
struct Change {
    what: &'static str,
    path: &'static str,
    from: &'static str,
    to: &'static str,
}

const ETCD: &str = "environments/etcd-prod.yaml";
const WEB: &str = "environments/web-prod.yaml";

const CHANGES: [Change; 6] = [
    Change {
        what: "a network change that moves the fixed cluster to new subnets",
        path: ETCD,
        from: "subnet_bits: 4",
        to: "subnet_bits: 5",
    },
    Change {
        what: "a unit change on the fixed cluster",
        path: "units/etcd.service",
        from: "ETCD_IMAGE=quay.io/coreos/etcd:v3.5.17",
        to: "ETCD_IMAGE=quay.io/coreos/etcd:v3.5.18",
    },
    Change {
        what: "a unit change on the auto-scaling group",
        path: "units/web.service",
        from: "WEB_IMAGE=docker.io/library/nginx:1.27-alpine",
        to: "WEB_IMAGE=docker.io/library/nginx:1.28-alpine",
    },
    Change {
        what: "an instance type change on the fixed cluster",
        path: ETCD,
        from: "instance_type: t3.medium",
        to: "instance_type: t3.large",
    },
    Change {
        what: "a security group rule",
        path: WEB,
        from: "        - { protocol: tcp, ports: 80, from: lb }\n",
        to: "        - { protocol: tcp, ports: 80, from: lb }\n        - { protocol: tcp, ports: 8080, from: lb }\n",
    },
    Change {
        what: "a group size change",
        path: WEB,
        from: "desired: 3",
        to: "desired: 4",
    },
];

/// A JSON plan's actions, as `(environment, layer, action)` with the action's fields
/// but its origins (a plan made from a diff marks them; a plan of every layer does not).
fn actions(plan: &str) -> Vec<(String, String, serde_json::Value)> {
    fn without_origins(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("origin");
                map.values_mut().for_each(without_origins);
            }
            serde_json::Value::Array(list) => list.iter_mut().for_each(without_origins),
            _ => {}
        }
    }
    let json: serde_json::Value = serde_json::from_str(plan).expect("a JSON plan");
    let mut found = Vec::new();
    for env in json["environments"].as_array().into_iter().flatten() {
        for layer in env["layers"].as_array().into_iter().flatten() {
            for a in layer["actions"].as_array().into_iter().flatten() {
                let mut a = a.clone();
                without_origins(&mut a);
                found.push((
                    env["name"].as_str().unwrap_or("?").to_owned(),
                    layer["layer"].as_str().unwrap_or("?").to_owned(),
                    a,
                ));
            }
        }
    }
    found
}

/// How many copies of each resource (by kind and `strata:id`) an account holds.
fn copies(inventory: &Inventory) -> BTreeMap<(&'static str, String), usize> {
    let tagged = inventory.tagged.iter();
    tagged
        .map(|(id, copies)| (id.clone(), copies.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_plans_as_every_layer_does_and_converges_once_applied() {
    let s = Scenario::of(&EXAMPLES).await;
    let first = s.run(&["apply"], Some(1)).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let aws = s.cloud.connector().await.connect("eu-west-1");
    // Both environments hold the same ids (`vpc`, `subnet/private/0`): each change
    // leaves as many copies of each as they held at first.
    let baseline = copies(&s.inventory().await);
    let mut base = s.repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
    for change in &CHANGES {
        let machines = s.group_machines("web-prod").await;
        let file = s.repo.path().join(change.path);
        let text = std::fs::read_to_string(&file).expect("the file changed");
        assert!(text.contains(change.from), "{}: {text}", change.what);
        s.repo
            .write(change.path, text.replacen(change.from, change.to, 1));
        let head = s.repo.commit(change.what);
        let what = change.what;

        let diff = ["plan", "--base", &base, "--head", &head, "--format", "json"];
        let from_diff = s.run(&diff, Some(1)).await;
        assert_eq!(from_diff.code, 0, "{what}: {}", from_diff.stderr);
        let every_layer = s.run(&["plan", "--format", "json"], Some(1)).await;
        assert_eq!(every_layer.code, 0, "{what}: {}", every_layer.stderr);
        let planned = actions(&from_diff.stdout);
        assert!(!planned.is_empty(), "{what}: nothing planned");
        assert_eq!(
            planned,
            actions(&every_layer.stdout),
            "{what}: the plan from the diff is not the plan of every layer"
        );

        let apply = ["apply", "--base", &base, "--head", &head, "--allow-destroy"];
        let applied = s.run(&apply, Some(1)).await;
        assert_eq!(
            applied.code, 0,
            "{what}: {}{}",
            applied.stdout, applied.stderr
        );
        let after = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
        assert_eq!(
            after.code, 0,
            "{what}: left to do:\n{}{}",
            after.stdout, after.stderr
        );
        let stranded = crate::inventory::instances_in_missing_subnets(&aws).await;
        assert_eq!(
            stranded,
            Vec::<String>::new(),
            "{what}: instances in subnets that went"
        );
        let held = s.inventory().await;
        assert_eq!(held.untagged, Vec::<String>::new(), "{what}: untagged");
        assert_eq!(copies(&held), baseline, "{what}: what the account holds");

        // A node change on the group replaces its machines: none is left on an older
        // version.
        if change.path == "units/web.service" {
            let now = s.group_machines("web-prod").await;
            assert_eq!(now.len(), machines.len(), "{what}: {now:?}");
            assert!(
                now.keys().all(|id| !machines.contains_key(id)),
                "{what}: {machines:?} {now:?}"
            );
            let versions: Vec<&String> = now.values().collect();
            assert!(
                versions.iter().all(|v| *v == versions[0]),
                "{what}: {now:?}"
            );
            assert_ne!(
                Some(versions[0]),
                machines.values().next(),
                "{what}: {now:?}"
            );
        }
        base = head;
    }
}
