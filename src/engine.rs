//! Plan and apply: picks the environments and layers to work on, reads their live
//! state through the AWS adapter, plans with the pure core and executes the plan.

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::images::{self, Image};
use crate::aws::network::{self as aws_network, Executor, NetworkState};
use crate::aws::{AwsError, Connector};
use crate::changes::{ChangeKind, ChangeSet};
use crate::config::{ClusterMode, Environment, Layer, SubnetKind, Zones};
use crate::plan::cluster::NodeLaunch;
use crate::plan::{
    self, Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Observed, Plan, Summary,
};
use crate::units::UnitSet;

/// One environment to plan.
#[derive(Debug, Clone)]
pub struct Target {
    /// Environment name.
    pub name: String,
    /// Its parsed file; `None` when the file was removed (a teardown).
    pub environment: Option<Environment>,
    /// Region to look in.
    pub region: String,
    /// Tags from the file (for a removed file, from its last version).
    pub tags: BTreeMap<String, String>,
    /// Layers to plan.
    pub layers: BTreeSet<Layer>,
    /// Also plan a later layer that a change in an earlier one forces (change-driven
    /// runs); explicit `--layer` selections plan exactly what was asked.
    pub follow_forced: bool,
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The OS image could not be found or verified.
    #[error("environment `{env}`: {source}")]
    Image {
        /// Environment.
        env: String,
        /// What went wrong.
        source: Box<crate::aws::images::ImageError>,
    },
    /// The region has fewer zones than an environment asks for.
    #[error("environment `{env}` asks for {wanted} zones but {region} has {available}")]
    NotEnoughZones {
        /// Environment.
        env: String,
        /// Zones asked for.
        wanted: usize,
        /// Zones in the region.
        available: usize,
        /// Region.
        region: String,
    },
    /// The node config could not be rendered.
    #[error("environment `{env}`: {message}")]
    Render {
        /// Environment.
        env: String,
        /// What went wrong.
        message: String,
    },
    /// The etcd discovery service did not give a token.
    #[error("environment `{env}`: {message}")]
    Discovery {
        /// Environment.
        env: String,
        /// What went wrong, with a hint.
        message: String,
    },
    /// Apply stopped at a failure; what was done stays done (and tagged).
    #[error(
        "{cause}\n  applied before the failure: {done} change{}\n  not applied:\n{}\n  hint: fix the cause and run apply again; it continues from what exists",
        if *.done == 1 { "" } else { "s" },
        .not_done.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    )]
    Stopped {
        /// The failure.
        cause: Box<EngineError>,
        /// Actions completed before it.
        done: usize,
        /// Actions of the plan not (or not completely) applied.
        not_done: Vec<String>,
    },
    /// The plan destroys something and consent was not given. Nothing was changed.
    #[error(
        "the plan deletes or replaces {} resource{}; nothing was changed:\n{}\n  hint: review the plan, then run `strata apply --allow-destroy` to consent",
        .0.len(),
        if .0.len() == 1 { "" } else { "s" },
        .0.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )]
    NeedsConsent(Vec<String>),
}

/// Targets from explicit `--env`/`--layer` selections: every named environment (all
/// of them when none is named) with the chosen layers (all when none is chosen).
pub fn select(
    environments: &BTreeMap<String, Environment>,
    names: &[String],
    layers: &[Layer],
) -> Result<Vec<Target>, String> {
    let layers: BTreeSet<Layer> = if layers.is_empty() {
        Layer::ALL.into_iter().collect()
    } else {
        layers.iter().copied().collect()
    };
    let names: Vec<String> = if names.is_empty() {
        environments.keys().cloned().collect()
    } else {
        names.to_vec()
    };
    names
        .into_iter()
        .map(|name| {
            let env = environments.get(&name).ok_or_else(|| {
                format!(
                    "no environment `{name}` in environments/ (found: {})",
                    environments.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            Ok(Target {
                name,
                region: env.spec.region.to_string(),
                tags: env
                    .spec
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                environment: Some(env.clone()),
                layers: layers.clone(),
                follow_forced: false,
            })
        })
        .collect()
}

/// Targets from a change set: changed layers of changed environments, removed
/// environments as teardowns (their region and tags from the base commit's file).
pub fn from_changes(
    set: &ChangeSet,
    head: &BTreeMap<String, Environment>,
    base: &BTreeMap<String, Environment>,
    layers: &[Layer],
) -> Vec<Target> {
    let only: Option<BTreeSet<Layer>> =
        (!layers.is_empty()).then(|| layers.iter().copied().collect());
    set.environments
        .iter()
        .filter_map(|change| {
            let mut chosen: BTreeSet<Layer> = change.layers.iter().copied().collect();
            if let Some(only) = &only {
                chosen.retain(|l| only.contains(l));
            }
            if chosen.is_empty() {
                return None;
            }
            let environment = if change.change == ChangeKind::Removed {
                None
            } else {
                head.get(&change.name).cloned()
            };
            let source = environment.as_ref().or_else(|| base.get(&change.name))?;
            Some(Target {
                name: change.name.clone(),
                region: source.spec.region.to_string(),
                tags: source
                    .spec
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                environment,
                layers: chosen,
                follow_forced: only.is_none(),
            })
        })
        .collect()
}

/// What planning saw, kept for apply.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    network: BTreeMap<String, Vec<Observed>>,
    cluster: BTreeMap<String, Vec<Observed>>,
    /// The desired launch template per environment (a node change re-versions it).
    launch_templates: BTreeMap<String, plan::Resource>,
    /// Environments using etcd discovery that have no token yet.
    pending_discovery: BTreeMap<String, PendingDiscovery>,
}

/// What apply needs to render an environment's configs again once it has fetched its
/// etcd discovery token (in memory only, like the key it holds).
#[derive(Debug, Clone)]
struct PendingDiscovery {
    environment: Environment,
    units: UnitSet,
    image: Image,
    key: Option<crate::aws::secrets::SshPublicKey>,
}

/// What the cluster and node layers of one environment are made from: the image, and
/// the rendered config (only in memory; it holds the SSH key).
struct Machine {
    image: Image,
    /// The full config JSON in the template (what the node layer compares): the
    /// group's shared config, or node 0's for a fixed-size cluster.
    config: Option<String>,
    /// Base64 of the template's user data (the config, or its gzip wrapper).
    user_data: String,
    /// A fixed-size cluster's nodes, by index.
    nodes: Vec<NodeLaunch>,
}

/// An environment's desired cluster and node layers.
struct DesiredMachines {
    /// The template and, for an auto-scaling cluster, the group.
    cluster: Vec<plan::Resource>,
    /// The template's node config.
    node: Vec<plan::Resource>,
    /// A fixed-size cluster's instances.
    instances: Vec<plan::Resource>,
}

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
        let ((state, zones), images, keys, tokens): ((NetworkState, Vec<String>), _, _, _) =
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
            let logical: BTreeMap<String, String> = state
                .values()
                .flatten()
                .map(|o| (o.aws_id.clone(), o.id.clone()))
                .collect();
            let map = |aws_id: &str| {
                logical
                    .get(aws_id)
                    .cloned()
                    .unwrap_or_else(|| aws_id.to_owned())
            };
            // Which instances are registered is read from the target groups of the
            // fixed-size clusters that join load balancers.
            let registrations: Vec<String> = targets
                .iter()
                .filter_map(|t| t.environment.as_ref())
                .filter_map(|e| Some((e.name.as_str(), e.spec.cluster.as_ref()?)))
                .filter(|(_, c)| c.mode == ClusterMode::Fixed)
                .flat_map(|(name, c)| {
                    let observed = state.get(name).map(Vec::as_slice).unwrap_or_default();
                    c.load_balancers.iter().flat_map(move |lb| {
                        let prefix = format!("tg/{lb}/");
                        observed
                            .iter()
                            .filter(move |o| {
                                o.kind == Kind::TargetGroup && o.id.starts_with(&prefix)
                            })
                            .map(|o| o.aws_id.clone())
                    })
                })
                .collect();
            crate::aws::cluster::observe(&aws, &clustered, &map, &registrations).await?
        };
        for t in targets {
            let observed = state.get(&t.name).cloned().unwrap_or_default();
            let machine_observed = cluster_state.get(&t.name).cloned().unwrap_or_default();
            // Removed environments desire nothing.
            let desired = match (&t.environment, machines.get(&t.name)) {
                (Some(env), Some(m)) => Some(desired_machines(env, m, &machine_observed)),
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
    let mut summary = Summary::default();
    for e in &environments {
        summary.add(e.summary);
    }
    Ok((
        Plan {
            version: 1,
            commit: commit.map(str::to_owned),
            summary,
            environments,
        },
        observations,
    ))
}

/// True when strata manages this target's machines (cluster or node layer selected,
/// and a cluster section).
fn manages_machines(t: &Target) -> bool {
    (t.layers.contains(&Layer::Cluster) || t.layers.contains(&Layer::Node))
        && t.environment
            .as_ref()
            .is_some_and(|e| e.spec.cluster.is_some())
}

/// The SSH keys of the targets whose machines strata manages; each secret is read once
/// per run, however many environments share it.
async fn read_keys(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> Result<BTreeMap<String, crate::aws::secrets::SshPublicKey>, EngineError> {
    let mut keys = BTreeMap::new();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        let Some(node) = t.environment.as_ref().and_then(|e| e.spec.node.as_ref()) else {
            continue;
        };
        if !keys.contains_key(node.ssh.public_key_secret.as_str()) {
            let key = crate::aws::secrets::ssh_public_key(aws, &node.ssh.public_key_secret).await?;
            keys.insert(node.ssh.public_key_secret.to_string(), key);
        }
    }
    Ok(keys)
}

/// The etcd discovery tokens of the targets whose machines strata manages and that
/// bootstrap etcd through discovery: `None` for one that has none yet.
async fn read_discovery_tokens(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> Result<BTreeMap<String, Option<crate::aws::discovery::Token>>, EngineError> {
    let mut tokens = BTreeMap::new();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        if t.environment.as_ref().is_some_and(uses_discovery) {
            tokens.insert(
                t.name.clone(),
                crate::aws::discovery::read(aws, &t.name).await?,
            );
        }
    }
    Ok(tokens)
}

fn uses_discovery(env: &Environment) -> bool {
    env.spec
        .node
        .as_ref()
        .and_then(|n| n.etcd.as_ref())
        .is_some_and(|e| e.bootstrap == crate::config::EtcdBootstrap::Discovery)
}

/// The number of members etcd discovery waits for: a fixed cluster's size, or a
/// group's desired (else minimum) size.
fn member_count(env: &Environment) -> u16 {
    env.spec.cluster.as_ref().map_or(0, |c| match c.mode {
        ClusterMode::Fixed => c.size.unwrap_or(0),
        ClusterMode::Autoscaling => c.desired.or(c.min).unwrap_or(0),
    })
}

/// What the plan says about an environment's etcd discovery token: that apply will
/// fetch one, or that the cluster's size no longer matches the one it was made for.
fn discovery_note(
    env: &Environment,
    token: Option<&crate::aws::discovery::Token>,
) -> Option<String> {
    let etcd = env.spec.node.as_ref()?.etcd.as_ref()?;
    let size = member_count(env);
    let secret = crate::config::names::etcd_discovery_secret(env.name.as_str());
    match token {
        None => Some(format!(
            "etcd discovery: apply fetches a token for {size} members from {} and keeps it in Secrets Manager as {secret}; every later render and rollout reuses it",
            crate::aws::discovery::service_url(etcd, size)
        )),
        Some(crate::aws::discovery::Token {
            size: Some(made_for),
            ..
        }) if *made_for != size => Some(format!(
            "warning: etcd discovery: the token in {secret} was made for {made_for} members and the cluster now has {size}; strata does not fetch another (that would start a second cluster): add or remove members with `etcdctl member add` / `etcdctl member remove`"
        )),
        Some(_) => None,
    }
}

/// Fetches and stores the environment's first etcd discovery token, then renders its
/// configs again with it and puts them into the machine actions (and the template a
/// node change re-versions). Called once the network exists, right before launching.
async fn fetch_discovery_token(
    exec: &mut Executor<'_>,
    pending: &PendingDiscovery,
    actions: &mut [Action],
    template: &mut Option<plan::Resource>,
) -> Result<(), EngineError> {
    let env = &pending.environment;
    let name = env.name.to_string();
    let Some(etcd) = env.spec.node.as_ref().and_then(|n| n.etcd.as_ref()) else {
        return Ok(());
    };
    let size = member_count(env);
    let url = crate::aws::discovery::fetch(&crate::aws::discovery::service_url(etcd, size))
        .await
        .map_err(|message| EngineError::Discovery {
            env: name.clone(),
            message,
        })?;
    let token = crate::aws::discovery::Token {
        url,
        size: Some(size),
    };
    let tags = exec.tags_for("etcd-discovery", Layer::Node);
    crate::aws::discovery::store(exec.aws, &name, &token, tags).await?;
    exec.say(&format!(
        "{name}: + stored a new etcd discovery token for {size} members in {}",
        crate::config::names::etcd_discovery_secret(&name)
    ));
    let m = machine(
        env,
        &pending.units,
        pending.image.clone(),
        pending.key.as_ref(),
        Some(&token.url),
    )?;
    let with_token = |r: &mut plan::Resource| match &mut r.spec {
        plan::Spec::LaunchTemplate { user_data, .. } => user_data.clone_from(&m.user_data),
        plan::Spec::Instance {
            user_data, config, ..
        } => {
            let node =
                r.id.strip_prefix(plan::cluster::INSTANCE_PREFIX)
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| m.nodes.get(i));
            if let Some(node) = node {
                user_data.clone_from(&node.user_data);
                config.clone_from(&node.digest);
            }
        }
        _ => {}
    };
    for a in actions {
        if let Some(desired) = &mut a.desired {
            with_token(desired);
        }
    }
    if let Some(template) = template {
        with_token(template);
    }
    Ok(())
}

/// Renders the config the instances will boot with (in memory only: it holds the key):
/// one shared by a group's instances, or one per node of a fixed-size cluster.
fn machine(
    env: &Environment,
    units: &UnitSet,
    image: Image,
    key: Option<&crate::aws::secrets::SshPublicKey>,
    discovery: Option<&str>,
) -> Result<Machine, EngineError> {
    use base64::Engine as _;
    let encode = |json: String| base64::engine::general_purpose::STANDARD.encode(json);
    let failed = |e: crate::ignition::RenderError| EngineError::Render {
        env: env.name.to_string(),
        message: e.to_string(),
    };
    let size = env
        .spec
        .cluster
        .as_ref()
        .filter(|c| c.mode == ClusterMode::Fixed)
        .map_or(0, |c| c.size.unwrap_or(0));
    if env.spec.node.is_none() {
        // A cluster without a node section boots an empty config.
        let empty =
            serde_json::json!({"ignition": {"version": crate::ignition::SPEC_VERSION}}).to_string();
        let nodes = (0..size)
            .map(|_| NodeLaunch {
                user_data: encode(empty.clone()),
                digest: plan::cluster::digest(&empty),
            })
            .collect();
        return Ok(Machine {
            image,
            config: None,
            user_data: encode(empty),
            nodes,
        });
    }
    let request = |node: Option<u16>| crate::ignition::RenderRequest {
        environment: env,
        units,
        node,
        ssh_public_key: key.map(|k| k.openssh()),
        etcd_discovery: discovery,
    };
    let mut nodes = Vec::with_capacity(usize::from(size));
    for index in 0..size {
        let request = request(Some(index));
        let config = crate::ignition::build(&request)
            .map(|c| crate::ignition::to_json(&c))
            .map_err(failed)?;
        nodes.push(NodeLaunch {
            user_data: encode(crate::ignition::fit(config).map_err(failed)?.json),
            digest: plan::cluster::digest(
                &crate::ignition::comparable_json(&request).map_err(failed)?,
            ),
        });
    }
    // The template holds the group's config, or node 0's as the cluster's example.
    let config = crate::ignition::build(&request((size > 0).then_some(0)))
        .map(|c| crate::ignition::to_json(&c))
        .map_err(failed)?;
    let data = crate::ignition::fit(config.clone()).map_err(failed)?;
    Ok(Machine {
        image,
        config: Some(config),
        user_data: encode(data.json),
        nodes,
    })
}

/// The OS image of every target whose cluster layer is planned, looked up before any
/// write so a feed that is down or an image that is not the publisher's stops the run.
async fn resolve_images(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> Result<BTreeMap<String, Image>, EngineError> {
    let mut images = BTreeMap::new();
    // Environments that ask for the same image share one lookup.
    let mut looked_up: BTreeMap<String, Image> = BTreeMap::new();
    for t in targets
        .iter()
        .filter(|t| t.layers.contains(&Layer::Cluster) || manages_machines(t))
    {
        let Some(cluster) = t.environment.as_ref().and_then(|e| e.spec.cluster.as_ref()) else {
            continue;
        };
        let key = match (&cluster.os, &cluster.ami) {
            (Some(os), _) => format!("{}|{:?}", images::feed_url(os), images::owners(os)),
            (None, Some(ami)) => ami.to_string(),
            (None, None) => continue,
        };
        if let Some(image) = looked_up.get(&key) {
            images.insert(t.name.clone(), image.clone());
            continue;
        }
        let image = match (&cluster.os, &cluster.ami) {
            (Some(os), _) => images::resolve(aws, os).await,
            (None, Some(ami)) => images::pinned(aws, ami).await,
            (None, None) => continue,
        };
        let image = image.map_err(|source| EngineError::Image {
            env: t.name.clone(),
            source: Box::new(source),
        })?;
        looked_up.insert(key, image.clone());
        images.insert(t.name.clone(), image);
    }
    Ok(images)
}

/// The cluster and node layers' desired resources of an environment whose machines
/// strata manages: the image as `os.follow` says, and the target groups of the load
/// balancers the cluster joins.
fn desired_machines(
    env: &Environment,
    m: &Machine,
    machine_observed: &[Observed],
) -> DesiredMachines {
    let prefixes: Vec<String> = env
        .spec
        .cluster
        .iter()
        .flat_map(|c| &c.load_balancers)
        .map(|lb| format!("tg/{lb}/"))
        .collect();
    let tgs: Vec<String> = plan::network::desired(env, &[])
        .into_iter()
        .filter(|r| {
            r.kind == Kind::TargetGroup && prefixes.iter().any(|p| r.id.starts_with(p.as_str()))
        })
        .map(|r| r.id)
        .collect();
    let image = kept_image(env, machine_observed, &m.image).unwrap_or_else(|| m.image.id.clone());
    DesiredMachines {
        cluster: plan::cluster::desired(env, &image, &m.user_data, &tgs),
        node: m
            .config
            .as_deref()
            .map(plan::cluster::node)
            .unwrap_or_default(),
        instances: plan::cluster::instances(env, &image, &tgs, &m.nodes),
    }
}

fn plan_target(
    t: &Target,
    observed: &[Observed],
    machine_observed: &[Observed],
    zones: &[String],
    image: Option<&Image>,
    machine: Option<&Machine>,
    desired_machines: Option<&DesiredMachines>,
) -> Result<EnvironmentPlan, EngineError> {
    let mut layers = Vec::new();
    let mut network_actions: Vec<Action> = Vec::new();
    if t.layers.contains(&Layer::Network) {
        let desired = match &t.environment {
            Some(env) => {
                let names: Vec<String> = match &env.spec.network.zones {
                    Zones::Names(names) => names.iter().map(|z| z.to_string()).collect(),
                    Zones::Count(n) => {
                        let wanted = usize::from(*n);
                        if zones.len() < wanted {
                            return Err(EngineError::NotEnoughZones {
                                env: t.name.clone(),
                                wanted,
                                available: zones.len(),
                                region: t.region.clone(),
                            });
                        }
                        zones[..wanted].to_vec()
                    }
                };
                plan::network::desired(env, &names)
            }
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
                // A node change shows what changes on the machines, unit by unit.
                if let Some(new) = machine.and_then(|m| m.config.as_deref()) {
                    for a in actions
                        .iter_mut()
                        .filter(|a| a.kind == Kind::NodeConfig && a.action == ActionKind::Update)
                    {
                        if let Some(old) = a.observed.as_ref().and_then(|o| o.extra.get("config")) {
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
    let mut summary = Summary::default();
    for l in &layers {
        summary.add(l.summary);
    }
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
    let static_etcd = env
        .spec
        .node
        .as_ref()
        .and_then(|n| n.etcd.as_ref())
        .is_some_and(|e| e.bootstrap == crate::config::EtcdBootstrap::Static);
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

/// The image the cluster runs now, when a newer one is published but `os.follow` is
/// off: a new release alone does not move the cluster.
fn kept_image(env: &Environment, observed: &[Observed], published: &Image) -> Option<String> {
    let cluster = env.spec.cluster.as_ref()?;
    let os = cluster.os.as_ref()?;
    if os.follow {
        return None;
    }
    observed.iter().find_map(|o| match &o.spec {
        plan::Spec::LaunchTemplate { image, .. } if *image != published.id && !image.is_empty() => {
            Some(image.clone())
        }
        _ => None,
    })
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
        plan::Spec::AutoScalingGroup {
            min_healthy_percent,
            warmup_seconds,
            ..
        } => plan::FieldChange {
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
    let version = group
        .extra
        .get("launch_template_version")
        .cloned()
        .unwrap_or_default();
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
    let kind = match cluster.subnets {
        SubnetKind::Private => "subnet/private/",
        SubnetKind::Public => "subnet/public/",
    };
    let groups = plan::cluster::security_groups(cluster);
    let lbs: Vec<String> = cluster
        .load_balancers
        .iter()
        .map(|l| format!("tg/{l}/"))
        .collect();
    actions
        .iter()
        .filter(|a| a.action != ActionKind::Update || a.kind != Kind::SecurityGroup)
        .find(|a| {
            a.id.starts_with(kind)
                || groups.contains(&a.id)
                || lbs.iter().any(|p| a.id.starts_with(p.as_str()))
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

/// What apply did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Actions executed.
    pub actions: usize,
}

/// Executes a plan. Refuses (before any write) when it destroys something and
/// `allow_destroy` is false. Stops at the first failure; what was done stays done and
/// tagged, so the next run converges from there.
pub async fn apply(
    connector: &Connector,
    plan: &Plan,
    observations: &Observations,
    targets: &[Target],
    allow_destroy: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Applied, EngineError> {
    let destructive = plan.destructive();
    if !allow_destroy && !destructive.is_empty() {
        return Err(EngineError::NeedsConsent(
            destructive
                .iter()
                .map(|(env, a)| format!("{env}: {} {} {}", a.action, a.kind.describe(), a.id))
                .collect(),
        ));
    }
    let mut applied = Applied::default();
    for (n, env_plan) in plan.environments.iter().enumerate() {
        let Some(target) = targets.iter().find(|t| t.name == env_plan.name) else {
            continue;
        };
        let aws = connector.connect(&env_plan.region);
        let mut observed = observations
            .network
            .get(&env_plan.name)
            .cloned()
            .unwrap_or_default();
        observed.extend(
            observations
                .cluster
                .get(&env_plan.name)
                .cloned()
                .unwrap_or_default(),
        );
        let mut say = |line: &str| progress(line);
        let mut exec = Executor::new(&aws, &env_plan.name, &target.tags, &observed, &mut say);
        let result = apply_environment(
            &mut exec,
            env_plan,
            target,
            observations,
            plan.commit.as_deref(),
        )
        .await;
        applied.actions += exec.completed.len();
        if let Err(cause) = result {
            let left = |e: &EnvironmentPlan| {
                e.layers
                    .iter()
                    .flat_map(|l| &l.actions)
                    .map(label)
                    .map(|l| format!("{}: {l}", e.name))
                    .collect::<Vec<_>>()
            };
            let mut not_done: Vec<String> = env_plan
                .layers
                .iter()
                .flat_map(|l| &l.actions)
                .map(label)
                .filter(|l| !exec.completed.contains(l))
                .map(|l| format!("{}: {l}", env_plan.name))
                .collect();
            not_done.extend(plan.environments[n + 1..].iter().flat_map(left));
            return Err(EngineError::Stopped {
                cause: Box::new(cause),
                done: applied.actions,
                not_done,
            });
        }
    }
    Ok(applied)
}

/// Applies one environment's plan: machine deletions, the network, an etcd discovery
/// token when the first launch needs one, machine creations and updates, instances,
/// the group's rollout, and the commit on the VPC. Each completed action is recorded
/// in `exec.completed`.
async fn apply_environment(
    exec: &mut Executor<'_>,
    env_plan: &EnvironmentPlan,
    target: &Target,
    observations: &Observations,
    commit: Option<&str>,
) -> Result<(), EngineError> {
    let name = env_plan.name.as_str();
    let actions_of = |layer: Layer| {
        env_plan
            .layers
            .iter()
            .filter(move |l| l.layer == layer)
            .flat_map(|l| l.actions.iter())
    };
    let machine_actions: Vec<&Action> = actions_of(Layer::Cluster)
        .chain(actions_of(Layer::Node))
        .collect();
    // A plan has at most one network layer per environment.
    let network_actions = env_plan
        .layers
        .iter()
        .find(|l| l.layer == Layer::Network)
        .map_or(&[][..], |l| l.actions.as_slice());
    // Instances launch from the template's latest version unless this run makes one.
    if let Some(version) = observations
        .cluster
        .get(name)
        .into_iter()
        .flatten()
        .find(|o| o.kind == Kind::LaunchTemplate)
        .and_then(|o| o.extra.get("version"))
    {
        exec.ids.insert(
            format!("{}#version", plan::cluster::LAUNCH_TEMPLATE),
            version.clone(),
        );
    }
    let warmup = target
        .environment
        .as_ref()
        .and_then(|e| e.spec.cluster.as_ref())
        .map_or(0, |c| c.rollout.warmup_seconds);
    // Machines go first when they go: their instances hold the subnets and groups.
    execute_machines(exec, name, &machine_actions, None, true).await?;
    execute_network(exec, name, network_actions).await?;
    let mut template = observations.launch_templates.get(name).cloned();
    // The first launch of an etcd-discovery cluster fetches its token first.
    let mut owned: Vec<Action> = machine_actions.iter().map(|a| (*a).clone()).collect();
    if let Some(pending) = observations.pending_discovery.get(name)
        && owned.iter().any(|a| a.action != ActionKind::Delete)
    {
        fetch_discovery_token(exec, pending, &mut owned, &mut template).await?;
    }
    let machine_actions: Vec<&Action> = owned.iter().collect();
    execute_machines(exec, name, &machine_actions, template.as_ref(), false).await?;
    execute_instances(
        exec,
        name,
        &machine_actions,
        std::time::Duration::from_secs(u64::from(warmup)),
    )
    .await?;
    // A new template version reaches running instances through an instance refresh.
    if exec.template_renewed
        && let Some(group) = machine_actions
            .iter()
            .find(|a| a.kind == Kind::AutoScalingGroup && a.action == ActionKind::Update)
        && let Some(desired) = &group.desired
    {
        exec.refresh_instances(&desired.spec).await?;
        exec.say(&format!(
            "{name}: ~ rolled out the new template version to {}",
            group.id
        ));
    }
    if let (Some(commit), Some(vpc)) = (commit, exec.ids.get("vpc").cloned())
        && env_plan.layers.iter().any(|l| l.layer == Layer::Network)
    {
        let current = observations
            .network
            .get(name)
            .into_iter()
            .flatten()
            .find(|o| o.id == "vpc" && o.aws_id == vpc)
            .and_then(|o| o.tags.get(plan::TAG_COMMIT));
        if current.map(String::as_str) != Some(commit) {
            aws_network::record_commit(exec.aws, &vpc, commit).await?;
        }
    }
    Ok(())
}

/// Runs the cluster and node layers' actions: with `deletions`, only what is deleted
/// (the group before its template); otherwise creations and updates in order:
/// template, then a new template version for a node change, then the group.
async fn execute_machines(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[&Action],
    template: Option<&plan::Resource>,
    deletions: bool,
) -> Result<(), EngineError> {
    let mut ordered: Vec<&Action> = actions
        .iter()
        .copied()
        .filter(|a| (a.action == ActionKind::Delete) == deletions)
        // Instances that stay are launched, converged and replaced by `execute_instances`.
        .filter(|a| deletions || a.kind != Kind::Instance)
        .collect();
    ordered.sort_by_key(|a| a.kind.rank());
    if deletions {
        ordered.reverse();
    }
    for a in ordered {
        match (a.action, a.kind, &a.desired, &a.observed) {
            (ActionKind::Delete, _, _, Some(o)) => exec.delete(o).await?,
            (ActionKind::Create, _, Some(desired), _) => exec.create(desired).await?,
            (_, Kind::LaunchTemplate, Some(desired), _) => {
                if let plan::Spec::LaunchTemplate { user_data, .. } = &desired.spec {
                    exec.new_template_version(&desired.spec, user_data).await?;
                }
            }
            (_, Kind::NodeConfig, _, _) => {
                // One new version carries both a cluster and a node change.
                if !exec.template_renewed
                    && let Some(template) = template
                    && let plan::Spec::LaunchTemplate { user_data, .. } = &template.spec
                {
                    exec.new_template_version(&template.spec, user_data).await?;
                }
            }
            (_, Kind::AutoScalingGroup, Some(desired), Some(o)) => {
                exec.put_auto_scaling_group(
                    &desired.spec,
                    Some(o),
                    o.extra.get("launch_template_version").map(String::as_str),
                )
                .await?;
            }
            _ => continue,
        }
        report(exec, env, a);
    }
    Ok(())
}

/// Runs a fixed-size cluster's instance actions once the template is in place: new
/// instances launch together and are awaited (running, registered, healthy); running
/// ones are converged in place; replacements go one at a time, lowest index first,
/// each new instance running and healthy before the next old one goes, with
/// `warmup` between them. Stops at the first failure.
async fn execute_instances(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[&Action],
    warmup: std::time::Duration,
) -> Result<(), EngineError> {
    let index = |a: &&Action| {
        a.id.strip_prefix(plan::cluster::INSTANCE_PREFIX)
            .and_then(|i| i.parse::<u16>().ok())
            .unwrap_or(u16::MAX)
    };
    let of = |kind: ActionKind| {
        let mut list: Vec<&Action> = actions
            .iter()
            .copied()
            .filter(|a| a.kind == Kind::Instance && a.action == kind)
            .collect();
        list.sort_by_key(index);
        list
    };
    let mut launched = Vec::new();
    for a in of(ActionKind::Create) {
        if let Some(desired) = &a.desired {
            let id = exec.launch_instance(desired, None).await?;
            launched.push((a, desired, id));
        }
    }
    for (a, desired, id) in launched {
        if let plan::Spec::Instance { target_groups, .. } = &desired.spec {
            exec.await_instance(&a.id, &id, target_groups).await?;
        }
        report(exec, env, a);
    }
    for a in of(ActionKind::Update) {
        if let (Some(desired), Some(o)) = (&a.desired, &a.observed) {
            exec.update_instance(&desired.spec, o).await?;
            report(exec, env, a);
        }
    }
    let replacements = of(ActionKind::Replace);
    let last = replacements.len().saturating_sub(1);
    for (n, a) in replacements.into_iter().enumerate() {
        let (Some(desired), Some(o)) = (&a.desired, &a.observed) else {
            continue;
        };
        exec.delete(o).await?;
        exec.say(&format!("  … {} ({}) terminated", a.id, o.aws_id));
        let id = exec.launch_instance(desired, Some(&o.aws_id)).await?;
        if let plan::Spec::Instance { target_groups, .. } = &desired.spec {
            exec.await_instance(&a.id, &id, target_groups).await?;
        }
        exec.say(&format!(
            "{env}: {} {} {} {} ({} → {id})",
            a.action.symbol(),
            a.action,
            a.kind.describe(),
            a.id,
            o.aws_id
        ));
        exec.completed.push(label(a));
        if n < last && !warmup.is_zero() {
            exec.say(&format!(
                "  … warming up {} for {}s",
                a.id,
                warmup.as_secs()
            ));
            tokio::time::sleep(warmup).await;
        }
    }
    Ok(())
}

/// How an action is named in progress lines and in the report of a stopped apply.
fn label(a: &Action) -> String {
    format!("{} {} {}", a.action, a.kind.describe(), a.id)
}

/// One progress line per action done, with the AWS id when there is one; the action
/// is recorded as completed.
fn report(exec: &mut Executor<'_>, env: &str, a: &Action) {
    exec.completed.push(label(a));
    let aws = exec
        .ids
        .get(&a.id)
        .or(a.aws_id.as_ref())
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let at = match a.desired.as_ref().map(|d| &d.spec) {
        Some(plan::Spec::Instance { private_ip, .. }) if a.action != ActionKind::Delete => {
            format!(" at {private_ip}")
        }
        _ => String::new(),
    };
    exec.say(&format!(
        "{env}: {} {} {} {}{aws}{at}",
        a.action.symbol(),
        a.action,
        a.kind.describe(),
        a.id
    ));
}

/// Runs one environment's network actions in the order [`plan::schedule::schedule`]
/// gives.
async fn execute_network(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[Action],
) -> Result<(), EngineError> {
    use crate::plan::schedule::{Step, schedule};
    for step in schedule(actions) {
        let a = step.action();
        match step {
            Step::ReleaseReferences(_) => {
                if let Some(o) = &a.observed {
                    exec.release_group_references(o).await?;
                }
                continue;
            }
            Step::RemoveReplaced(_) => {
                if let Some(o) = &a.observed {
                    exec.delete(o).await?;
                }
                continue;
            }
            Step::SyncRules(_) => {
                if let Some(desired) = &a.desired {
                    exec.sync_rules(desired, None).await?;
                }
                continue;
            }
            Step::Create(_) => match &a.desired {
                Some(desired) => exec.create(desired).await?,
                None => continue,
            },
            Step::Update(_) => match (&a.desired, &a.observed) {
                (Some(desired), Some(o)) => exec.update(desired, o).await?,
                _ => continue,
            },
            Step::Delete(_) => match &a.observed {
                Some(o) => exec.delete(o).await?,
                None => continue,
            },
        }
        report(exec, env, a);
    }
    Ok(())
}
