//! The cluster and node layers' desired resources (pure): a launch template, and an
//! auto-scaling group or a fixed-size cluster's instances; the config they boot with.

mod follow;

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

pub use super::machine::{Machine, NodeLaunch};
use super::spec::{
    Attachment, AutoScalingGroup, DataDisk, Disk, Instance, LaunchTemplate, NodeConfig, Volume,
};
use super::{Kind, LogicalId, Observed, Resource, Spec};
use crate::config::addressing;
use crate::config::{Cluster, Environment, Size, Zone, names};
pub use follow::{
    follow_group_off_subnets, follow_replaced_subnets, leaving_subnets, replaced_subnets,
};

/// `sha256:<hex>` of a config: what the node layer compares.
pub fn digest(config_json: &str) -> String {
    let hash = Sha256::digest(config_json.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{}", &hex[..16])
}

/// The cluster layer of `env`: its launch template (image, type, groups, volume,
/// profile; `user_data` is what it is created with) and, for an auto-scaling cluster,
/// the group. `target_groups` are the logical ids of the target groups of the load
/// balancers the cluster joins.
pub fn desired(
    env: &Environment,
    image: &str,
    user_data: &str,
    target_groups: &[LogicalId],
) -> Vec<Resource> {
    let Some((cluster, shape)) = env.machines() else {
        return Vec::new();
    };
    let mut out = vec![Resource {
        kind: Kind::LaunchTemplate,
        id: LogicalId::LaunchTemplate,
        spec: Spec::LaunchTemplate(LaunchTemplate {
            name: names::launch_template(env.name.as_str()),
            image: image.to_owned(),
            instance_type: cluster.instance_type.to_string(),
            security_groups: security_groups(cluster),
            volume: root_volume(cluster),
            // A fixed-size cluster's nodes keep data volumes of their own (`volume/<i>`).
            data_volume: data_volume(cluster).filter(|_| shape.size.fixed().is_none()),
            instance_profile: cluster.instance_profile.clone(),
            user_data: user_data.to_owned(),
        }),
    }];
    if let Size::Autoscaling { min, max, desired } = shape.size {
        let subnets: BTreeSet<LogicalId> =
            addressing::subnets_of(&env.spec.network, cluster.subnets)
                .iter()
                .map(LogicalId::subnet)
                .collect();
        out.push(Resource {
            kind: Kind::AutoScalingGroup,
            id: LogicalId::AutoScalingGroup,
            spec: Spec::AutoScalingGroup(AutoScalingGroup {
                name: names::auto_scaling_group(env.name.as_str()),
                min,
                max,
                desired,
                subnets,
                target_groups: target_groups.iter().cloned().collect(),
                min_healthy_percent: cluster.rollout.min_healthy_percent,
                warmup_seconds: cluster.rollout.warmup_seconds,
            }),
        });
    }
    out
}

/// The logical ids of the target groups `env`'s cluster joins (those of the load
/// balancers it names).
pub fn target_groups(env: &Environment) -> Vec<LogicalId> {
    let Some(cluster) = &env.spec.cluster else {
        return Vec::new();
    };
    let balancers = &env.spec.network.load_balancers;
    cluster
        .load_balancers
        .iter()
        .filter_map(|name| Some((name, balancers.get(name)?)))
        .flat_map(|(name, lb)| {
            super::network::target_groups(lb)
                .into_iter()
                .map(|(_, port)| LogicalId::TargetGroup(name.to_string(), port))
        })
        .collect()
}

/// The root volume.
fn root_volume(cluster: &Cluster) -> Option<Disk> {
    cluster.volume.as_ref().map(|v| Disk {
        size_gb: v.size_gb,
        volume_type: volume_kind(v.kind).to_owned(),
    })
}

/// The data volume of an auto-scaling group's instances.
fn data_volume(cluster: &Cluster) -> Option<DataDisk> {
    cluster.data_volume.as_ref().map(|v| DataDisk {
        disk: Disk {
            size_gb: v.size_gb,
            volume_type: volume_kind(v.kind).to_owned(),
        },
        device: v.device.clone(),
    })
}

/// `sha256:` of what an instance keeps from the template for life and EC2 does not
/// show without a read per instance: its root volume and its instance profile. A
/// change replaces a fixed-size cluster's instances, as an instance refresh does a
/// group's. (Its data volume is a resource of its own, changed in place.)
pub fn lifetime_settings(cluster: &Cluster) -> String {
    let none = || "none".to_owned();
    digest(&format!(
        "volume={}\ninstance_profile={}\n",
        root_volume(cluster).map_or_else(none, |d| d.to_string()),
        cluster.instance_profile.clone().unwrap_or_else(none),
    ))
}

/// The data volumes of a fixed-size cluster with `data_volume:`, one per node index,
/// each in its node's zone (`zones` are the environment's zone names, by index) and
/// attached to the node's instance at the configured device. They outlive the
/// instances: a replaced node gets its volume back.
pub fn volumes(env: &Environment, zones: &[Zone]) -> Vec<Resource> {
    let Some((cluster, shape)) = env.machines() else {
        return Vec::new();
    };
    let (Some(size), Some(volume)) = (shape.size.fixed(), cluster.data_volume.as_ref()) else {
        return Vec::new();
    };
    (0..size)
        .filter_map(|index| {
            let (subnet, _) =
                addressing::node_placement(&env.spec.network, cluster.subnets, index)?;
            Some(Resource {
                kind: Kind::Volume,
                id: LogicalId::Volume(index),
                spec: Spec::Volume(Volume {
                    zone: zones.get(subnet.zone)?.clone(),
                    size_gb: volume.size_gb,
                    volume_type: volume_kind(volume.kind).to_owned(),
                    attached_to: Some(Attachment {
                        instance: LogicalId::Instance(index),
                        device: volume.device.clone(),
                    }),
                }),
            })
        })
        .collect()
}

/// EBS volumes grow in place but never shrink, and replacing one would take its data:
/// a smaller size is dropped from the plan (the volume keeps its size) and each such
/// volume gets a note instead.
pub fn keep_volumes_from_shrinking(actions: &mut Vec<super::Action>) -> Vec<String> {
    let mut notes = Vec::new();
    for a in actions
        .iter_mut()
        .filter(|a| a.kind == Kind::Volume && a.action == super::ActionKind::Update)
    {
        let (
            Some(Spec::Volume(Volume { size_gb: new, .. })),
            Some(Spec::Volume(Volume { size_gb: old, .. })),
        ) = (
            a.desired.as_ref().map(|d| &d.spec),
            a.observed.as_ref().map(|o| &o.spec),
        )
        else {
            continue;
        };
        if new < old {
            notes.push(format!(
                "{} stays at {old} GiB: EBS volumes cannot shrink (copy the data to a smaller volume by hand if you need one)",
                a.id
            ));
            let kept = *old;
            if let Some(Resource {
                spec: Spec::Volume(Volume { size_gb, .. }),
                ..
            }) = a.desired.as_mut()
            {
                *size_gb = kept;
            }
            a.changes.retain(|c| c.field != "size");
        }
    }
    actions.retain(|a| {
        !(a.kind == Kind::Volume && a.action == super::ActionKind::Update && a.changes.is_empty())
    });
    notes
}

/// True when `id` is a target group of a load balancer the cluster joins.
pub fn joins_target_group(cluster: &Cluster, id: &LogicalId) -> bool {
    match id {
        LogicalId::TargetGroup(lb, _) => cluster.load_balancers.iter().any(|l| l.as_str() == lb),
        _ => false,
    }
}

/// The logical ids of the security groups the cluster's instances are in.
pub fn security_groups(cluster: &Cluster) -> BTreeSet<LogicalId> {
    cluster
        .security_groups
        .iter()
        .map(|g| LogicalId::SecurityGroup(g.to_string()))
        .collect()
}

/// The instances of a fixed-size cluster, one per node index: each in the subnet and
/// at the address [`addressing::node_placement`] gives it, with its own config.
/// `nodes` holds what each launches with, by index.
pub fn instances(
    env: &Environment,
    image: &str,
    target_groups: &[LogicalId],
    nodes: &[NodeLaunch],
) -> Vec<Resource> {
    let Some((cluster, _)) = env.machines().filter(|(_, s)| s.size.fixed().is_some()) else {
        return Vec::new();
    };
    nodes
        .iter()
        .zip(0u16..)
        .filter_map(|(node, index)| {
            let (subnet, ip) =
                addressing::node_placement(&env.spec.network, cluster.subnets, index)?;
            Some(Resource {
                kind: Kind::Instance,
                id: LogicalId::Instance(index),
                spec: Spec::Instance(Instance {
                    subnet: LogicalId::subnet(&subnet),
                    private_ip: ip.to_string(),
                    image: image.to_owned(),
                    instance_type: cluster.instance_type.to_string(),
                    security_groups: security_groups(cluster),
                    target_groups: target_groups.iter().cloned().collect(),
                    config: node.digest.clone(),
                    settings: lifetime_settings(cluster),
                    user_data: node.user_data.clone(),
                }),
            })
        })
        .collect()
}

/// The instance a run may change when only some layers are planned: the cluster
/// layer owns where and what an instance is (subnet, address, image, type, groups,
/// target groups), the node layer the config it boots with. The fields of a layer
/// not planned keep their observed values, so they cause no change.
pub fn within_layers(
    desired: &Resource,
    observed: Option<&Observed>,
    cluster: bool,
    node: bool,
) -> Resource {
    let mut out = desired.clone();
    let (
        Some(Observed {
            spec:
                Spec::Instance(Instance {
                    subnet: o_subnet,
                    private_ip: o_ip,
                    image: o_image,
                    instance_type: o_type,
                    security_groups: o_groups,
                    target_groups: o_targets,
                    config: o_config,
                    settings: o_settings,
                    ..
                }),
            ..
        }),
        Spec::Instance(Instance {
            subnet,
            private_ip,
            image,
            instance_type,
            security_groups,
            target_groups,
            config,
            settings,
            ..
        }),
    ) = (observed, &mut out.spec)
    else {
        return out;
    };
    if !cluster {
        subnet.clone_from(o_subnet);
        private_ip.clone_from(o_ip);
        image.clone_from(o_image);
        instance_type.clone_from(o_type);
        security_groups.clone_from(o_groups);
        target_groups.clone_from(o_targets);
        settings.clone_from(o_settings);
    }
    if !node {
        config.clone_from(o_config);
    }
    out
}

/// The node layer: the config every instance boots with.
pub fn node(config_json: &str) -> Vec<Resource> {
    vec![Resource {
        kind: Kind::NodeConfig,
        id: LogicalId::NodeConfig,
        spec: Spec::NodeConfig(NodeConfig {
            digest: digest(config_json),
        }),
    }]
}

/// The EBS spelling of a volume type.
pub fn volume_kind(kind: crate::config::VolumeKind) -> &'static str {
    use crate::config::VolumeKind::*;
    match kind {
        Gp3 => "gp3",
        Gp2 => "gp2",
        Io1 => "io1",
        Io2 => "io2",
        St1 => "st1",
        Sc1 => "sc1",
        Standard => "standard",
    }
}

/// A resolved machine image: what the image lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `ami-...`.
    pub id: String,
    /// The image's name in EC2.
    pub name: String,
    /// The OS release, e.g. `4081.2.0` (Flatcar) or `41.20250105.3.0` (Fedora CoreOS).
    pub release: Option<String>,
    /// Where it came from, for plans: `flatcar stable`, `pinned`.
    pub source: String,
}

impl Image {
    /// The image the live launch template names (empty when there is none): what a
    /// cluster being removed is compared with, since no lookup is made for it.
    pub fn running(observed: &[Observed]) -> Image {
        let id = observed.iter().find_map(|o| match &o.spec {
            Spec::LaunchTemplate(LaunchTemplate { image, .. }) => Some(image.clone()),
            _ => None,
        });
        Image {
            id: id.unwrap_or_default(),
            name: String::new(),
            release: None,
            source: "running".to_owned(),
        }
    }
}

/// An environment's desired cluster and node layers.
#[derive(Default)]
pub struct DesiredMachines {
    /// The template and, for an auto-scaling cluster, the group.
    pub cluster: Vec<Resource>,
    /// The template's node config.
    pub node: Vec<Resource>,
    /// A fixed-size cluster's instances.
    pub instances: Vec<Resource>,
}

/// The cluster and node layers' desired resources of an environment whose machines
/// strata manages: the image as `os.follow` says, and the target groups of the load
/// balancers the cluster joins.
pub fn desired_machines(
    env: &Environment,
    m: &Machine,
    machine_observed: &[Observed],
    zones: &[crate::config::Zone],
) -> DesiredMachines {
    let tgs = target_groups(env);
    let image = kept_image(env, machine_observed, &m.image).unwrap_or_else(|| m.image.id.clone());
    DesiredMachines {
        cluster: {
            let mut cluster = desired(env, &image, &m.user_data, &tgs);
            cluster.extend(volumes(env, zones));
            cluster
        },
        node: m.config.as_deref().map(node).unwrap_or_default(),
        instances: instances(env, &image, &tgs, &m.nodes),
    }
}

/// The image the cluster runs now, when a newer one is published but `os.follow` is
/// off: a new release alone does not move the cluster.
pub fn kept_image(env: &Environment, observed: &[Observed], published: &Image) -> Option<String> {
    let crate::config::ImageSource::Feed(os) = &env.cluster.as_ref()?.image else {
        return None;
    };
    if os.follow {
        return None;
    }
    observed.iter().find_map(|o| match &o.spec {
        Spec::LaunchTemplate(LaunchTemplate { image, .. })
            if *image != published.id && !image.is_empty() =>
        {
            Some(image.clone())
        }
        _ => None,
    })
}
