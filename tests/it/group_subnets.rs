//! An auto-scaling group whose subnets the network replaces: before the network step
//! the group leaves them (its instances there replaced in the subnets it keeps, or,
//! with none kept, the group emptied), so no instance is left in a subnet that goes;
//! after it, the group spreads over the new subnets at its own size again.

use std::collections::BTreeSet;

use crate::scenario::Scenario;

const ZONES: &str = "zones: [eu-west-1a, eu-west-1b, eu-west-1c]";

/// `web-prod` applied with its zones named, then its zones reordered to `zones` and
/// applied again with consent: that run's stdout.
async fn reordered(zones: &str) -> (Scenario, String) {
    let s = Scenario::new("web-prod").await;
    let path = "environments/web-prod.yaml";
    let text = std::fs::read_to_string(s.repo.path().join(path)).unwrap();
    assert!(text.contains("zones: 3"), "{text}");
    s.repo.write(path, text.replace("zones: 3", ZONES));
    s.repo.commit("zones by name");
    let first = s.run(&["apply"], Some(1)).await;
    assert_eq!(first.code, 0, "{}", first.stderr);

    s.repo.write(path, text.replace("zones: 3", zones));
    s.repo.commit("zones reordered");
    let plan = s.run(&["plan"], Some(1)).await;
    let moved = s.run(&["apply", "--allow-destroy"], Some(1)).await;
    assert_eq!(moved.code, 0, "{}\n{}", moved.stdout, moved.stderr);
    assert!(
        moved.stdout.starts_with(&plan.stdout),
        "the apply shows the plan first"
    );
    (s, moved.stdout)
}

/// Asserts every group instance is in a subnet that exists and the group spreads over
/// the environment's three private subnets, with `desired` instances in service.
async fn settled(s: &Scenario, desired: usize) {
    let aws = s.cloud.connector().await.connect("eu-west-1");
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("web-prod")
        .send()
        .await
        .unwrap();
    let group = &groups.auto_scaling_groups()[0];
    let in_service = group
        .instances()
        .iter()
        .filter(|i| {
            i.lifecycle_state() == Some(&aws_sdk_autoscaling::types::LifecycleState::InService)
        })
        .count();
    assert_eq!(in_service, desired, "{group:?}");
    assert_eq!(group.min_size(), Some(2));
    let subnets = aws.ec2.describe_subnets().send().await.unwrap();
    let existing: BTreeSet<&str> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id())
        .collect();
    let private: BTreeSet<&str> = subnets
        .subnets()
        .iter()
        .filter(|s| {
            s.tags()
                .iter()
                .any(|t| t.value().is_some_and(|v| v.starts_with("subnet/private/")))
        })
        .filter_map(|s| s.subnet_id())
        .collect();
    let zones: BTreeSet<&str> = group.vpc_zone_identifier().unwrap().split(',').collect();
    assert_eq!(zones, private, "the group spreads over the private subnets");
    let ids: Vec<String> = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    let instances = aws
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        let subnet = i.subnet_id().unwrap();
        assert!(
            existing.contains(subnet),
            "{:?} is in {subnet}, which is gone",
            i.instance_id()
        );
    }
    let plan = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
    assert_eq!(plan.code, 0, "{}", plan.stdout);
    s.inventory().await.assert_clean("after the move");
}

/// The line at which `needle` first appears.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
}

#[tokio::test]
async fn a_group_leaves_replaced_subnets_for_the_ones_it_keeps_before_they_go() {
    // Zones a, b, c become c, b, a: the first and third subnets of each kind move zone
    // (a replacement); the second stays.
    let (s, out) = reordered("zones: [eu-west-1c, eu-west-1b, eu-west-1a]").await;
    assert!(
        out.contains(
            "auto-scaling group web-prod: before the network changes, it leaves subnet/private/0, subnet/private/2, \
             and its instances there are replaced in the 1 subnet it keeps; after, it spreads over its subnets again"
        ),
        "{out}"
    );
    let moved = line_of(
        &out,
        "web-prod: ~ moved auto-scaling group asg (web-prod) off subnet/private/0, subnet/private/2 before the network changes",
    );
    assert!(
        moved < line_of(&out, "web-prod: -/+ replace subnet subnet/private/0"),
        "{out}"
    );
    assert!(
        line_of(&out, "web-prod: ~ update auto-scaling group asg") > moved,
        "{out}"
    );
    settled(&s, 3).await;
}

#[tokio::test]
async fn a_group_whose_every_subnet_is_replaced_is_emptied_first_and_filled_after() {
    let (s, out) = reordered("zones: [eu-west-1b, eu-west-1c, eu-west-1a]").await;
    assert!(
        out.contains(
            "auto-scaling group web-prod: every subnet it uses (subnet/private/0, subnet/private/1, subnet/private/2) goes; \
             before the network changes, the group is emptied (its 3 instances terminated), and after, it is filled again \
             in the new subnets: a gap in service"
        ),
        "{out}"
    );
    let moved = line_of(
        &out,
        "web-prod: ~ moved auto-scaling group asg (web-prod) off subnet/private/0, subnet/private/1, subnet/private/2",
    );
    assert!(
        moved < line_of(&out, "web-prod: -/+ replace subnet subnet/private/0"),
        "{out}"
    );
    settled(&s, 3).await;
}
