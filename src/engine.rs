//! Plan and apply: picks the environments and layers to work on, reads their live
//! state through the AWS adapter, plans with the pure core and executes the plan.

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::images::{self, Image};
use crate::aws::network::{self as aws_network, Executor, NetworkState};
use crate::aws::{AwsError, Connector};
use crate::changes::{ChangeKind, ChangeSet};
use crate::config::{Environment, Layer, SubnetKind, Zones};
use crate::plan::{
    self, Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Observed, Plan, Summary,
};

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
}

/// Reads the live state of every target and plans it.
pub async fn plan(
    connector: &Connector,
    targets: &[Target],
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
        let names: Vec<String> = targets
            .iter()
            .filter(|t| t.layers.contains(&Layer::Network))
            .map(|t| t.name.clone())
            .collect();
        let counted = targets.iter().any(|t| {
            t.environment
                .as_ref()
                .is_some_and(|e| matches!(e.spec.network.zones, Zones::Count(_)))
        });
        let (state, zones): (NetworkState, Vec<String>) = match (names.is_empty(), counted) {
            (true, _) => (NetworkState::new(), Vec::new()),
            (false, true) => {
                tokio::try_join!(aws_network::observe(&aws, &names), aws_network::zones(&aws))?
            }
            (false, false) => (aws_network::observe(&aws, &names).await?, Vec::new()),
        };
        let images = resolve_images(&aws, &targets).await?;
        for t in targets {
            let observed = state.get(&t.name).cloned().unwrap_or_default();
            environments.push(plan_target(t, &observed, &zones, images.get(&t.name))?);
            observations.network.insert(t.name.clone(), observed);
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

/// The OS image of every target whose cluster layer is planned, looked up before any
/// write so a feed that is down or an image that is not the publisher's stops the run.
async fn resolve_images(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> Result<BTreeMap<String, Image>, EngineError> {
    let mut images = BTreeMap::new();
    for t in targets
        .iter()
        .filter(|t| t.layers.contains(&Layer::Cluster))
    {
        let Some(cluster) = t.environment.as_ref().and_then(|e| e.spec.cluster.as_ref()) else {
            continue;
        };
        let image = match (&cluster.os, &cluster.ami) {
            (Some(os), _) => images::resolve(aws, os).await,
            (None, Some(ami)) => images::pinned(aws, ami).await,
            (None, None) => continue,
        };
        let image = image.map_err(|source| EngineError::Image {
            env: t.name.clone(),
            source: Box::new(source),
        })?;
        images.insert(t.name.clone(), image);
    }
    Ok(images)
}

fn plan_target(
    t: &Target,
    observed: &[Observed],
    zones: &[String],
    image: Option<&Image>,
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
    for layer in [Layer::Cluster, Layer::Node] {
        let has_section = t.environment.as_ref().is_some_and(|e| match layer {
            Layer::Cluster => e.spec.cluster.is_some(),
            _ => e.spec.node.is_some(),
        });
        let forced_by = if layer == Layer::Cluster && !t.layers.contains(&layer) && t.follow_forced
        {
            forced.clone()
        } else {
            None
        };
        if (t.layers.contains(&layer) || forced_by.is_some()) && has_section {
            let mut notes = vec![format!(
                "the {layer} layer is not managed by this version of strata yet; nothing is planned for it"
            )];
            if let (Layer::Cluster, Some(image)) = (layer, image) {
                let release = image
                    .release
                    .as_ref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                notes.push(format!(
                    "image: {} ({}{release}, {})",
                    image.id, image.source, image.name
                ));
            }
            layers.push(LayerPlan {
                layer,
                forced_by,
                summary: Summary::default(),
                actions: Vec::new(),
                notes,
            });
        }
    }
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

/// A network change the cluster must follow: its subnets, groups or target groups.
fn forced_cluster_reason(env: &Environment, actions: &[Action]) -> Option<String> {
    let cluster = env.spec.cluster.as_ref()?;
    let kind = match cluster.subnets {
        SubnetKind::Private => "subnet/private/",
        SubnetKind::Public => "subnet/public/",
    };
    let groups: BTreeSet<String> = cluster
        .security_groups
        .iter()
        .map(|g| format!("sg/{g}"))
        .collect();
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
    for env_plan in &plan.environments {
        let Some(target) = targets.iter().find(|t| t.name == env_plan.name) else {
            continue;
        };
        let aws = connector.connect(&env_plan.region);
        for layer in env_plan.layers.iter().filter(|l| l.layer == Layer::Network) {
            let observed = observations
                .network
                .get(&env_plan.name)
                .cloned()
                .unwrap_or_default();
            let mut say = |line: &str| progress(line);
            let mut exec = Executor::new(&aws, &env_plan.name, &target.tags, &observed, &mut say);
            applied.actions += execute_network(&mut exec, &env_plan.name, &layer.actions).await?;
            if let (Some(commit), Some(vpc)) = (&plan.commit, exec.ids.get("vpc").cloned()) {
                let current = observed
                    .iter()
                    .find(|o| o.id == "vpc" && o.aws_id == vpc)
                    .and_then(|o| o.tags.get(plan::TAG_COMMIT));
                if current != Some(commit) {
                    aws_network::record_commit(&aws, &vpc, commit).await?;
                }
            }
        }
    }
    Ok(applied)
}

/// Runs one environment's network actions in the order [`plan::schedule::schedule`]
/// gives. Returns how many actions it completed.
async fn execute_network(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[Action],
) -> Result<usize, EngineError> {
    use crate::plan::schedule::{Step, schedule};
    let mut done = 0;
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
        let aws = exec
            .ids
            .get(&a.id)
            .or(a.aws_id.as_ref())
            .map(|id| format!(" ({id})"))
            .unwrap_or_default();
        exec.say(&format!(
            "{env}: {} {} {} {}{aws}",
            a.action.symbol(),
            a.action,
            a.kind.describe(),
            a.id
        ));
        done += 1;
    }
    Ok(done)
}
