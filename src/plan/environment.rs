//! One environment's plan from what is wanted and what AWS holds (pure): which layers
//! are planned (asked for, or forced by a network change the cluster must follow),
//! each layer's actions, and the notes that say what the actions alone do not.

use std::collections::BTreeSet;

use super::cluster::{DesiredMachines, Image};
use super::{
    Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Live, LogicalId, Observed, Summary,
};
use crate::config::{Environment, EtcdBootstrap, Layer, Zone};

/// What one environment's plan is made from. (No `Debug`: the config holds the SSH
/// key.)
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its region.
    pub region: &'a str,
    /// The environment as the head has it; `None` when its file was removed.
    pub environment: Option<&'a Environment>,
    /// The layers asked for: every layer for a plan made from a diff, so that it
    /// holds exactly what a plan of every layer holds.
    pub layers: &'a BTreeSet<Layer>,
    /// The layers whose part of the repository changed (the diff's, or those asked
    /// for): a planned layer outside them says what forces it.
    pub changed: &'a BTreeSet<Layer>,
    /// The environment's zone names, one per zone index.
    pub zones: &'a [Zone],
    /// What AWS holds of its network.
    pub network: &'a [Observed],
    /// What AWS holds of its machines (template, group, instances, volumes).
    pub machines: &'a [Observed],
    /// The image found for the cluster, when its layer is planned.
    pub image: Option<&'a Image>,
    /// The config the template is rendered with, for the unit-level diff (in memory
    /// only: it holds the SSH key).
    pub config: Option<&'a str>,
    /// The machines' desired resources; `None` when strata does not plan them.
    pub desired: Option<&'a DesiredMachines>,
}

/// Plans one environment: the layers asked for (every layer for a plan made from a
/// diff), a cluster that must follow what the network replaces saying why, the
/// group's move to a new template version, and the notes.
pub fn plan(inputs: &Inputs<'_>) -> EnvironmentPlan {
    let mut layers = Vec::new();
    let mut resources = Vec::new();
    let network_actions = match inputs.layers.contains(&Layer::Network) {
        true => {
            let desired = match inputs.environment {
                Some(env) => super::network::desired(env, inputs.zones),
                None => Vec::new(),
            };
            let actions = super::plan_resources(&desired, inputs.network);
            layers.push(layer(Layer::Network, None, actions.clone(), Vec::new()));
            resources = desired;
            actions
        }
        false => Vec::new(),
    };
    // The first network action the cluster must follow, when the cluster itself did
    // not change.
    let forcing = inputs
        .environment
        .and_then(|env| forcing_action(env, &network_actions))
        .filter(|_| !inputs.changed.contains(&Layer::Cluster));
    let forced = forcing.map(|a| {
        format!(
            "the network {} {}, which the cluster uses",
            a.action.third_person(),
            a.id
        )
    });
    let planned = |l: Layer| {
        let has_section = inputs.environment.is_none_or(|e| match l {
            Layer::Cluster => e.spec.cluster.is_some(),
            _ => e.spec.node.is_some(),
        });
        has_section && inputs.layers.contains(&l)
    };
    // Asked for the network alone, a plan leaves the machines be: say when the network
    // takes away what they use.
    if let (Some(a), Some(reason), false, Some(network)) = (
        forcing,
        &forced,
        planned(Layer::Cluster),
        layers.first_mut(),
    ) && a.action.is_destructive()
    {
        network.notes.push(format!(
            "{reason}: this plan leaves the cluster as it is; plan the cluster layer too, or AWS refuses to remove what its machines still use"
        ));
    }
    let machines = MachineLayers {
        inputs,
        cluster: planned(Layer::Cluster),
        node: planned(Layer::Node),
        replaced_subnets: super::cluster::replaced_subnets(&network_actions),
        leaving_subnets: super::cluster::leaving_subnets(&network_actions),
    };
    for l in [Layer::Cluster, Layer::Node] {
        if planned(l) {
            let forced_by = forced.clone().filter(|_| l == Layer::Cluster);
            layers.push(machines.layer(l, forced_by));
        }
    }
    super::rollout::follow_new_template_version(
        &mut layers,
        inputs.machines,
        inputs.desired.map(|d| d.cluster.as_slice()),
    );
    if let Some(desired) = inputs.desired {
        let planned = |r: &&super::Resource| layers.iter().any(|l| l.layer == r.kind.layer());
        resources.extend(desired.cluster.iter().filter(planned).cloned());
        resources.extend(desired.instances.iter().filter(planned).cloned());
    }
    EnvironmentPlan {
        account: None,
        data_volumes: data_volumes(&layers, inputs.machines),
        trust: Vec::new(),
        resources,
        name: inputs.name.to_owned(),
        region: inputs.region.to_owned(),
        removed: inputs.environment.is_none(),
        summary: layers.iter().map(|l| l.summary).sum(),
        layers,
    }
}

fn layer(
    layer: Layer,
    forced_by: Option<String>,
    actions: Vec<Action>,
    notes: Vec<String>,
) -> LayerPlan {
    LayerPlan {
        layer,
        forced_by,
        summary: Summary::of(&actions),
        actions,
        notes,
    }
}

/// The cluster and node layers of one environment's plan.
struct MachineLayers<'a> {
    inputs: &'a Inputs<'a>,
    /// The cluster layer is planned.
    cluster: bool,
    /// The node layer is planned.
    node: bool,
    /// The subnets the network replaces, which a fixed-size cluster's nodes must leave.
    replaced_subnets: BTreeSet<LogicalId>,
    /// The subnets the network replaces or deletes, which an auto-scaling group leaves
    /// before the network step.
    leaving_subnets: BTreeSet<LogicalId>,
}

impl MachineLayers<'_> {
    /// A fixed-size cluster's instances belong to the cluster layer; a node-only plan
    /// shows the replacements a node change makes.
    fn instance_layer(&self) -> Layer {
        match self.cluster {
            true => Layer::Cluster,
            false => Layer::Node,
        }
    }

    fn layer(&self, l: Layer, forced_by: Option<String>) -> LayerPlan {
        let inputs = self.inputs;
        let mut notes: Vec<String> = match l {
            Layer::Cluster => inputs
                .image
                .map(|i| self.image_note(i))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let actions = match inputs.desired {
            Some(desired) => self.actions(l, desired, &mut notes),
            None => Vec::new(),
        };
        if l == self.instance_layer()
            && let Some(env) = inputs.environment
        {
            notes.extend(instance_notes(env, &actions, inputs.machines));
        }
        layer(l, forced_by, actions, notes)
    }

    /// What the plan says of the image: the one found, or the one kept running.
    fn image_note(&self, image: &Image) -> String {
        let release = image
            .release
            .as_ref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        let kept = self
            .inputs
            .environment
            .and_then(|env| super::cluster::kept_image(env, self.inputs.machines, image));
        match kept {
            Some(running) => format!(
                "image: {running} kept; {} ({}{release}) is published (set os.follow: true to move to it)",
                image.id, image.source
            ),
            None => format!(
                "image: {} ({}{release}, {})",
                image.id, image.source, image.name
            ),
        }
    }

    fn actions(&self, l: Layer, desired: &DesiredMachines, notes: &mut Vec<String>) -> Vec<Action> {
        let instance_layer = self.instance_layer();
        let mut wanted = match l {
            Layer::Cluster => desired.cluster.clone(),
            _ => desired.node.clone(),
        };
        let live: Vec<Observed> = self
            .inputs
            .machines
            .iter()
            .filter(|o| match o.kind {
                Kind::Instance => l == instance_layer,
                kind => kind.layer() == l,
            })
            .cloned()
            .collect();
        if l == instance_layer {
            wanted.extend(desired.instances.iter().map(|r| {
                let observed = live.iter().find(|o| o.id == r.id);
                super::cluster::within_layers(r, observed, self.cluster, self.node)
            }));
        }
        let mut actions = super::plan_resources(&wanted, &live);
        notes.extend(super::cluster::keep_volumes_from_shrinking(&mut actions));
        if l == instance_layer {
            super::cluster::follow_replaced_subnets(
                &mut actions,
                &wanted,
                &live,
                &self.replaced_subnets,
            );
        }
        if l == Layer::Cluster {
            notes.extend(super::cluster::follow_group_off_subnets(
                &mut actions,
                &wanted,
                &live,
                &self.leaving_subnets,
                &self.replaced_subnets,
            ));
        }
        // A node change shows what changes on the machines, unit by unit.
        if let Some(new) = self.inputs.config {
            for a in actions
                .iter_mut()
                .filter(|a| a.kind == Kind::NodeConfig && a.action == ActionKind::Update)
            {
                if let Some(Live::NodeConfig { config: old }) = a.observed.as_ref().map(|o| &o.live)
                {
                    a.detail = super::node_diff::diff(old, new);
                }
            }
        }
        actions
    }
}

/// What a fixed-size cluster's plan should say about its instances: how replacements
/// roll, and that a running etcd member list is not changed by launching machines.
fn instance_notes(env: &Environment, actions: &[Action], observed: &[Observed]) -> Vec<String> {
    let Some(cluster) = env.spec.cluster.as_ref() else {
        return Vec::new();
    };
    let count = |kind: ActionKind| {
        actions
            .iter()
            .filter(|a| a.kind == Kind::Instance && a.action == kind)
            .count()
    };
    let mut notes = Vec::new();
    if count(ActionKind::Replace) > 0 {
        let warmup = match cluster.rollout.warmup_seconds {
            0 => "no warm-up".to_owned(),
            s => format!("{s}s warm-up"),
        };
        notes.push(format!(
            "instances are replaced one at a time, lowest index first: each new one keeps its address and must be running (and healthy in its target groups) before the next goes, {warmup} between"
        ));
    }
    let running = observed.iter().filter(|o| o.kind == Kind::Instance).count();
    let static_etcd =
        env.spec.node.as_ref().and_then(|n| n.etcd_bootstrap()) == Some(EtcdBootstrap::Static);
    for o in observed.iter().filter(|o| o.kind == Kind::Instance) {
        if let Live::Instance {
            state: state @ (super::InstanceState::Stopped | super::InstanceState::Stopping),
        } = o.live
        {
            notes.push(format!(
                "{} ({}) is {}: strata leaves it so; start it, or terminate it and apply to replace it",
                o.id,
                o.aws_id,
                state.as_str()
            ));
        }
    }
    let (added, removed) = (count(ActionKind::Create), count(ActionKind::Delete));
    if running > removed && (added > 0 || removed > 0) {
        let members = if static_etcd {
            "; register joining etcd members with `etcdctl member add` (and remove leaving ones) before applying"
        } else {
            ""
        };
        notes.push(format!(
            "running nodes keep their config: the member list (STRATA_CLUSTER_SIZE{}) is read at first boot only{members}",
            if static_etcd { ", ETCD_INITIAL_CLUSTER" } else { "" }
        ));
    }
    notes
}

/// The data volumes the plan's actions delete or leave behind: a fixed-size cluster
/// node's volume deleted (a teardown, a shrink) or replaced; a group's instances'
/// volumes, kept when an instance goes (`DeleteOnTermination` off), left behind by a
/// group deleted or refreshed.
fn data_volumes(layers: &[LayerPlan], observed: &[Observed]) -> Vec<super::DataVolumes> {
    use super::spec::{DataDisk, LaunchTemplate, Volume};
    use super::{DataVolumes, Spec, VolumeFate};
    let group_disk = observed.iter().find_map(|o| match &o.spec {
        Spec::LaunchTemplate(LaunchTemplate {
            data_volume: Some(DataDisk { disk, .. }),
            ..
        }) => Some(disk.to_string()),
        _ => None,
    });
    let mut out = Vec::new();
    for a in layers.iter().flat_map(|l| &l.actions) {
        match (a.kind, a.action, a.observed.as_ref().map(|o| &o.spec)) {
            (Kind::Volume, ActionKind::Delete | ActionKind::Replace, Some(Spec::Volume(v))) => {
                let Volume {
                    size_gb,
                    volume_type,
                    ..
                } = v;
                out.push(DataVolumes {
                    id: a.id.clone(),
                    aws_id: a.aws_id.clone(),
                    count: 1,
                    disk: format!("{size_gb} GiB {volume_type}"),
                    fate: VolumeFate::Deleted,
                    because: match a.action {
                        ActionKind::Replace => format!(
                            "it is replaced ({}): the new one starts empty",
                            a.forced_by.as_deref().unwrap_or("a field of its own")
                        ),
                        _ => "its node goes".to_owned(),
                    },
                });
            }
            (Kind::AutoScalingGroup, ActionKind::Delete, Some(Spec::AutoScalingGroup(g))) => {
                if let Some(disk) = &group_disk {
                    out.push(DataVolumes {
                        id: a.id.clone(),
                        aws_id: None,
                        count: usize::from(g.desired),
                        disk: disk.clone(),
                        fate: VolumeFate::LeftBehind,
                        because: "the group's instances are terminated".to_owned(),
                    });
                }
            }
            (Kind::AutoScalingGroup, ActionKind::Update, _) if a.rollout() > 0 => {
                if let Some(disk) = &group_disk {
                    out.push(DataVolumes {
                        id: a.id.clone(),
                        aws_id: None,
                        count: a.rollout(),
                        disk: disk.clone(),
                        fate: VolumeFate::LeftBehind,
                        because: "the instance refresh replaces the machines, and each new one starts with an empty volume".to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// A network change the cluster must follow: its subnets, groups or target groups.
fn forcing_action<'a>(env: &Environment, actions: &'a [Action]) -> Option<&'a Action> {
    let cluster = env.spec.cluster.as_ref()?;
    let groups = super::cluster::security_groups(cluster);
    actions
        .iter()
        .filter(|a| a.action != ActionKind::Update || a.kind != Kind::SecurityGroup)
        .find(|a| {
            matches!(a.id, LogicalId::Subnet(kind, _) if kind == cluster.subnets)
                || groups.contains(&a.id)
                || super::cluster::joins_target_group(cluster, &a.id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::cluster::{self, DesiredMachines, Machine};

    const FIXED: &str = "region: eu-west-1\nnetwork: { cidr: 10.8.0.0/16, zones: 2, private_subnets: 2, public_subnets: 0, nat: none }\n\
        cluster:\n  mode: fixed\n  size: 2\n  instance_type: t3.small\n  os: { name: flatcar, channel: stable }\n";

    fn env(text: &str) -> Environment {
        crate::config::load("environments/web.yaml", text, &BTreeSet::new()).unwrap()
    }

    fn zones() -> Vec<Zone> {
        ["eu-west-1a", "eu-west-1b"]
            .map(|z| Zone::try_from(z.to_owned()).unwrap())
            .to_vec()
    }

    /// What AWS would hold had `resources` been made, with made-up AWS ids.
    fn held(resources: &[crate::plan::Resource]) -> Vec<Observed> {
        Observed::all_made(resources)
    }

    fn machines(env: &Environment) -> DesiredMachines {
        let image = cluster::Image {
            id: "ami-1".into(),
            name: "flatcar".into(),
            release: None,
            source: "flatcar stable".into(),
        };
        let nodes = vec![Default::default(); 2];
        let m = Machine {
            image,
            config: None,
            user_data: String::new(),
            nodes,
        };
        cluster::desired_machines(env, &m, &[], &zones())
    }

    #[test]
    fn a_replaced_subnet_forces_the_cluster_layer_with_its_real_actions() {
        let e = env(FIXED);
        let mut network = held(&crate::plan::network::desired(&e, &zones()));
        for o in &mut network {
            if let crate::plan::Spec::Subnet(s) = &mut o.spec
                && o.id == LogicalId::Subnet(crate::config::SubnetKind::Private, 0)
            {
                s.zone = Zone::try_from("eu-west-1c".to_owned()).unwrap();
            }
        }
        let desired = machines(&e);
        let mut live = held(&desired.cluster);
        live.extend(held(&desired.instances));
        let zones = zones();
        let changed = BTreeSet::from([Layer::Network]);
        let planned = |layers: &BTreeSet<Layer>| {
            plan(&Inputs {
                name: "web",
                region: "eu-west-1",
                environment: Some(&e),
                layers,
                changed: &changed,
                zones: &zones,
                network: &network,
                machines: &live,
                image: None,
                config: None,
                desired: Some(&desired),
            })
        };
        // Every layer of a network change: the cluster follows, with the instance in the
        // replaced subnet, saying why.
        let whole = planned(&Layer::ALL.into());
        let got: Vec<(Layer, Option<&str>, Vec<String>)> = whole
            .layers
            .iter()
            .filter(|l| !l.actions.is_empty())
            .map(|l| {
                let actions = l.actions.iter().map(|a| format!("{} {}", a.action, a.id));
                (l.layer, l.forced_by.as_deref(), actions.collect())
            })
            .collect();
        let reason = "the network replaces subnet/private/0, which the cluster uses";
        assert_eq!(
            got,
            [
                (
                    Layer::Network,
                    None,
                    vec![
                        "replace subnet/private/0".to_owned(),
                        "update rtb/private/0".to_owned()
                    ]
                ),
                (
                    Layer::Cluster,
                    Some(reason),
                    vec!["replace instance/0".to_owned()]
                )
            ]
        );
        // Asked for the network alone: the cluster is left be, and the plan says so.
        let alone = planned(&BTreeSet::from([Layer::Network]));
        assert_eq!(alone.layers.len(), 1);
        assert!(
            alone.layers[0].notes[0].starts_with(&format!("{reason}: this plan leaves")),
            "{:?}",
            alone.layers[0].notes
        );
    }

    #[test]
    fn a_stopped_node_is_noted_and_left_so() {
        let e = env(FIXED);
        let desired = machines(&e);
        let mut live = held(&desired.instances);
        live[0].live = Live::Instance {
            state: crate::plan::InstanceState::Stopped,
        };
        let notes = instance_notes(&e, &[], &live);
        assert_eq!(
            notes,
            [
                "instance/0 (aws-0) is stopped: strata leaves it so; start it, or terminate it and apply to replace it"
            ]
        );
    }
}
