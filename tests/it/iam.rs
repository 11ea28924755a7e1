//! The IAM policies strata ships (`examples/iam/`) allow every AWS operation the
//! example environments' plans, applies, changes and teardowns send (one of them in
//! a second account, through the role the job assumes there), and the plan role's
//! policy allows reads only.

use std::collections::BTreeSet;

use strata::config::{Environment, Layer};
use strata::engine::Target;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::fixtures::{COMMIT, Planned, Scope};
use crate::harness::{project_root, unique_key};

const EXAMPLES: [&str; 4] = ["web-prod", "etcd-prod", "rabbitmq-prod", "jenkins"];

/// What the apply policy allows that the flows here do not send, and why it is there.
const NOT_SENT_HERE: [(&str, &str); 16] = [
    (
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "a group leaving subnets the network replaces (group_subnets::a_group_leaves_replaced_subnets_for_the_ones_it_keeps_before_they_go)",
    ),
    (
        "ec2:DescribeVpcAttribute",
        "a VPC whose apply stopped before it finished (crash::a_fixed_cluster_apply_killed_at_any_write_converges_when_run_again)",
    ),
    (
        "autoscaling:CreateOrUpdateTags",
        "tags given to CreateAutoScalingGroup",
    ),
    (
        "elasticloadbalancing:AddTags",
        "tags given to the ELBv2 creates",
    ),
    ("secretsmanager:TagResource", "tags given to CreateSecret"),
    (
        "iam:PassRole",
        "a cluster's instance_profile, passed to EC2",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "the account's first group or load balancer",
    ),
    (
        "autoscaling:AttachLoadBalancerTargetGroups",
        "a group joining a load balancer",
    ),
    (
        "autoscaling:DetachLoadBalancerTargetGroups",
        "a group leaving a load balancer",
    ),
    ("ec2:DeleteRoute", "a route no longer wanted"),
    ("ec2:ReplaceRoute", "a route whose NAT gateway was replaced"),
    (
        "ec2:ModifyInstanceAttribute",
        "a fixed node's security groups changed in place",
    ),
    (
        "elasticloadbalancing:DeregisterTargets",
        "a node drained before it goes",
    ),
    (
        "elasticloadbalancing:ModifyTargetGroup",
        "a health check changed",
    ),
    (
        "elasticloadbalancing:SetSecurityGroups",
        "a load balancer's groups changed",
    ),
    (
        "elasticloadbalancing:SetSubnets",
        "a load balancer's subnets changed",
    ),
];

/// The actions a policy file allows.
fn allowed(file: &str) -> BTreeSet<String> {
    let path = project_root().join("examples/iam").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    statements
        .iter()
        .inspect(|s| assert_eq!(s["Effect"], "Allow", "{file}: {s}"))
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(one) => vec![one.clone()],
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
        })
        .collect()
}

/// Example `name` as a test runs it: its image from the local feed (jenkins pins one),
/// no warm-ups between replacements, the web example's certificate from the account.
fn example(name: &str, feed: &str, cloud: &Cloud, change: bool) -> String {
    let mut text = crate::scenario::example_text(name, feed, cloud);
    if change {
        // A new template version rolled by an instance refresh, instances replaced
        // one by one with their data volumes grown, and a rule revoked.
        text = text
            .replace("instance_type: t3.small", "instance_type: t3.medium")
            .replace(
                "volume: { size_gb: 20, type: gp3 }",
                "volume: { size_gb: 30, type: gp3 }",
            )
            .replace("data_volume: { size_gb: 20,", "data_volume: { size_gb: 40,")
            .replace("        - ssh\n", "");
    }
    text
}

fn load(name: &str, text: &str, units: &BTreeSet<String>) -> Environment {
    strata::config::load(&format!("environments/{name}.yaml"), text, units).unwrap()
}

#[tokio::test]
async fn the_shipped_policies_hold_every_action_strata_calls() {
    let (plan_policy, apply_policy) = (allowed("plan-policy.json"), allowed("apply-policy.json"));
    let writes: Vec<&String> = plan_policy
        .iter()
        .filter(|a| {
            let verb = a.split_once(':').map_or("", |(_, v)| v);
            !["Describe", "Get", "List"]
                .iter()
                .any(|read| verb.starts_with(read))
        })
        .collect();
    assert!(
        writes.is_empty(),
        "the plan policy allows writes: {writes:?}"
    );

    let cloud = Cloud::new();
    for name in EXAMPLES {
        let secret = format!("strata/{name}/ssh-public-key");
        cloud
            .put_secret("eu-west-1", &secret, &unique_key(name))
            .await;
    }
    let feed = flatcar_feed(FLATCAR_AMI).await;
    let files = strata::repo::read_dir(&project_root()).unwrap();
    let units = strata::repo::load(&files).unwrap().units;
    let connector = cloud.connector().await;
    // A network in a second account, reached through its role.
    let other = Cloud::new();
    let away = |change: bool| {
        let ports: &[u16] = if change { &[22] } else { &[22, 443] };
        let text = format!(
            "account: {{ role_arn: \"arn:aws:iam::{}:role/strata-apply\", external_id: strata-tests }}\n{}",
            other.account,
            crate::action::environment(201, ports)
        );
        load("iam-away", &text, &units.names())
    };
    let envs_of = |change| -> Vec<Environment> {
        let mut envs = EXAMPLES
            .map(|n| load(n, &example(n, &feed.uri(), &cloud, change), &units.names()))
            .to_vec();
        envs.push(away(change));
        envs
    };
    let (first, changed) = (envs_of(false), envs_of(true));

    // What a pull request's run reads: the last applied commits, then the plan.
    strata::aws::applied::read(&connector.connect("eu-west-1"))
        .await
        .unwrap();
    let scope = Scope::units(&units).commit(COMMIT);
    scope
        .plan(&connector, &first.iter().collect::<Vec<_>>())
        .await;
    let planned = connector.metrics().iam_actions();

    // An apply takes its environments' locks first (and releases them after).
    let settings = strata::aws::lock::LockSettings {
        wait: std::time::Duration::ZERO,
        lease: std::time::Duration::from_secs(60),
        holder: strata::aws::lock::Holder::this(),
    };
    let targets = scope.targets(&first.iter().collect::<Vec<_>>());
    let locks = strata::aws::lock::acquire(&connector, &targets, &settings, None, &mut |_| {})
        .await
        .unwrap();
    scope
        .apply(&connector, &first.iter().collect::<Vec<_>>(), false)
        .await
        .unwrap();
    locks.release().await.unwrap();
    let vpcs = other
        .connector()
        .await
        .connect("eu-west-1")
        .ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:strata:environment")
                .values("iam-away")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        vpcs.vpcs().len(),
        1,
        "iam-away's network is in the other account"
    );
    scope
        .apply(&connector, &changed.iter().collect::<Vec<_>>(), true)
        .await
        .unwrap();
    let layers = BTreeSet::from([Layer::Network, Layer::Cluster, Layer::Node]);
    let teardown: Vec<Target> = changed
        .iter()
        .map(|e| Target::new(e.name.to_string(), None, e, layers.clone(), layers.clone()))
        .collect();
    let gone = Planned::of(&connector, &teardown, &units).await.unwrap();
    gone.apply(&connector, true).await.unwrap();
    let after = Planned::of(&connector, &teardown, &units).await.unwrap();
    assert!(after.plan.is_empty(), "the teardown left something behind");
    let applied = connector.metrics().iam_actions();

    // The job's role assumes the other account's: the one action it needs for that.
    let assume = allowed("assume-role-policy.json");
    assert_eq!(assume, BTreeSet::from(["sts:AssumeRole".to_owned()]));
    assert!(planned.contains("sts:AssumeRole") && applied.contains("sts:AssumeRole"));
    let plan_policy: BTreeSet<String> = plan_policy.union(&assume).cloned().collect();
    let unplanned: Vec<&String> = planned.difference(&plan_policy).collect();
    assert!(unplanned.is_empty(), "plan-policy.json lacks {unplanned:?}");
    let with_assume: BTreeSet<String> = apply_policy.union(&assume).cloned().collect();
    let unapplied: Vec<&String> = applied.difference(&with_assume).collect();
    assert!(
        unapplied.is_empty(),
        "apply-policy.json lacks {unapplied:?}"
    );
    // Nothing allowed that strata does not need: what these flows did not send is
    // what AWS asks for besides the call, or what other tests' flows send.
    let unsent: BTreeSet<&str> = apply_policy
        .difference(&applied)
        .map(String::as_str)
        .collect();
    let explained: BTreeSet<&str> = NOT_SENT_HERE.iter().map(|(a, _)| *a).collect();
    assert_eq!(unsent, explained, "the policy and NOT_SENT_HERE disagree");
    // The flows above reach every kind of write: creates, changes and deletes.
    for action in [
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "ec2:ModifyVolume",
        "ec2:RevokeSecurityGroupIngress",
        "autoscaling:StartInstanceRefresh",
        "elasticloadbalancing:DeleteLoadBalancer",
        "ec2:DeleteVpc",
    ] {
        assert!(applied.contains(action), "the flows never sent {action}");
    }
}
