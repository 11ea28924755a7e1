//! The cluster and node layers' desired resources (pure): a launch template, and an
//! auto-scaling group or a fixed-size cluster's instances; the config they boot with.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

pub use super::machine::{Machine, NodeLaunch};
use super::spec::{
    Attachment, AutoScalingGroup, DataDisk, Disk, Instance, LaunchTemplate, NodeConfig, Volume,
};
use super::{Kind, LogicalId, Observed, Resource, Spec};
use crate::config::addressing;
use crate::config::{Cluster, Environment, Size, Zone, names};

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

/// The network layer's subnets a set of actions replaces (logical ids): what a
/// fixed-size cluster's nodes must leave first.
pub fn replaced_subnets(network_actions: &[super::Action]) -> BTreeSet<LogicalId> {
    network_actions
        .iter()
        .filter(|a| a.kind == Kind::Subnet && a.action == super::ActionKind::Replace)
        .map(|a| a.id.clone())
        .collect()
}

/// The subnets the network layer replaces or deletes. AWS refuses to delete a subnet
/// that still holds network interfaces, so an auto-scaling group leaves these before
/// the network step.
pub fn leaving_subnets(network_actions: &[super::Action]) -> BTreeSet<LogicalId> {
    use super::ActionKind::{Delete, Replace};
    network_actions
        .iter()
        .filter(|a| a.kind == Kind::Subnet && matches!(a.action, Replace | Delete))
        .map(|a| a.id.clone())
        .collect()
}

/// An auto-scaling group in subnets the network replaces must follow them onto the
/// new ones: its update, forced by the subnet when nothing else changes it, runs after
/// the network step. Returns the notes that say how the group leaves the subnets
/// first (its instances there are replaced in the kept subnets, or, with none kept,
/// the group is emptied and filled again).
pub fn follow_group_off_subnets(
    actions: &mut Vec<super::Action>,
    desired: &[Resource],
    observed: &[Observed],
    leaving: &BTreeSet<LogicalId>,
    replaced: &BTreeSet<LogicalId>,
) -> Vec<String> {
    use super::{Action, ActionKind, FieldChange};
    let mut notes = Vec::new();
    for o in observed {
        let Spec::AutoScalingGroup(group) = &o.spec else {
            continue;
        };
        let gone: Vec<&LogicalId> = group.subnets.intersection(leaving).collect();
        if gone.is_empty() {
            continue;
        }
        let existing = actions
            .iter()
            .position(|a| a.kind == Kind::AutoScalingGroup && a.id == o.id);
        if existing.is_some_and(|i| actions[i].action == ActionKind::Delete) {
            continue;
        }
        let list = gone
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let kept = group.subnets.len() - gone.len();
        notes.push(if kept == 0 {
            format!(
                "auto-scaling group {}: every subnet it uses ({list}) goes; before the network changes, the group is emptied (its {} instances terminated), and after, it is filled again in the new subnets: a gap in service",
                group.name, group.desired
            )
        } else {
            format!(
                "auto-scaling group {}: before the network changes, it leaves {list}, and its instances there are replaced in the {kept} subnet{} it keeps; after, it spreads over its subnets again",
                group.name,
                if kept == 1 { "" } else { "s" }
            )
        });
        let replaced_here: Vec<&LogicalId> =
            gone.into_iter().filter(|s| replaced.contains(*s)).collect();
        if existing.is_some() || replaced_here.is_empty() {
            continue;
        }
        let Some(r) = desired.iter().find(|r| r.id == o.id) else {
            continue;
        };
        let changes = replaced_here
            .iter()
            .map(|s| FieldChange {
                origin: None,
                field: "subnets".into(),
                from: Some(s.to_string()),
                to: Some(format!("{s} (new)")),
            })
            .collect();
        actions.push(Action {
            refresh: None,
            origin: None,
            action: ActionKind::Update,
            kind: Kind::AutoScalingGroup,
            id: o.id.clone(),
            aws_id: Some(o.aws_id.clone()),
            changes,
            forced_by: Some(format!(
                "{} replaced",
                replaced_here
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            detail: Vec::new(),
            desired: Some(r.clone()),
            observed: Some(o.clone()),
        });
    }
    notes
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

/// A fixed-size cluster's instances in a subnet the network layer replaces must go
/// with it (AWS refuses to delete a subnet that still holds network interfaces): each
/// becomes a replacement, forced by the subnet, unless it is replaced or deleted
/// already. `replaced_subnets` are the network's replaced subnets (logical ids).
pub fn follow_replaced_subnets(
    actions: &mut Vec<super::Action>,
    desired: &[Resource],
    observed: &[Observed],
    replaced_subnets: &BTreeSet<LogicalId>,
) {
    use super::{Action, ActionKind, FieldChange};
    for o in observed {
        let Spec::Instance(Instance { subnet, .. }) = &o.spec else {
            continue;
        };
        if !replaced_subnets.contains(subnet) {
            continue;
        }
        let reason = format!("{subnet} is replaced");
        match actions
            .iter_mut()
            .find(|a| a.kind == Kind::Instance && a.id == o.id)
        {
            Some(a) if matches!(a.action, ActionKind::Replace | ActionKind::Delete) => {}
            Some(a) => {
                a.action = ActionKind::Replace;
                a.forced_by = Some(reason);
            }
            None => {
                let Some(r) = desired.iter().find(|r| r.id == o.id) else {
                    continue;
                };
                actions.push(Action {
                    refresh: None,
                    origin: None,
                    action: ActionKind::Replace,
                    kind: Kind::Instance,
                    id: o.id.clone(),
                    aws_id: Some(o.aws_id.clone()),
                    changes: vec![FieldChange {
                        origin: None,
                        field: "subnet".into(),
                        from: Some(subnet.to_string()),
                        to: Some(format!("{subnet} (new)")),
                    }],
                    forced_by: Some(reason),
                    detail: Vec::new(),
                    desired: Some(r.clone()),
                    observed: Some(o.clone()),
                });
            }
        }
    }
    actions.sort_by_key(|a| (a.kind.rank(), a.id.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ActionKind, plan_resources};

    fn instance(id: &str, subnet: &str) -> Resource {
        Resource {
            kind: Kind::Instance,
            id: id.into(),
            spec: Spec::Instance(Instance {
                subnet: subnet.into(),
                private_ip: "10.0.0.10".into(),
                image: "ami-1".into(),
                instance_type: "t3.small".into(),
                security_groups: BTreeSet::new(),
                target_groups: BTreeSet::new(),
                config: "sha256:1".into(),
                settings: "sha256:2".into(),
                user_data: String::new(),
            }),
        }
    }

    fn observed(r: &Resource) -> Observed {
        Observed::made(r, format!("i-{}", r.id.to_string().len()))
    }

    #[test]
    fn instances_in_a_replaced_subnet_are_replaced_with_it() {
        let desired = [
            instance("instance/0", "subnet/public/0"),
            instance("instance/1", "subnet/public/1"),
        ];
        let live: Vec<Observed> = desired.iter().map(observed).collect();
        let mut actions = plan_resources(&desired, &live);
        assert!(actions.is_empty());
        let replaced = BTreeSet::from([LogicalId::from("subnet/public/1")]);
        follow_replaced_subnets(&mut actions, &desired, &live, &replaced);
        let got: Vec<(ActionKind, String, Option<&str>)> = actions
            .iter()
            .map(|a| (a.action, a.id.to_string(), a.forced_by.as_deref()))
            .collect();
        assert_eq!(
            got,
            [(
                ActionKind::Replace,
                "instance/1".to_owned(),
                Some("subnet/public/1 is replaced")
            )]
        );
        assert!(!actions[0].needs_consent(), "a replacement is a rollout");
    }
}
