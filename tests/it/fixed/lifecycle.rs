//! A fixed-size cluster switched from a group, removed, rolled by a template change,
//! moved off replaced subnets, and registered behind a load balancer.

use std::collections::BTreeMap;

use strata::changes::{ChangeKind, ChangeSet, EnvironmentChange};
use strata::config::{Environment, Layer};
use strata::engine::{self, EngineError};
use strata::plan::render;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::fixtures::{NO_UNITS, Planned, Scope, actions};
use crate::harness::{project_root, unique_key};

use super::{account, etcd, instances, units};

#[tokio::test]
async fn switching_a_group_to_a_fixed_size_removes_the_group_with_consent() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let u = units("quay.io/coreos/etcd:v3.5.17");
    let mut group = etcd(&server.uri(), 3);
    if let Some(c) = group.spec.cluster.as_mut() {
        c.mode = strata::config::ClusterMode::Autoscaling;
        c.size = None;
        (c.min, c.max, c.desired) = (Some(1), Some(3), Some(2));
    }
    if let Some(n) = group.spec.node.as_mut() {
        n.etcd = None;
    }
    let group = crate::harness::revalidated(group, &u.names());
    Scope::units(&u)
        .apply(&connector, &[&group], false)
        .await
        .unwrap();

    let fixed = etcd(&server.uri(), 3);
    let refused = Scope::units(&u)
        .layers(&[Layer::Cluster])
        .apply(&connector, &[&fixed], false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::NeedsConsent(what)
            if what.iter().map(ToString::to_string).collect::<Vec<_>>() == ["etcd-prod: delete auto-scaling group asg"]),
        "{refused}"
    );
    let switched = Scope::units(&u)
        .layers(&[Layer::Cluster])
        .apply(&connector, &[&fixed], true)
        .await
        .unwrap();
    assert_eq!(
        actions(&switched, Layer::Cluster),
        [
            // The template stops making a data volume: each node has its own.
            "update launch-template",
            "delete asg",
            "create volume/0",
            "create volume/1",
            "create volume/2",
            "create instance/0",
            "create instance/1",
            "create instance/2"
        ]
    );
    let asg = cloud.connector().await.connect("eu-west-1").autoscaling;
    let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
    assert!(groups.auto_scaling_groups().is_empty());
}

#[tokio::test]
async fn a_removed_fixed_cluster_is_torn_down_instances_first() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let e = etcd(&server.uri(), 3);
    Scope::units(&units("quay.io/coreos/etcd:v3.5.17"))
        .apply(&connector, &[&e], false)
        .await
        .unwrap();

    // The file is gone in the head commit: every layer is torn down, with consent.
    let set = ChangeSet {
        base: "a".into(),
        head: "b".into(),
        environments: vec![EnvironmentChange {
            name: "etcd-prod".into(),
            change: ChangeKind::Removed,
            layers: vec![Layer::Network, Layer::Cluster, Layer::Node],
            reasons: Vec::new(),
        }],
    };
    let base: BTreeMap<String, Environment> = [(e.name.to_string(), e)].into();
    let targets = engine::from_changes(&set, &BTreeMap::new(), &base, &[]);
    let teardown = Planned::of(&connector, &targets, &NO_UNITS).await.unwrap();
    assert_eq!(
        actions(&teardown.plan, Layer::Cluster),
        [
            "delete launch-template",
            "delete volume/0",
            "delete volume/1",
            "delete volume/2",
            "delete instance/0",
            "delete instance/1",
            "delete instance/2"
        ]
    );
    let lines = teardown.apply_logged(&connector, true).await.unwrap();
    // The instances go before the subnets and the security group they are in.
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {lines:#?}"))
    };
    assert!(position("delete instance instance/2") < position("delete subnet subnet/private/2"));
    assert!(position("delete instance instance/0") < position("delete security group sg/etcd"));
    assert!(instances(&cloud).await.is_empty());
    let gone = Planned::of(&connector, &targets, &NO_UNITS)
        .await
        .unwrap()
        .plan;
    assert!(gone.is_empty(), "{}", render::markdown(&gone));
}

#[tokio::test]
async fn a_template_change_rolls_a_fixed_cluster_and_a_stopped_node_is_reported() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let u = units("quay.io/coreos/etcd:v3.5.17");
    Scope::units(&u)
        .apply(&connector, &[&etcd(&server.uri(), 3)], false)
        .await
        .unwrap();

    // A bigger root volume: a new template version, and every instance is replaced
    // (a running instance keeps the volume it was launched with).
    let mut bigger = etcd(&server.uri(), 3);
    if let Some(v) = bigger.spec.cluster.as_mut().and_then(|c| c.volume.as_mut()) {
        v.size_gb = 30;
    }
    let rolled = Scope::units(&u)
        .layers(&[Layer::Cluster])
        .apply(&connector, &[&bigger], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&rolled, Layer::Cluster),
        [
            "update launch-template",
            "replace instance/0",
            "replace instance/1",
            "replace instance/2"
        ],
        "{}",
        render::markdown(&rolled)
    );
    let markdown = render::markdown(&rolled);
    assert!(
        markdown.contains("volume: 20 GiB gp3 → 30 GiB gp3"),
        "{markdown}"
    );
    assert!(
        markdown.contains("because of volumes_and_profile"),
        "{markdown}"
    );

    // A node someone stopped by hand is reported, not restarted or replaced.
    let stopped = instances(&cloud).await[1].instance.clone();
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    ec2.stop_instances()
        .instance_ids(&stopped)
        .send()
        .await
        .unwrap();
    let plan = Scope::units(&u).plan(&connector, &[&bigger]).await;
    assert!(plan.is_empty(), "{}", render::markdown(&plan));
    let markdown = render::markdown(&plan);
    assert!(
        markdown.contains(&format!("instance/1 ({stopped}) is stopped")),
        "{markdown}"
    );
}

/// Instance ids registered in the target groups of the account, per target group.
async fn registered(cloud: &Cloud) -> Vec<Vec<String>> {
    let elb = cloud.connector().await.connect("eu-west-1").elb;
    let groups = elb.describe_target_groups().send().await.unwrap();
    let mut out = Vec::new();
    for tg in groups.target_groups() {
        let health = elb
            .describe_target_health()
            .target_group_arn(tg.target_group_arn().unwrap())
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = health
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target()?.id().map(str::to_owned))
            .collect();
        ids.sort();
        out.push(ids);
    }
    out
}

#[tokio::test]
async fn the_rabbitmq_example_registers_its_nodes_behind_the_load_balancer() {
    let cloud = Cloud::new();
    cloud
        .put_secret(
            "eu-west-1",
            "strata/rabbitmq-prod/ssh-public-key",
            &unique_key("rabbitmq"),
        )
        .await;
    let connector = cloud.connector().await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let files = strata::repo::read_dir(&project_root()).unwrap();
    let all_units = strata::repo::load(&files).unwrap().units;
    let text = crate::harness::example_with_feed("rabbitmq-prod", &server.uri())
        .replace("warmup_seconds: 180", "warmup_seconds: 0");
    let e =
        strata::config::load("environments/rabbitmq-prod.yaml", &text, &all_units.names()).unwrap();
    Scope::units(&all_units)
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    let running = instances(&cloud).await;
    let mut ids: Vec<String> = running.iter().map(|i| i.instance.clone()).collect();
    ids.sort();
    assert_eq!(registered(&cloud).await, [ids.clone()]);

    // A unit change replaces the nodes; the target group then holds exactly the new ones.
    let text = std::fs::read_to_string(project_root().join("units/rabbitmq.service"))
        .unwrap()
        .replace("rabbitmq:3.13-management", "rabbitmq:3.13.7-management");
    let mut changed = files.clone();
    changed
        .units
        .insert("rabbitmq.service".to_owned(), text.into_bytes());
    let newer = strata::repo::load(&changed).unwrap().units;
    Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    let replaced = instances(&cloud).await;
    let mut new_ids: Vec<String> = replaced.iter().map(|i| i.instance.clone()).collect();
    new_ids.sort();
    assert!(new_ids.iter().all(|id| !ids.contains(id)));
    assert_eq!(registered(&cloud).await, [new_ids]);
}

#[tokio::test]
async fn nodes_leave_a_subnet_before_the_network_replaces_it() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let u = units("quay.io/coreos/etcd:v3.5.17");
    let e = etcd(&server.uri(), 3);
    Scope::units(&u)
        .apply(&connector, &[&e], false)
        .await
        .unwrap();

    // Smaller subnets: every subnet is replaced, and the nodes with them.
    let text = crate::harness::example_with_feed("etcd-prod", &server.uri())
        .replace("warmup_seconds: 120", "warmup_seconds: 0")
        .replace("subnet_bits: 4", "subnet_bits: 5");
    let smaller = strata::config::load("environments/etcd-prod.yaml", &text, &u.names()).unwrap();
    let planned = Scope::units(&u)
        .try_plan(&connector, &[&smaller])
        .await
        .unwrap();
    let replaced: Vec<(String, Option<String>)> = planned.plan.environments[0]
        .layers
        .iter()
        .flat_map(|l| &l.actions)
        .filter(|a| matches!(a.id, strata::plan::LogicalId::Instance(_)))
        .map(|a| (format!("{} {}", a.action, a.id), a.forced_by.clone()))
        .collect();
    assert_eq!(replaced.len(), 3, "{replaced:?}");
    let lines = planned.apply_logged(&connector, true).await.unwrap();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {lines:#?}"))
    };
    // AWS refuses to delete a subnet that holds network interfaces.
    for n in 0..3 {
        assert!(
            position(&format!(
                "terminated before its subnet subnet/private/{n} goes"
            )) < position(&format!("replace subnet subnet/private/{n}")),
            "{lines:#?}"
        );
    }
    let placed: Vec<String> = instances(&cloud)
        .await
        .into_iter()
        .map(|i| i.address)
        .collect();
    assert_eq!(placed, ["10.66.0.10", "10.66.8.10", "10.66.16.10"]);
    let settled = Scope::units(&u).plan(&connector, &[&smaller]).await;
    assert!(settled.is_empty(), "{}", render::markdown(&settled));
}
