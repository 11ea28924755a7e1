//! How the machines are read: their listings beside the network's, a few templates by
//! name and many from the region's listing, and a template those reads missed read on
//! its own.

use std::collections::BTreeSet;

use strata::aws::Connector;
use strata::config::Environment;
use strata::units::UnitSet;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::fixtures::Scope;
use crate::harness::{GitRepo, example_with_feed, project_root};
use crate::proxy::{Fault, Proxy, Requests};

const UNIT: &str = "[Unit]\nDescription=app\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n";

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK tests@strata";

/// Only mapping the machines' AWS ids needs the network's answers, so their listings
/// go out beside the network's, and a plan waits through two rounds of reads, not
/// three (`cargo bench --bench plan` counts them). Shown by cause: with every network
/// listing refused, the machines were listed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_machines_are_listed_beside_the_network_not_after_it() {
    let proxy = Proxy::new(&Cloud::new().account);
    let feed = flatcar_feed(FLATCAR_AMI).await;
    let repo = web_prod(&feed.uri());
    let network = [
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeInternetGateways",
        "DescribeAddresses",
        "DescribeNatGateways",
        "DescribeRouteTables",
        "DescribeSecurityGroups",
        "DescribeLoadBalancers",
        "DescribeTargetGroups",
    ];
    for operation in network {
        proxy.inject(
            Requests::Operation(operation.to_owned()),
            &[Fault::Status(400)],
        );
    }
    let plan = proxy.run(&repo, &["plan"]).await;
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    let sent: BTreeSet<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
    for listing in [
        "DescribeLaunchTemplates",
        "DescribeLaunchTemplateVersions",
        "DescribeAutoScalingGroups",
        "DescribeInstances",
        "DescribeVolumes",
    ] {
        assert!(
            sent.contains(listing),
            "{listing} waited for the network: {sent:?}"
        );
    }
}

/// A template made while a plan reads (its version read before it was made, the
/// template listed after) is read on its own: the plan sees the template that exists
/// and does not plan one that AWS would refuse as a name already taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_made_between_the_two_template_reads_is_read_on_its_own() {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", "strata/web-prod/ssh-public-key", KEY)
        .await;
    let proxy = Proxy::new(&cloud.account);
    let feed = flatcar_feed(FLATCAR_AMI).await;
    let repo = web_prod(&feed.uri());
    proxy.inject(
        Requests::Operation("DescribeLaunchTemplates".to_owned()),
        &[Fault::Slow(std::time::Duration::from_secs(4))],
    );
    let another_writer = async {
        while !proxy
            .calls()
            .iter()
            .any(|c| c.operation == "DescribeLaunchTemplateVersions")
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // moto answers the read by name in milliseconds; a loaded machine may take
        // longer, never this long.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let tags = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::LaunchTemplate)
            .tags(tag("strata:environment", "web-prod"))
            .tags(tag("strata:id", "launch-template"))
            .build();
        let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .image_id(FLATCAR_AMI)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .build();
        let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
        ec2.create_launch_template()
            .launch_template_name("web-prod")
            .launch_template_data(data)
            .tag_specifications(tags)
            .send()
            .await
            .expect("the other writer makes the template");
    };
    let (plan, ()) = tokio::join!(
        proxy.run(&repo, &["plan", "--format", "json"]),
        another_writer
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let template: Vec<&serde_json::Value> = plan["environments"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["actions"].as_array().unwrap())
        .filter(|a| a["id"] == "launch-template")
        .collect();
    assert_eq!(template.len(), 1, "{template:?}");
    assert_eq!(template[0]["action"], "update", "{template:?}");
    let by_id = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "DescribeLaunchTemplateVersions")
        .count();
    assert_eq!(by_id, 2, "by name before it was made, then by id");
}

fn tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

/// A few environments' templates are read by name, one request each in the first
/// round, however many templates the region holds; more are read from the region's
/// listing, 200 templates a page (tests/moto_server.py pages it as EC2 does).
#[tokio::test]
async fn a_few_templates_are_read_by_name_and_many_from_the_listing() {
    let cloud = Cloud::new();
    cloud.put_secret("eu-west-1", "tests/reads/ssh", KEY).await;
    let connector = cloud.connector().await;
    let feed = flatcar_feed(FLATCAR_AMI).await;
    let ec2 = connector.connect("eu-west-1").ec2;
    // Others' templates: more than a page of the listing.
    for i in 0..250 {
        let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .image_id(FLATCAR_AMI)
            .build();
        ec2.create_launch_template()
            .launch_template_name(format!("others-{i}"))
            .launch_template_data(data)
            .send()
            .await
            .unwrap();
    }
    let units = strata::units::load([("app.service", UNIT.as_bytes())]).unwrap();
    let envs: Vec<Environment> = (0..21)
        .map(|i| {
            let yaml = format!(
                "region: eu-west-1\nnetwork:\n  cidr: 10.{i}.0.0/16\n  zones: 2\n  \
                 private_subnets: 2\n  public_subnets: 0\n\
                 cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  \
                 os: {{ name: flatcar, channel: stable, feed_url: \"{}/{{channel}}.json\" }}\n\
                 node:\n  units: [app.service]\n  ssh: {{ public_key_secret: tests/reads/ssh }}\n",
                feed.uri()
            );
            let file = format!("environments/reads-{i}.yaml");
            strata::config::load(&file, &yaml, &units.names()).unwrap()
        })
        .collect();
    let all: Vec<&Environment> = envs.iter().collect();
    assert_eq!(versions_read(&connector, &units, &all[..1]).await, 1);
    assert_eq!(versions_read(&connector, &units, &all[..20]).await, 20);
    // 21 environments: the listing, 250 templates in two pages.
    assert_eq!(versions_read(&connector, &units, &all).await, 2);
}

/// Plans `envs` (nothing of theirs exists): the `DescribeLaunchTemplateVersions` sent.
async fn versions_read(connector: &Connector, units: &UnitSet, envs: &[&Environment]) -> usize {
    let read = |connector: &Connector| {
        let by_operation = connector.metrics().by_operation();
        by_operation
            .get("DescribeLaunchTemplateVersions")
            .copied()
            .unwrap_or(0)
    };
    let before = read(connector);
    let plan = Scope::units(units).plan(connector, envs).await;
    assert!(plan.unplanned.is_empty(), "{:?}", plan.unplanned);
    let templates = plan
        .environments
        .iter()
        .flat_map(|e| &e.layers)
        .flat_map(|l| &l.actions)
        .filter(|a| a.id == strata::plan::LogicalId::LaunchTemplate)
        .count();
    assert_eq!(templates, envs.len(), "each plans its template");
    read(connector) - before
}

/// A repository holding the example `web-prod`, its image found through `feed`.
fn web_prod(feed: &str) -> GitRepo {
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    repo.write(
        "environments/web-prod.yaml",
        example_with_feed("web-prod", feed),
    );
    repo.commit("web-prod");
    repo
}
