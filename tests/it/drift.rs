//! `strata drift`: changes made by hand in AWS (with the SDK, not through strata) are
//! found field by field, stopped machines and orphans are named, the exit code says
//! so, and nothing is written.

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification};

use crate::scenario::Scenario;

/// A resource of `kind` made by hand with `tags`, as strata would tag it.
fn tagged_as(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `<found> <id>` of each item of environment `name`.
fn items(report: &serde_json::Value, name: &str) -> Vec<String> {
    let env = report["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report}"));
    env["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["found"].as_str().unwrap(),
                i["id"].as_str().unwrap()
            )
        })
        .collect()
}

/// `<environment> <id>` of each orphan.
fn orphans(report: &serde_json::Value) -> Vec<String> {
    report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["environment"].as_str().unwrap(),
                o["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_by_hand_stopped_machines_and_orphans_are_found_and_nothing_is_written() {
    let s = Scenario::new("etcd-prod").await;
    let applied = s.run(&["apply"], Some(1)).await;
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let writes = s.proxy.writes().len();

    // Just applied: nothing drifted.
    let calls = s.proxy.calls().len();
    let clean = s.run(&["drift"], Some(1)).await;
    let reads: Vec<String> = s.proxy.calls()[calls..]
        .iter()
        .map(|c| c.operation.clone())
        .collect();
    // Reads as flat as a plan's: one request per resource type for the region (the
    // VPCs and templates twice: once to find environments without a file). 19 today.
    for op in &reads {
        let times = reads.iter().filter(|r| *r == op).count();
        assert!(times <= 2, "{op} sent {times} times: {reads:?}");
    }
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(
        clean
            .stdout
            .contains("etcd-prod (eu-west-1): matches its file"),
        "{}",
        clean.stdout
    );
    assert!(clean.stdout.contains("no drift"), "{}", clean.stdout);

    // By hand, in AWS: a rule opened on the etcd group, a node stopped, a group the
    // file does not declare.
    let aws = s.cloud.connector().await.connect("eu-west-1");
    let tagged = |id: &str| Filter::builder().name("tag:strata:id").values(id).build();
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(tagged("sg/etcd"))
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(group.group_id().unwrap())
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(9100)
                .to_port(9100)
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instances = aws
        .ec2
        .describe_instances()
        .filters(tagged("instance/0"))
        .send()
        .await
        .unwrap();
    let node = instances.reservations()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    aws.ec2
        .stop_instances()
        .instance_ids(&node)
        .send()
        .await
        .unwrap();
    let tags = [
        ("strata:environment", "etcd-prod"),
        ("strata:layer", "network"),
        ("strata:id", "sg/left-over"),
    ];
    aws.ec2
        .create_security_group()
        .group_name("etcd-prod-left-over")
        .description("made by hand")
        .vpc_id(group.vpc_id().unwrap())
        .tag_specifications(tagged_as(ResourceType::SecurityGroup, &tags))
        .send()
        .await
        .unwrap();
    // A NAT gateway deleted, and node 1 tagged as booted with another config.
    let nats = aws
        .ec2
        .describe_nat_gateways()
        .filter(tagged("nat/2"))
        .send()
        .await
        .unwrap();
    // (moto does not filter NAT gateways by tag: pick it by its tags.)
    let nat = nats
        .nat_gateways()
        .iter()
        .find(|n| {
            n.tags()
                .iter()
                .any(|t| t.key() == Some("strata:id") && t.value() == Some("nat/2"))
        })
        .and_then(|n| n.nat_gateway_id())
        .unwrap()
        .to_owned();
    aws.ec2
        .delete_nat_gateway()
        .nat_gateway_id(&nat)
        .send()
        .await
        .unwrap();
    let one = aws
        .ec2
        .describe_instances()
        .filters(tagged("instance/1"))
        .send()
        .await
        .unwrap();
    let one = one.reservations()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    aws.ec2
        .create_tags()
        .resources(&one)
        .tags(
            Tag::builder()
                .key("strata:config")
                .value("sha256:0123456789abcdef")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Two data volumes no file declares: one a node of an earlier size of the cluster
    // kept, one a group's replaced instance left behind (unattached, tagged as the
    // launch template tags what it launches).
    for (id, size) in [("volume/7", 5), ("instance", 8)] {
        let tags = [("strata:environment", "etcd-prod"), ("strata:id", id)];
        aws.ec2
            .create_volume()
            .availability_zone("eu-west-1a")
            .size(size)
            .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
            .tag_specifications(tagged_as(ResourceType::Volume, &tags))
            .send()
            .await
            .unwrap();
    }
    let before = s.proxy.writes().len();
    assert_eq!(
        before, writes,
        "the changes by hand did not go through the proxy"
    );

    let found = s.run(&["drift", "--format", "json"], Some(1)).await;
    assert_eq!(found.code, 2, "{}{}", found.stdout, found.stderr);
    let report = json(&found.stdout);
    let found = items(&report, "etcd-prod");
    for expected in [
        "changed sg/etcd",
        "missing nat/2",
        "changed rtb/private/2",
        "config instance/1",
        "stopped instance/0",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected}: {found:?}"
        );
    }
    assert_eq!(found.len(), 5, "{found:?}");
    let sg = report["environments"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "sg/etcd")
        .unwrap();
    let rule = &sg["changes"][0];
    assert_eq!(rule["field"], "ingress");
    assert_eq!(rule["from"], "tcp 9100 from 10.0.0.0/8", "{report}");
    assert_eq!(
        orphans(&report),
        [
            "etcd-prod instance",
            "etcd-prod sg/left-over",
            "etcd-prod volume/7"
        ],
        "{report}"
    );
    let detail = |id: &str| {
        report["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .map(|o| o["detail"].as_str().unwrap_or_default().to_owned())
            .unwrap()
    };
    assert_eq!(detail("volume/7"), "5 GiB gp3", "{report}");
    assert_eq!(
        detail("instance"),
        "8 GiB gp3, left behind by a replaced machine",
        "{report}"
    );
    // The text says the same.
    let text = s.run(&["drift", "--env", "etcd-prod"], Some(1)).await;
    assert_eq!(text.code, 2, "{}", text.stderr);
    assert!(
        text.stdout.contains("changed: security group sg/etcd"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(&format!("stopped: instance instance/0 ({node})")),
        "{}",
        text.stdout
    );
    // An environment that does not exist is an error, before any AWS call.
    let unknown = s.run(&["drift", "--env", "nope"], Some(1)).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no environment `nope`"),
        "{}",
        unknown.stderr
    );

    // The file is removed: everything strata made for it is an orphan.
    s.repo.git(&["rm", "-q", "environments/etcd-prod.yaml"]);
    s.repo.commit("etcd-prod goes");
    let gone = s.run(&["drift", "--format", "json"], Some(1)).await;
    assert_eq!(gone.code, 2, "{}{}", gone.stdout, gone.stderr);
    let report = json(&gone.stdout);
    let all = orphans(&report);
    assert!(all.contains(&"etcd-prod vpc".to_owned()), "{all:?}");
    assert!(all.contains(&"etcd-prod instance/2".to_owned()), "{all:?}");
    assert!(
        report["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["environment_removed"] == true),
        "{report}"
    );
    assert_eq!(
        s.proxy.writes().len(),
        writes,
        "drift wrote: {:?}",
        &s.proxy.writes()[writes..]
    );
}
