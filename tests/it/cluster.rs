//! The cluster and node layers against moto: a launch template whose user data is the
//! rendered config, an auto-scaling group pinned to an explicit template version, and
//! node changes rolled into a new version.

use std::collections::BTreeMap;

use base64::Engine as _;
use strata::config::{Environment, Layer};
use strata::engine;
use strata::plan::render;
use strata::units::UnitSet;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::fixtures::{Planned, Scope, actions};
use crate::harness::{ignition_validate, project_root};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK tests@strata";

fn units(web_image: &str) -> UnitSet {
    let text = std::fs::read_to_string(project_root().join("units/web.service"))
        .unwrap()
        .replace("nginx:1.27-alpine", web_image);
    strata::units::load([("web.service", text.as_bytes())]).unwrap()
}

fn env(feed: &str, instance_type: &str) -> Environment {
    let yaml = format!(
        "region: eu-west-1
network:
  cidr: 10.40.0.0/16
  zones: 2
  private_subnets: 2
  public_subnets: 2
  nat: single
  security_groups:
    web:
      ingress: [http, ssh]
      egress: [all-traffic]
  load_balancers:
    api:
      type: application
      subnets: public
      security_groups: [web]
      listeners:
        - {{ front: http, back: 80 }}
cluster:
  mode: autoscaling
  min: 1
  max: 3
  desired: 2
  instance_type: {instance_type}
  os: {{ name: flatcar, channel: stable, feed_url: \"{feed}/{{channel}}.json\" }}
  security_groups: [web]
  load_balancers: [api]
  volume: {{ size_gb: 20, type: gp3 }}
  data_volume: {{ size_gb: 50, type: gp3, device: /dev/xvdf, label: data }}
node:
  units: [web.service]
  ssh: {{ public_key_secret: tests/cluster/ssh }}
"
    );
    strata::config::load("environments/machines.yaml", &yaml, &units("x").names()).unwrap()
}

/// The latest version of launch template `name`.
#[derive(Debug)]
struct Template {
    version: i64,
    /// The AMI it launches.
    image: String,
    instance_type: String,
    /// The instance metadata service's `HttpTokens` (`required`: IMDSv2 only).
    http_tokens: String,
    /// The user data, decoded: the rendered config.
    user_data: String,
}

async fn latest_template(cloud: &Cloud, name: &str) -> Template {
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    let out = ec2
        .describe_launch_template_versions()
        .launch_template_name(name)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let v = &out.launch_template_versions()[0];
    let data = v.launch_template_data().unwrap();
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(data.user_data().unwrap())
        .unwrap();
    Template {
        version: v.version_number().unwrap(),
        image: data.image_id().unwrap().to_owned(),
        instance_type: data.instance_type().unwrap().as_str().to_owned(),
        http_tokens: data
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        user_data: String::from_utf8(user_data).unwrap(),
    }
}

async fn group(cloud: &Cloud) -> aws_sdk_autoscaling::types::AutoScalingGroup {
    let asg = cloud.connector().await.connect("eu-west-1").autoscaling;
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("machines")
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0].clone()
}

#[tokio::test]
async fn an_autoscaling_cluster_boots_the_rendered_config_and_follows_node_changes() {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", "tests/cluster/ssh", KEY)
        .await;
    let connector = cloud.connector().await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let e = env(&server.uri(), "t3.small");
    let first = Scope::units(&units("nginx:1.27-alpine"))
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&first, Layer::Cluster),
        ["create launch-template", "create asg"],
        "{}",
        render::markdown(&first)
    );
    assert_eq!(actions(&first, Layer::Node), ["create node/config"]);
    let markdown = render::markdown(&first);
    assert!(
        markdown.contains("image: ami-0f1a7ca7000000001 (flatcar stable 4081.2.0"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("AAAAC3NzaC1lZDI1NTE5"),
        "the plan never shows the key"
    );

    // Read back: the template's latest version boots the rendered config.
    let template = latest_template(&cloud, "machines").await;
    let config = template.user_data;
    assert_eq!(
        (
            template.version,
            template.image.as_str(),
            template.instance_type.as_str(),
            template.http_tokens.as_str()
        ),
        (1, "ami-0f1a7ca7000000001", "t3.small", "required")
    );
    ignition_validate(&config).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(parsed["passwd"]["users"][0]["sshAuthorizedKeys"][0], KEY);
    assert!(config.contains("nginx:1.27-alpine"));
    // The root volume goes with the instance; the data volume outlives it.
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_name("machines")
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let disks: Vec<(String, i32, bool)> = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap()
        .block_device_mappings()
        .iter()
        .map(|b| {
            let ebs = b.ebs().unwrap();
            (
                b.device_name().unwrap().to_owned(),
                ebs.volume_size().unwrap(),
                ebs.delete_on_termination().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        disks,
        [
            ("/dev/xvda".to_owned(), 20, true),
            ("/dev/xvdf".to_owned(), 50, false)
        ]
    );
    assert_eq!(parsed["storage"]["filesystems"][0]["device"], "/dev/xvdf");
    let g = group(&cloud).await;
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(1), Some(3), Some(2))
    );
    assert_eq!(g.launch_template().and_then(|t| t.version()), Some("1"));
    assert_eq!(g.target_group_arns().len(), 1);
    assert_eq!(g.vpc_zone_identifier().unwrap().split(',').count(), 2);
    assert!(g.tags().iter().any(|t| t.key() == Some("strata:environment") && t.propagate_at_launch() == Some(true)));

    // Nothing changed: nothing planned.
    let again = Scope::units(&units("nginx:1.27-alpine"))
        .plan(&connector, &[&e])
        .await;
    assert!(again.is_empty(), "{}", render::markdown(&again));

    // A unit change is a node change only: a new template version, the group follows.
    let newer = units("nginx:1.28-alpine");
    let node_change = Scope::units(&newer)
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    assert_eq!(actions(&node_change, Layer::Cluster), Vec::<String>::new());
    assert_eq!(
        actions(&node_change, Layer::Node),
        ["update node/config", "update asg"]
    );
    let markdown = render::markdown(&node_change);
    assert!(markdown.contains("~ unit web.service"), "{markdown}");
    assert!(
        markdown.contains("\n-     Environment=WEB_IMAGE=docker.io/library/nginx:1.27-alpine\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("\n+     Environment=WEB_IMAGE=docker.io/library/nginx:1.28-alpine\n"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("AAAAC3NzaC1lZDI1NTE5"),
        "the plan never shows the key"
    );
    let template = latest_template(&cloud, "machines").await;
    let config = template.user_data;
    assert_eq!(template.version, 2);
    // ...and rolls out through an instance refresh with the rollout settings.
    let refreshes = cloud.connector().await.connect("eu-west-1").autoscaling;
    let out = refreshes
        .describe_instance_refreshes()
        .auto_scaling_group_name("machines")
        .send()
        .await
        .unwrap();
    let refresh = &out.instance_refreshes()[0];
    assert_eq!(refresh.status().map(|s| s.as_str()), Some("Successful"));
    let preferences = refresh.preferences().unwrap();
    assert_eq!(
        (
            preferences.min_healthy_percentage(),
            preferences.instance_warmup(),
            preferences.skip_matching()
        ),
        (Some(90), Some(60), Some(true))
    );
    assert!(
        markdown.contains("instance refresh, 90% kept in service, 60s warm-up"),
        "{markdown}"
    );
    assert!(config.contains("nginx:1.28-alpine"));
    assert_eq!(
        group(&cloud)
            .await
            .launch_template()
            .and_then(|t| t.version()),
        Some("2")
    );

    // A cluster change (instance type) is one new version too.
    let bigger = env(&server.uri(), "t3.large");
    let cluster_change = Scope::units(&newer)
        .apply(&connector, &[&bigger], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&cluster_change, Layer::Cluster),
        ["update launch-template", "update asg"]
    );
    let template = latest_template(&cloud, "machines").await;
    assert_eq!(
        (template.version, template.instance_type.as_str()),
        (3, "t3.large")
    );
    assert_eq!(
        group(&cloud)
            .await
            .launch_template()
            .and_then(|t| t.version()),
        Some("3")
    );
    assert!(
        Scope::units(&newer)
            .plan(&connector, &[&bigger])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_key_secret_stops_the_plan_before_any_write() {
    let cloud = Cloud::new();
    let server = flatcar_feed(FLATCAR_AMI).await;
    let e = env(&server.uri(), "t3.small");
    let connector = cloud.connector().await;
    let err = Scope::units(&units("x"))
        .try_plan(&connector, &[&e])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reading secret tests/cluster/ssh in eu-west-1: ResourceNotFoundException"),
        "{err}"
    );
    assert_eq!(connector.metrics().writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_new_image_release_moves_the_cluster_only_with_follow() {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", "tests/cluster/ssh", KEY)
        .await;
    let connector = cloud.connector().await;
    let web = units("nginx:1.27-alpine");
    let old = flatcar_feed(FLATCAR_AMI).await;
    Scope::units(&web)
        .apply(&connector, &[&env(&old.uri(), "t3.small")], false)
        .await
        .unwrap();

    // The vendor publishes 4152.2.0: without follow, the running image is kept.
    let new = flatcar_feed("ami-0f1a7ca7000000004").await;
    let kept = Scope::units(&web)
        .plan(&connector, &[&env(&new.uri(), "t3.small")])
        .await;
    assert!(kept.is_empty(), "{}", render::markdown(&kept));
    let notes = &kept.environments[0]
        .layers
        .iter()
        .find(|l| l.layer == Layer::Cluster)
        .unwrap()
        .notes;
    assert!(notes.iter().any(|n| n.starts_with("image: ami-0f1a7ca7000000001 kept; ami-0f1a7ca7000000004 (flatcar stable 4152.2.0) is published")), "{notes:?}");

    // With follow, the template moves to it.
    let mut following = env(&new.uri(), "t3.small");
    if let Some(os) = following.spec.cluster.as_mut().and_then(|c| c.os.as_mut()) {
        os.follow = true;
    }
    let following = crate::harness::revalidated(following, &web.names());
    let moved = Scope::units(&web)
        .apply(&connector, &[&following], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&moved, Layer::Cluster),
        ["update launch-template", "update asg"]
    );
    let template = latest_template(&cloud, "machines").await;
    assert_eq!(
        (template.version, template.image.as_str()),
        (2, "ami-0f1a7ca7000000004")
    );
}

#[tokio::test]
async fn a_change_driven_node_only_plan_rolls_the_group() {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", "tests/cluster/ssh", KEY)
        .await;
    let connector = cloud.connector().await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let e = env(&server.uri(), "t3.small");
    Scope::units(&units("nginx:1.27-alpine"))
        .apply(&connector, &[&e], false)
        .await
        .unwrap();

    // What `--base/--head` gives for a unit edit: the node layer of this environment.
    let set = strata::changes::ChangeSet {
        base: "a".into(),
        head: "b".into(),
        environments: vec![strata::changes::EnvironmentChange {
            name: "machines".into(),
            change: strata::changes::ChangeKind::Modified,
            layers: vec![Layer::Node],
            reasons: Vec::new(),
        }],
    };
    let head: BTreeMap<String, Environment> = [("machines".to_owned(), e)].into();
    let targets = engine::from_changes(&set, &head, &BTreeMap::new(), &[]);
    let plan = Planned::of(&connector, &targets, &units("nginx:1.28-alpine"))
        .await
        .unwrap()
        .plan;
    // Every layer is planned (what a plan of every layer holds); only the node has
    // actions, and the group's instance refresh counts its machines as a rollout.
    let layers: Vec<(String, usize)> = plan.environments[0]
        .layers
        .iter()
        .map(|l| (l.layer.to_string(), l.actions.len()))
        .collect();
    assert_eq!(
        layers,
        [
            ("network".into(), 0),
            ("cluster".into(), 0),
            ("node".into(), 2)
        ]
    );
    assert_eq!(
        actions(&plan, Layer::Node),
        ["update node/config", "update asg"]
    );
    let summary = plan.environments[0].summary;
    assert_eq!((summary.update, summary.rollout), (2, 2));
}

#[tokio::test]
async fn the_web_example_comes_up_as_a_group_booting_its_config() {
    let cloud = Cloud::new();
    let key = crate::harness::unique_key("web-example");
    cloud
        .put_secret("eu-west-1", "strata/web-prod/ssh-public-key", &key)
        .await;
    let connector = cloud.connector().await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let files = strata::repo::read_dir(&project_root()).unwrap();
    let units = strata::repo::load(&files).unwrap().units;
    let text = crate::harness::example_with_feed("web-prod", &server.uri()).replace(
        "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        &cloud.certificate("eu-west-1"),
    );
    let e = strata::config::load("environments/web-prod.yaml", &text, &units.names()).unwrap();
    let created = Scope::units(&units)
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&created, Layer::Cluster),
        ["create launch-template", "create asg"]
    );

    let aws = cloud.connector().await.connect("eu-west-1");
    let groups = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("web-prod")
        .send()
        .await
        .unwrap();
    let g = &groups.auto_scaling_groups()[0];
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(2), Some(6), Some(3))
    );
    assert_eq!(g.launch_template().and_then(|t| t.version()), Some("1"));
    assert_eq!(g.vpc_zone_identifier().unwrap().split(',').count(), 3);
    assert_eq!(g.target_group_arns().len(), 1);
    let template = latest_template(&cloud, "web-prod").await;
    let config = strata::ignition::unwrap(&template.user_data).unwrap();
    ignition_validate(&config).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        parsed["passwd"]["users"][0]["sshAuthorizedKeys"][0],
        key.as_str()
    );
    let units_installed: Vec<&str> = parsed["systemd"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(
        units_installed,
        ["web.service", "docker-prune.service", "docker-prune.timer"]
    );

    let again = Scope::units(&units).plan(&connector, &[&e]).await;
    assert!(again.is_empty(), "{}", render::markdown(&again));
    crate::harness::assert_key_nowhere(
        &key,
        &[&render::markdown(&created), &render::json(&created)],
    );
}
