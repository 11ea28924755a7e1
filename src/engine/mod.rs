//! Plan and apply: picks the environments and layers to work on, reads their live
//! state through the AWS adapter, plans with the pure core and executes the plan.
//!
//! - this module: targets (from `--env`/`--layer` or a change set), errors, and what
//!   planning keeps for apply;
//! - `planning`: reads and plans, per region;
//! - `machines`: the image, keys, etcd discovery token and rendered configs an
//!   environment's machines are made from, and their desired resources;
//! - `apply`: executes a plan in dependency order and reports where it stopped.

mod apply;
mod drift;
mod machines;
mod planning;

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::AwsError;
use crate::changes::{ChangeKind, ChangeSet};
use crate::config::{Environment, Layer};
use crate::plan::{self, ActionRef, Observed};

pub use apply::{Applied, apply};
pub use drift::drift;
use machines::PendingDiscovery;
pub use planning::plan;

/// How many environments an apply works on at once unless told otherwise. An
/// environment's apply mostly waits on AWS (NAT gateways, instances, refreshes), so a
/// few side by side cost strata little; four keeps one account's request rate (EC2
/// throttles per account and region) well within what it tolerates beside the other
/// tools that use it.
pub const DEFAULT_PARALLEL: u16 = 4;

/// One environment to plan.
#[derive(Debug, Clone)]
pub struct Target {
    /// Environment name.
    pub name: String,
    /// Its parsed file; `None` when the file was removed (a teardown).
    pub environment: Option<Environment>,
    /// Region to look in.
    pub region: String,
    /// The account, when not the one of the credentials strata runs with (from the
    /// file, or a removed environment's last version).
    pub account: Option<crate::config::Account>,
    /// Tags from the file (for a removed file, from its last version).
    pub tags: BTreeMap<String, String>,
    /// Layers to plan: every layer for what changed (a plan made from a diff holds
    /// exactly what a plan of every layer would), or those asked for with `--layer`
    /// (plus the cluster when the network forces it).
    pub layers: BTreeSet<Layer>,
    /// The layers whose part of the repository changed (or those asked for): a
    /// planned layer outside them says what forces it.
    pub changed: BTreeSet<Layer>,
}

impl Target {
    /// The target `name` with `layers` planned, of which `changed` changed:
    /// `environment` as the head has it (`None`: a teardown), its region and tags from
    /// `source` (the head's file, or a removed environment's last version).
    pub fn new(
        name: String,
        environment: Option<Environment>,
        source: &Environment,
        layers: BTreeSet<Layer>,
        changed: BTreeSet<Layer>,
    ) -> Target {
        Target {
            name,
            region: source.spec.region.to_string(),
            account: source.spec.account.clone(),
            tags: source
                .spec
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            environment,
            layers,
            changed,
        }
    }
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
    /// A read every environment of a region needs failed.
    #[error("{message}\n  (a read all of {region}'s environments need: none of them was planned)")]
    Region {
        /// The region.
        region: String,
        /// The failure.
        message: String,
    },
    /// Environments that could not be planned (the others were).
    #[error("{}", .0.iter().map(|u| u.error.clone()).collect::<Vec<_>>().join("\n"))]
    Unplanned(Vec<plan::Unplanned>),
    /// An environment's apply stopped at this failure.
    #[error("environment `{env}`: {source}")]
    In {
        /// The environment.
        env: String,
        /// The failure.
        source: Box<EngineError>,
    },
    /// Several environments stopped, each at a failure of its own.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<EngineError>),
    /// Apply stopped at a failure; what was done stays done (and tagged).
    #[error(
        "{cause}\n  applied before the failure: {} change{}\n  not applied:\n{}\n  hint: fix the cause and run apply again; it continues from what exists",
        .done.len(),
        crate::plan::render::plural(.done.len()),
        .not_done.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    )]
    Stopped {
        /// The failure.
        cause: Box<EngineError>,
        /// Actions completed before it, in order.
        done: Vec<ActionRef>,
        /// Actions of the plan not (or not completely) applied.
        not_done: Vec<ActionRef>,
    },
    /// The plan destroys something and consent was not given. Nothing was changed.
    #[error(
        "the plan deletes or replaces {} resource{}; nothing was changed:\n{}\n  hint: review the plan, then run `strata apply --allow-destroy` to consent",
        .0.len(),
        crate::plan::render::plural(.0.len()),
        .0.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )]
    NeedsConsent(Vec<ActionRef>),
}

impl EngineError {
    /// This failure, said to be `env`'s unless it names its environment already.
    pub(crate) fn of_environment(self, env: &str) -> EngineError {
        match self {
            EngineError::Image { .. }
            | EngineError::NotEnoughZones { .. }
            | EngineError::Render { .. }
            | EngineError::Discovery { .. }
            | EngineError::In { .. } => self,
            other => EngineError::In {
                env: env.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

/// An environment asked for that the repository does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no environment `{name}` in environments/ (found: {})", known.join(", "))]
pub struct UnknownEnvironment {
    /// As asked for.
    pub name: String,
    /// The environments there are.
    pub known: Vec<String>,
}

/// Targets from explicit `--env`/`--layer` selections: every named environment (all
/// of them when none is named) with the chosen layers (all when none is chosen).
pub fn select(
    environments: &BTreeMap<String, Environment>,
    names: &[String],
    layers: &[Layer],
) -> Result<Vec<Target>, UnknownEnvironment> {
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
            let env = environments.get(&name).ok_or_else(|| UnknownEnvironment {
                name: name.clone(),
                known: environments.keys().cloned().collect(),
            })?;
            Ok(Target::new(
                name,
                Some(env.clone()),
                env,
                layers.clone(),
                layers.clone(),
            ))
        })
        .collect()
}

/// Targets from a change set: every layer of each changed environment (only those of
/// `layers` when given), removed environments as teardowns (their region and tags
/// from the base commit's file).
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
            let changed: BTreeSet<Layer> = change.layers.iter().copied().collect();
            let chosen: BTreeSet<Layer> = match &only {
                Some(only) => changed.intersection(only).copied().collect(),
                None => Layer::ALL.into_iter().collect(),
            };
            if chosen.is_empty() || changed.is_empty() {
                return None;
            }
            let environment = if change.change == ChangeKind::Removed {
                None
            } else {
                head.get(&change.name).cloned()
            };
            let source = environment.as_ref().or_else(|| base.get(&change.name))?;
            Some(Target::new(
                change.name.clone(),
                environment.clone(),
                source,
                chosen,
                changed,
            ))
        })
        .collect()
}

/// The base commit of a plan made from a diff: its environments and units. The plan
/// compares the head's desired state with the base's to tell its own changes from
/// drift (`plan::origin`).
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// The base's environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// The base's units.
    pub units: crate::units::UnitSet,
}

impl Observations {
    /// Takes in what another region's planning saw.
    fn absorb(&mut self, other: Observations) {
        self.network.extend(other.network);
        self.cluster.extend(other.cluster);
        self.launch_templates.extend(other.launch_templates);
        self.left_behind.extend(other.left_behind);
        self.pending_discovery.extend(other.pending_discovery);
    }
}

/// What planning saw, kept for apply.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    network: BTreeMap<String, Vec<Observed>>,
    cluster: BTreeMap<String, Vec<Observed>>,
    /// The desired launch template per environment (a node change re-versions it).
    launch_templates: BTreeMap<String, plan::Resource>,
    /// Volumes a group's replaced machines left behind (unattached, kept for
    /// recovery), per environment: observed for drift, never planned.
    left_behind: BTreeMap<String, Vec<Observed>>,
    /// Environments using etcd discovery that have no token yet.
    pending_discovery: BTreeMap<String, PendingDiscovery>,
}
