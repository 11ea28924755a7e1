//! Planning: reads the live state of every target (one round of reads per resource
//! type for all environments of a region) and computes each layer's actions.

use std::collections::BTreeMap;

use super::machines::{
    Machine, desired_machines, discovery_note, kept_image, machine, manages_machines,
    read_discovery_tokens, read_keys, resolve_images,
};
use super::{DesiredMachines, EngineError, Observations, PendingDiscovery, Target};
use crate::aws::Connector;
use crate::aws::images::Image;
use crate::aws::network::{self as aws_network, NetworkState};
use crate::config::{Environment, Layer, Zone, Zones};
use crate::plan::spec::AutoScalingGroup;
use crate::plan::{
    self, Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Observed, Plan, Summary,
};
use crate::units::UnitSet;

/// Reads the live state of every target and plans it.
pub async fn plan(
    connector: &Connector,
    targets: &[Target],
    units: &UnitSet,
    commit: Option<&str>,
) -> Result<(Plan, Observations), EngineError> {
    let mut by_region: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_region.entry(t.region.as_str()).or_default().push(t);
    }
    let mut observations = Observations::default();
    let mut environments = Vec::new();
    for (region, targets) in by_region {
        let aws = connector.connect(region);
        // The network is read for every target: later layers refer to its resources.
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let counted = targets.iter().any(|t| {
            t.environment
                .as_ref()
                .is_some_and(|e| matches!(e.spec.network.zones, Zones::Count(_)))
        });
        let network = async {
            match (names.is_empty(), counted) {
                (true, _) => Ok((NetworkState::new(), Vec::new())),
                (false, true) => {
                    tokio::try_join!(aws_network::observe(&aws, &names), aws_network::zones(&aws))
                }
                (false, false) => Ok((aws_network::observe(&aws, &names).await?, Vec::new())),
            }
        };
        // The image and the keys do not depend on the network: read them alongside it.
        let (network, images, keys, tokens) = tokio::join!(
            network,
            resolve_images(&aws, &targets),
            read_keys(&aws, &targets),
            read_discovery_tokens(&aws, &targets)
        );
        let ((state, zones), images, keys, tokens): ((NetworkState, Vec<Zone>), _, _, _) =
            (network?, images?, keys?, tokens?);
        let mut machines = BTreeMap::new();
        for t in targets.iter().filter(|t| manages_machines(t)) {
            let (Some(env), Some(image)) = (&t.environment, images.get(&t.name)) else {
                continue;
            };
            let key = env
                .spec
                .node
                .as_ref()
                .and_then(|n| keys.get(n.ssh.public_key_secret.as_str()));
            let token = tokens.get(&t.name).and_then(Option::as_ref);
            machines.insert(
                t.name.clone(),
                machine(
                    env,
                    units,
                    image.clone(),
                    key,
                    token.map(|t| t.url.as_str()),
                )?,
            );
            // Without a token yet, apply fetches one and renders again before launching.
            if let Some(None) = tokens.get(&t.name) {
                observations.pending_discovery.insert(
                    t.name.clone(),
                    PendingDiscovery {
                        environment: env.clone(),
                        units: units.clone(),
                        image: image.clone(),
                        key: key.cloned(),
                    },
                );
            }
        }
        let clustered: Vec<String> = targets
            .iter()
            .filter(|t| manages_machines(t) || t.environment.is_none())
            .map(|t| t.name.clone())
            .collect();
        let cluster_state = if clustered.is_empty() {
            BTreeMap::new()
        } else {
            let logical: BTreeMap<String, plan::LogicalId> = state
                .values()
                .flatten()
                .map(|o| (o.aws_id.clone(), o.id.clone()))
                .collect();
            let map = |aws_id: &str| {
                logical
                    .get(aws_id)
                    .cloned()
                    .unwrap_or_else(|| plan::LogicalId::parse(aws_id))
            };
            // Which instances are registered is read from the target groups of the
            // fixed-size clusters that join load balancers.
            let registrations: Vec<String> = targets
                .iter()
                .filter_map(|t| t.environment.as_ref())
                .filter_map(|e| Some((e.name.as_str(), e.machines()?)))
                .filter(|(_, (_, shape))| shape.size.fixed().is_some())
                .flat_map(|(name, (c, _))| {
                    state
                        .get(name)
                        .into_iter()
                        .flatten()
                        .filter(|o| {
                            o.kind == Kind::TargetGroup
                                && plan::cluster::joins_target_group(c, &o.id)
                        })
                        .map(|o| o.aws_id.clone())
                })
                .collect();
            crate::aws::cluster::observe(&aws, &clustered, &map, &registrations).await?
        };
        for t in targets {
            let observed = state.get(&t.name).cloned().unwrap_or_default();
            let machine_observed = cluster_state.get(&t.name).cloned().unwrap_or_default();
            // Removed environments desire nothing.
            let desired = match (&t.environment, machines.get(&t.name)) {
                (Some(env), Some(m)) => Some(desired_machines(
                    env,
                    m,
                    &machine_observed,
                    &zone_names(env, &zones)?,
                )),
                (None, _) => Some(DesiredMachines {
                    cluster: Vec::new(),
                    node: Vec::new(),
                    instances: Vec::new(),
                }),
                _ => None,
            };
            let mut planned = plan_target(
                t,
                &observed,
                &machine_observed,
                &zones,
                images.get(&t.name),
                machines.get(&t.name),
                desired.as_ref(),
            )?;
            if let (Some(env), Some(token)) = (&t.environment, tokens.get(&t.name))
                && let Some(layer) = planned
                    .layers
                    .iter_mut()
                    .rev()
                    .find(|l| l.layer != Layer::Network)
            {
                layer.notes.extend(discovery_note(env, token.as_ref()));
            }
            // A node change re-versions the template the plan wants.
            if let Some(template) = desired
                .iter()
                .flat_map(|d| &d.cluster)
                .find(|r| r.kind == Kind::LaunchTemplate)
            {
                observations
                    .launch_templates
                    .insert(t.name.clone(), template.clone());
            }
            environments.push(planned);
            observations.network.insert(t.name.clone(), observed);
            observations
                .cluster
                .insert(t.name.clone(), machine_observed);
        }
    }
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((
        Plan::new(commit.map(str::to_owned), environments),
        observations,
    ))
}

/// The names of the zones an environment spreads over: named in its file, or the
/// first `n` of the region's.
fn zone_names(env: &Environment, region_zones: &[Zone]) -> Result<Vec<Zone>, EngineError> {
    match &env.spec.network.zones {
        Zones::Names(names) => Ok(names.clone()),
        Zones::Count(n) => {
            let wanted = usize::from(*n);
            region_zones
                .get(..wanted)
                .map(<[Zone]>::to_vec)
                .ok_or_else(|| EngineError::NotEnoughZones {
                    env: env.name.to_string(),
                    wanted,
                    available: region_zones.len(),
                    region: env.spec.region.to_string(),
                })
        }
    }
}

fn plan_target(
    t: &Target,
    observed: &[Observed],
    machine_observed: &[Observed],
    zones: &[Zone],
    image: Option<&Image>,
    machine: Option<&Machine>,
    desired_machines: Option<&DesiredMachines>,
) -> Result<EnvironmentPlan, EngineError> {
    let mut layers = Vec::new();
    let mut network_actions: Vec<Action> = Vec::new();
    if t.layers.contains(&Layer::Network) {
        let desired = match &t.environment {
            Some(env) => plan::network::desired(env, &zone_names(env, zones)?),
            None => Vec::new(),
        };
        network_actions = plan::plan_resources(&desired, observed);
        layers.push(LayerPlan {
            layer: Layer::Network,
            forced_by: None,
            summary: Summary::of(&network_actions),
            actions: network_actions.clone(),
            notes: Vec::new(),
        });
    }
    let forced = t
        .environment
        .as_ref()
        .and_then(|env| forced_cluster_reason(env, &network_actions));
    let replaced_subnets = plan::cluster::replaced_subnets(&network_actions);
    let forced_by_of = |layer: Layer| {
        if layer == Layer::Cluster && !t.layers.contains(&layer) && t.follow_forced {
            forced.clone()
        } else {
            None
        }
    };
    let planned = |layer: Layer| {
        let has_section = t.environment.as_ref().is_none_or(|e| match layer {
            Layer::Cluster => e.spec.cluster.is_some(),
            _ => e.spec.node.is_some(),
        });
        has_section && (t.layers.contains(&layer) || forced_by_of(layer).is_some())
    };
    let (cluster_planned, node_planned) = (planned(Layer::Cluster), planned(Layer::Node));
    // A fixed-size cluster's instances belong to the cluster layer; a node-only plan
    // shows the replacements a node change makes.
    let instance_layer = if cluster_planned {
        Layer::Cluster
    } else {
        Layer::Node
    };
    for layer in [Layer::Cluster, Layer::Node] {
        if !planned(layer) {
            continue;
        }
        let forced_by = forced_by_of(layer);
        let mut notes = Vec::new();
        if let (Layer::Cluster, Some(image)) = (layer, image) {
            let release = image
                .release
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let kept = t
                .environment
                .as_ref()
                .and_then(|env| kept_image(env, machine_observed, image));
            match kept {
                Some(running) => notes.push(format!(
                    "image: {running} kept; {} ({}{release}) is published (set os.follow: true to move to it)",
                    image.id, image.source
                )),
                None => notes.push(format!("image: {} ({}{release}, {})", image.id, image.source, image.name)),
            }
        }
        let actions = match desired_machines {
            Some(machines) => {
                let mut desired = if layer == Layer::Cluster {
                    machines.cluster.clone()
                } else {
                    machines.node.clone()
                };
                let live: Vec<Observed> = machine_observed
                    .iter()
                    .filter(|o| match o.kind {
                        Kind::Instance => layer == instance_layer,
                        kind => kind.layer() == layer,
                    })
                    .cloned()
                    .collect();
                if layer == instance_layer {
                    desired.extend(machines.instances.iter().map(|r| {
                        let observed = live.iter().find(|o| o.id == r.id);
                        plan::cluster::within_layers(r, observed, cluster_planned, node_planned)
                    }));
                }
                let mut actions = plan::plan_resources(&desired, &live);
                notes.extend(plan::cluster::keep_volumes_from_shrinking(&mut actions));
                if layer == instance_layer {
                    plan::cluster::follow_replaced_subnets(
                        &mut actions,
                        &desired,
                        &live,
                        &replaced_subnets,
                    );
                }
                // A node change shows what changes on the machines, unit by unit.
                if let Some(new) = machine.and_then(|m| m.config.as_deref()) {
                    for a in actions
                        .iter_mut()
                        .filter(|a| a.kind == Kind::NodeConfig && a.action == ActionKind::Update)
                    {
                        if let Some(plan::Live::NodeConfig { config: old }) =
                            a.observed.as_ref().map(|o| &o.live)
                        {
                            a.detail = plan::node_diff::diff(old, new);
                        }
                    }
                }
                actions
            }
            None => Vec::new(),
        };
        if layer == instance_layer
            && let Some(env) = &t.environment
        {
            notes.extend(instance_notes(env, &actions, machine_observed));
        }
        layers.push(LayerPlan {
            layer,
            forced_by,
            summary: Summary::of(&actions),
            actions,
            notes,
        });
    }
    follow_new_template_version(
        &mut layers,
        machine_observed,
        desired_machines.map(|d| d.cluster.as_slice()),
    );
    let summary = layers.iter().map(|l| l.summary).sum();
    Ok(EnvironmentPlan {
        name: t.name.clone(),
        region: t.region.clone(),
        removed: t.environment.is_none(),
        summary,
        layers,
    })
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
    let static_etcd = env.spec.node.as_ref().and_then(|n| n.etcd_bootstrap())
        == Some(crate::config::EtcdBootstrap::Static);
    for o in observed.iter().filter(|o| o.kind == Kind::Instance) {
        if let plan::Live::Instance {
            state: state @ (plan::InstanceState::Stopped | plan::InstanceState::Stopping),
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

/// A changed launch template (cluster) or node config (node) makes a new template
/// version; the auto-scaling group must move to it. When the group has no change of
/// its own, the layer that made the version gets an update of the group, saying so.
fn follow_new_template_version(
    layers: &mut [LayerPlan],
    observed: &[Observed],
    desired_cluster: Option<&[plan::Resource]>,
) {
    let Some(group) = observed.iter().find(|o| o.kind == Kind::AutoScalingGroup) else {
        return;
    };
    let Some(desired) =
        desired_cluster.and_then(|d| d.iter().find(|r| r.kind == Kind::AutoScalingGroup))
    else {
        return;
    };
    let touched = |l: &LayerPlan| {
        l.actions.iter().any(|a| {
            matches!(a.kind, Kind::LaunchTemplate | Kind::NodeConfig)
                && a.action == ActionKind::Update
        })
    };
    if !layers.iter().any(touched) {
        return;
    }
    let rollout = match &desired.spec {
        plan::Spec::AutoScalingGroup(AutoScalingGroup {
            min_healthy_percent,
            warmup_seconds,
            ..
        }) => plan::FieldChange {
            field: "rollout".into(),
            from: None,
            to: Some(format!(
                "instance refresh, {min_healthy_percent}% kept in service, {warmup_seconds}s warm-up"
            )),
        },
        _ => return,
    };
    if let Some(existing) = layers
        .iter_mut()
        .flat_map(|l| l.actions.iter_mut())
        .find(|a| a.kind == Kind::AutoScalingGroup)
    {
        existing.changes.push(rollout);
        return;
    }
    let Some(layer) = layers.iter_mut().find(|l| touched(l)) else {
        return;
    };
    let version = match &group.live {
        plan::Live::AutoScalingGroup { template_version } => template_version.clone(),
        _ => "$Default".to_owned(),
    };
    layer.actions.push(Action {
        detail: Vec::new(),
        action: ActionKind::Update,
        kind: Kind::AutoScalingGroup,
        id: group.id.clone(),
        aws_id: Some(group.aws_id.clone()),
        changes: vec![
            plan::FieldChange {
                field: "launch_template_version".into(),
                from: Some(version),
                to: Some("the new version".into()),
            },
            rollout,
        ],
        forced_by: None,
        desired: Some(desired.clone()),
        observed: Some(group.clone()),
    });
    layer.summary = Summary::of(&layer.actions);
}

/// A network change the cluster must follow: its subnets, groups or target groups.
fn forced_cluster_reason(env: &Environment, actions: &[Action]) -> Option<String> {
    let cluster = env.spec.cluster.as_ref()?;
    let groups = plan::cluster::security_groups(cluster);
    actions
        .iter()
        .filter(|a| a.action != ActionKind::Update || a.kind != Kind::SecurityGroup)
        .find(|a| {
            matches!(a.id, plan::LogicalId::Subnet(kind, _) if kind == cluster.subnets)
                || groups.contains(&a.id)
                || plan::cluster::joins_target_group(cluster, &a.id)
        })
        .map(|a| {
            format!(
                "the network layer will {} {} {}, which the cluster uses",
                a.action,
                a.kind.describe(),
                a.id
            )
        })
}
