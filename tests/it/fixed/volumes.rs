//! Each node of a fixed-size cluster keeps its data volume across replacements, and
//! one left detached by a cut goes back to its node.

use strata::config::{Environment, Layer};
use strata::plan::render;

use crate::cloud::Cloud;
use crate::fixtures::{Scope, actions};

use super::{account, instances, units};

/// A node's data volume.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DataVolume {
    /// Its logical id (`strata:id`), `volume/<index>`.
    id: String,
    /// Its EBS volume id.
    volume: String,
    /// Its availability zone.
    zone: String,
    size_gb: i32,
    /// The instance it is attached to; empty when detached.
    instance: String,
    /// The device it is attached as; empty when detached.
    device: String,
}

/// The nodes' data volumes in the account, by logical id.
async fn volumes(cloud: &Cloud) -> Vec<DataVolume> {
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    let out = ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag-key")
                .values("strata:id")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut found: Vec<_> = out
        .volumes()
        .iter()
        .filter_map(|v| {
            let id = v
                .tags()
                .iter()
                .find(|t| t.key() == Some("strata:id"))?
                .value()?
                .to_owned();
            let attachment = v.attachments().first();
            Some(DataVolume {
                id,
                volume: v.volume_id()?.to_owned(),
                zone: v.availability_zone()?.to_owned(),
                size_gb: v.size()?,
                instance: attachment
                    .and_then(|a| a.instance_id())
                    .unwrap_or_default()
                    .to_owned(),
                device: attachment
                    .and_then(|a| a.device())
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .filter(|v| v.id.starts_with("volume/"))
        .collect();
    found.sort();
    found
}

/// The etcd example with data volumes of `size` GiB.
fn etcd_with_data(feed: &str, size: u32) -> Environment {
    let text = crate::harness::example_with_feed("etcd-prod", feed)
        .replace("warmup_seconds: 120", "warmup_seconds: 0")
        .replace(
            "data_volume: { size_gb: 20,",
            &format!("data_volume: {{ size_gb: {size},"),
        );
    strata::config::load("environments/etcd-prod.yaml", &text, &units("x").names()).unwrap()
}

#[tokio::test]
async fn each_node_keeps_its_data_volume_across_replacements() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let with_data = |size: u32| etcd_with_data(&server.uri(), size);
    let u = units("quay.io/coreos/etcd:v3.5.17");
    let created = Scope::units(&u)
        .apply(&connector, &[&with_data(30)], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&created, Layer::Cluster),
        [
            "create launch-template",
            "create volume/0",
            "create volume/1",
            "create volume/2",
            "create instance/0",
            "create instance/1",
            "create instance/2"
        ]
    );
    // One volume per node, in its node's zone, attached to its instance.
    let running = instances(&cloud).await;
    let attached = volumes(&cloud).await;
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    for (n, (node, volume)) in running.iter().zip(&attached).enumerate() {
        let (id, instance, config) = (&node.id, &node.instance, &node.config);
        assert_eq!(volume.id, format!("volume/{n}"));
        assert_eq!(id, &format!("instance/{n}"));
        assert_eq!(
            (
                volume.zone.as_str(),
                volume.size_gb,
                volume.instance.as_str(),
                volume.device.as_str()
            ),
            (zones[n], 30, instance.as_str(), "/dev/xvdf")
        );
        // The node formats it only when it has no filesystem yet.
        let parsed: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(parsed["storage"]["filesystems"][0]["device"], "/dev/xvdf");
        assert_eq!(parsed["storage"]["filesystems"][0]["wipeFilesystem"], false);
    }
    // The template makes no data volume of its own.
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    let template = ec2
        .describe_launch_template_versions()
        .launch_template_name("etcd-prod")
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let devices: Vec<&str> = template.launch_template_versions()[0]
        .launch_template_data()
        .unwrap()
        .block_device_mappings()
        .iter()
        .filter_map(|b| b.device_name())
        .collect();
    assert_eq!(devices, ["/dev/xvda"]);

    // A node change replaces the instances; each new one gets its node's volume back.
    let newer = units("quay.io/coreos/etcd:v3.5.18");
    Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&connector, &[&with_data(30)], false)
        .await
        .unwrap();
    let replaced = instances(&cloud).await;
    let reattached = volumes(&cloud).await;
    for n in 0..3 {
        assert_ne!(replaced[n].instance, running[n].instance);
        assert_eq!(reattached[n].volume, attached[n].volume, "the same volume");
        assert_eq!(
            reattached[n].instance, replaced[n].instance,
            "attached to the new instance"
        );
    }

    // Growing the volumes changes them in place; the instances stay.
    let grown = Scope::units(&newer)
        .apply(&connector, &[&with_data(40)], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&grown, Layer::Cluster),
        ["update volume/0", "update volume/1", "update volume/2"],
        "{}",
        render::markdown(&grown)
    );
    assert!(volumes(&cloud).await.iter().all(|v| v.size_gb == 40));
    assert_eq!(instances(&cloud).await, replaced);

    // They never shrink: the plan says so and changes nothing.
    let smaller = Scope::units(&newer)
        .plan(&connector, &[&with_data(35)])
        .await;
    assert!(smaller.is_empty(), "{}", render::markdown(&smaller));
    assert!(
        render::markdown(&smaller).contains("volume/0 stays at 40 GiB: EBS volumes cannot shrink"),
        "{}",
        render::markdown(&smaller)
    );
}

#[tokio::test]
async fn a_volume_left_detached_by_a_cut_goes_back_to_its_node() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let e = etcd_with_data(&server.uri(), 30);
    Scope::units(&units("quay.io/coreos/etcd:v3.5.17"))
        .apply(&connector, &[&e], false)
        .await
        .unwrap();

    // Writes of the rollout: a template version (2), then instance/0's terminate and
    // launch; the 5th, attaching volume/0 to the new instance, is cut.
    let newer = units("quay.io/coreos/etcd:v3.5.18");
    let failing = cloud.failing_connector(4).await;
    let err = Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&failing, &[&e], false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("injected before AttachVolume"),
        "{err}"
    );
    assert_eq!(
        volumes(&cloud).await[0].instance,
        "",
        "volume/0 is detached"
    );

    // The next full plan attaches it again and finishes the rollout.
    let resumed = Scope::units(&newer)
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&resumed, Layer::Cluster),
        [
            "update volume/0",
            "replace instance/1",
            "replace instance/2"
        ],
        "{}",
        render::markdown(&resumed)
    );
    let running = instances(&cloud).await;
    let attached = volumes(&cloud).await;
    for n in 0..3 {
        assert_eq!(
            attached[n].instance, running[n].instance,
            "volume/{n} is on instance/{n}"
        );
    }
}
