//! How the machines are read: their listings beside the network's, and a template
//! the region's version listing did not answer for read on its own.

use std::collections::BTreeSet;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::harness::{GitRepo, example_with_feed, project_root};
use crate::proxy::{Fault, Proxy, Requests};

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
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    repo.write(
        "environments/web-prod.yaml",
        example_with_feed("web-prod", &feed.uri()),
    );
    repo.commit("web-prod");
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

/// A template made while a plan reads (its version listed before it was made, the
/// template after) is read on its own: the plan sees the template that exists and
/// does not plan one that AWS would refuse as a name already taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_made_between_the_two_template_reads_is_read_on_its_own() {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", "strata/web-prod/ssh-public-key", KEY)
        .await;
    let proxy = Proxy::new(&cloud.account);
    let feed = flatcar_feed(FLATCAR_AMI).await;
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    repo.write(
        "environments/web-prod.yaml",
        example_with_feed("web-prod", &feed.uri()),
    );
    repo.commit("web-prod");
    proxy.inject(
        Requests::Operation("DescribeLaunchTemplates".to_owned()),
        &[Fault::Slow(std::time::Duration::from_secs(2))],
    );
    let another_writer = async {
        while !proxy
            .calls()
            .iter()
            .any(|c| c.operation == "DescribeLaunchTemplateVersions")
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // moto answers the versions listing in well under this.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
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
    assert_eq!(by_id, 2, "the listing, then the template on its own");
}

fn tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}
