//! The vocabulary of plans: resources with comparable fields, actions, and plans.
//!
//! A resource, desired or observed, is a logical id plus a typed [`Spec`]. Specs turn
//! into [`Field`]s for comparison, so one generic diff serves every resource type and
//! the plan can show field-level changes. Execution works from the typed spec.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::config::Layer;

/// Resource types strata manages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// VPC.
    Vpc,
    /// Subnet.
    Subnet,
    /// Internet gateway, attached to the VPC.
    InternetGateway,
    /// Elastic IP for a NAT gateway.
    ElasticIp,
    /// NAT gateway.
    NatGateway,
    /// Route table with its routes and subnet associations.
    RouteTable,
    /// Security group with its rules.
    SecurityGroup,
    /// ELBv2 target group.
    TargetGroup,
    /// ELBv2 load balancer.
    LoadBalancer,
    /// ELBv2 listener.
    Listener,
    /// The EC2 launch template instances start from.
    LaunchTemplate,
    /// The EC2 auto-scaling group.
    AutoScalingGroup,
    /// The Ignition config the instances boot with (the launch template's user data).
    NodeConfig,
    /// A fixed-size cluster node's data volume: it outlives the node's instances.
    Volume,
    /// One instance of a fixed-size cluster, at its node index.
    Instance,
}

impl Kind {
    /// Creation order; deletion runs the other way.
    pub const ORDER: [Kind; 15] = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::InternetGateway,
        Kind::ElasticIp,
        Kind::NatGateway,
        Kind::RouteTable,
        Kind::SecurityGroup,
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::Listener,
        Kind::LaunchTemplate,
        // A node change makes a new template version before the group moves to it.
        Kind::NodeConfig,
        Kind::AutoScalingGroup,
        // A node's data volume exists before its instance, which attaches it.
        Kind::Volume,
        Kind::Instance,
    ];

    /// Position in [`Kind::ORDER`].
    pub fn rank(self) -> usize {
        Kind::ORDER
            .iter()
            .position(|k| *k == self)
            .unwrap_or(usize::MAX)
    }

    /// The layer the resource belongs to.
    pub fn layer(self) -> Layer {
        match self {
            Kind::LaunchTemplate | Kind::AutoScalingGroup | Kind::Volume | Kind::Instance => {
                Layer::Cluster
            }
            Kind::NodeConfig => Layer::Node,
            _ => Layer::Network,
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Vpc => "VPC",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet gateway",
            Kind::ElasticIp => "elastic IP",
            Kind::NatGateway => "NAT gateway",
            Kind::RouteTable => "route table",
            Kind::SecurityGroup => "security group",
            Kind::TargetGroup => "target group",
            Kind::LoadBalancer => "load balancer",
            Kind::Listener => "listener",
            Kind::LaunchTemplate => "launch template",
            Kind::AutoScalingGroup => "auto-scaling group",
            Kind::NodeConfig => "node config",
            Kind::Volume => "data volume",
            Kind::Instance => "instance",
        }
    }

    /// True for resources that take minutes to create or delete (progress is shown).
    pub fn is_slow(self) -> bool {
        matches!(self, Kind::NatGateway | Kind::LoadBalancer)
    }
}

/// A comparable value: one scalar, or a set whose members are added and removed
/// individually (security-group rules, routes, subnet lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A single value.
    Scalar(String),
    /// A set of values.
    Set(BTreeSet<String>),
}

/// One named, comparable property of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Name shown in plans, e.g. `cidr`, `ingress`.
    pub name: &'static str,
    /// The value.
    pub value: Value,
    /// Changing it means deleting and recreating the resource.
    pub forces_replacement: bool,
}

/// Where a change comes from, in a plan made from a diff.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The diff causes it: the head declares something the base did not.
    Change,
    /// Live AWS differs from what the base commit declares: a change by hand, or a
    /// merged change never applied. Applying the head undoes it.
    Drift,
}

/// One field's change in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Old value (`None` when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// New value (`None` when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// In a plan made from a diff: this diff's change, or drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// What an action does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Create a resource.
    Create,
    /// Change a resource in place.
    Update,
    /// Delete and recreate.
    Replace,
    /// Delete a resource.
    Delete,
}

impl ActionKind {
    /// The plan symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            ActionKind::Create => "+",
            ActionKind::Update => "~",
            ActionKind::Replace => "-/+",
            ActionKind::Delete => "-",
        }
    }

    /// Lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Replace => "replace",
            ActionKind::Delete => "delete",
        }
    }

    /// The verb as a sentence with a subject uses it: `the network replaces …`.
    pub fn third_person(self) -> &'static str {
        match self {
            ActionKind::Create => "creates",
            ActionKind::Update => "updates",
            ActionKind::Replace => "replaces",
            ActionKind::Delete => "deletes",
        }
    }

    /// True when the action destroys something.
    pub fn is_destructive(self) -> bool {
        matches!(self, ActionKind::Replace | ActionKind::Delete)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Create, update, replace or delete.
    pub action: ActionKind,
    /// Resource type.
    pub kind: Kind,
    /// Logical id (`subnet/private/0`).
    pub id: super::LogicalId,
    /// The AWS id of the existing resource, for update, replace and delete.
    pub aws_id: Option<String>,
    /// Field-level changes.
    pub changes: Vec<FieldChange>,
    /// For a replace, or a change no field of its own asks for: the field or other
    /// resource that forces it.
    pub forced_by: Option<String>,
    /// Diff-style lines showing what the change does in detail (a node change: the
    /// unit lines that change on the machines). Never holds a secret.
    pub detail: Vec<String>,
    /// An auto-scaling group's update that ends in an instance refresh: how many
    /// running machines it replaces.
    pub refresh: Option<u16>,
    /// In a plan made from a diff: the diff's own action, or one drift alone asks for.
    pub origin: Option<Origin>,
    /// The desired resource (absent for deletes); what execution creates or converges to.
    pub desired: Option<super::Resource>,
    /// The observed resource (absent for creates).
    pub observed: Option<super::Observed>,
}

impl Action {
    /// True when applying it needs `--allow-destroy`: every delete, and every replace
    /// but an instance's (replacing instances one at a time is how a fixed-size
    /// cluster rolls out a change, as an instance refresh is for a group).
    pub fn needs_consent(&self) -> bool {
        match self.action {
            ActionKind::Delete => true,
            ActionKind::Replace => self.kind != Kind::Instance,
            ActionKind::Create | ActionKind::Update => false,
        }
    }

    /// The running machines it replaces by a rollout (no consent needed): one for a
    /// fixed-size cluster's instance replaced, the group's instances for an instance
    /// refresh.
    pub fn rollout(&self) -> usize {
        match (self.kind, self.action) {
            (Kind::Instance, ActionKind::Replace) => 1,
            (Kind::AutoScalingGroup, ActionKind::Update) => self.refresh.map_or(0, usize::from),
            _ => 0,
        }
    }

    /// What applying it would open to the internet, decided on the typed specs: an
    /// inbound rule from anywhere the group did not have, a load balancer becoming
    /// internet-facing.
    pub fn widens_security(&self) -> Vec<String> {
        use super::Spec;
        if self.action == ActionKind::Delete {
            return Vec::new();
        }
        let observed = self.observed.as_ref().map(|o| &o.spec);
        match self.desired.as_ref().map(|d| &d.spec) {
            Some(Spec::SecurityGroup(group)) => {
                let before = match observed {
                    Some(Spec::SecurityGroup(was)) => Some(&was.ingress),
                    _ => None,
                };
                let mut opened: Vec<String> = group
                    .ingress
                    .iter()
                    .filter(|r| r.peer.is_anywhere() && before.is_none_or(|b| !b.contains(r)))
                    .map(|r| {
                        format!(
                            "{} {}: ingress {}",
                            self.kind.describe(),
                            self.id,
                            r.inbound()
                        )
                    })
                    .collect();
                opened.sort();
                opened
            }
            Some(Spec::LoadBalancer(lb))
                if lb.scheme == super::spec::Scheme::InternetFacing
                    && !matches!(observed, Some(Spec::LoadBalancer(was)) if was.scheme == lb.scheme) =>
            {
                vec![format!("load balancer {} becomes internet-facing", self.id)]
            }
            _ => Vec::new(),
        }
    }
}

/// What identifies an action within one environment's plan, free of AWS ids.
pub type ActionKey = (Kind, super::LogicalId, ActionKind);

impl Action {
    /// Its key: kind, logical id and what is done.
    pub fn key(&self) -> ActionKey {
        (self.kind, self.id.clone(), self.action)
    }
}

/// A planned action named for people and programs: which environment, layer and
/// resource, and what is done to it. Reports of an apply (what was and was not
/// applied, what needs consent) are lists of these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ActionRef {
    /// Environment name.
    pub environment: String,
    /// The layer it was planned in.
    pub layer: Layer,
    /// Resource type.
    pub kind: Kind,
    /// Logical id.
    pub id: super::LogicalId,
    /// What is done.
    pub action: ActionKind,
}

impl ActionRef {
    /// Names `action`, planned in `layer` of `environment`.
    pub fn new(environment: &str, layer: Layer, action: &Action) -> ActionRef {
        ActionRef {
            environment: environment.to_owned(),
            layer,
            kind: action.kind,
            id: action.id.clone(),
            action: action.action,
        }
    }
}

impl fmt::Display for ActionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} {}",
            self.environment,
            self.action,
            self.kind.describe(),
            self.id
        )
    }
}

/// Counts of actions, per layer and overall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Creations.
    pub create: usize,
    /// In-place updates.
    pub update: usize,
    /// Replacements that need consent (an instance replaced by a rollout is counted
    /// in `rollout`).
    pub replace: usize,
    /// Deletions.
    pub delete: usize,
    /// Running machines a rollout replaces: a group's instances for an instance
    /// refresh, each fixed-size cluster node replaced one at a time.
    pub rollout: usize,
}

impl Summary {
    /// Counts the actions.
    pub fn of<'a>(actions: impl IntoIterator<Item = &'a Action>) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            s.rollout += a.rollout();
            match a.action {
                ActionKind::Create => s.create += 1,
                ActionKind::Update => s.update += 1,
                ActionKind::Replace if a.needs_consent() => s.replace += 1,
                ActionKind::Replace => {}
                ActionKind::Delete => s.delete += 1,
            }
        }
        s
    }

    /// Adds another summary.
    pub fn add(&mut self, other: Summary) {
        self.create += other.create;
        self.update += other.update;
        self.replace += other.replace;
        self.delete += other.delete;
        self.rollout += other.rollout;
    }

    /// Total actions and machines rolled: zero when there is nothing to do.
    pub fn total(&self) -> usize {
        self.create + self.update + self.replace + self.delete + self.rollout
    }
}

impl std::iter::Sum for Summary {
    fn sum<I: Iterator<Item = Summary>>(iter: I) -> Summary {
        let mut total = Summary::default();
        for s in iter {
            total.add(s);
        }
        total
    }
}

/// One layer of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LayerPlan {
    /// The layer.
    pub layer: Layer,
    /// Why this layer is planned although it did not change itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_by: Option<String>,
    /// Counts.
    pub summary: Summary,
    /// Ordered actions.
    pub actions: Vec<Action>,
    /// Things the reader should know (e.g. a layer this version cannot plan yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What an apply does to data volumes, which hold what the machines wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeFate {
    /// Deleted, with its data.
    Deleted,
    /// Left unattached (tagged, for recovery); its machine's successor starts empty.
    LeftBehind,
}

/// Data volumes an apply deletes or leaves behind: nothing is lost silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DataVolumes {
    /// A fixed-size cluster node's volume (`volume/0`), or `asg` for the group's
    /// instances' volumes.
    pub id: super::LogicalId,
    /// The volume's AWS id, when it is one known volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_id: Option<String>,
    /// How many volumes.
    pub count: usize,
    /// Each one's size and type, `200 GiB gp3`.
    pub disk: String,
    /// What happens to them.
    pub fate: VolumeFate,
    /// Why.
    pub because: String,
}

/// One environment's plan.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EnvironmentPlan {
    /// Environment name.
    pub name: String,
    /// Region.
    pub region: String,
    /// True when the environment's file is gone and everything is to be torn down.
    pub removed: bool,
    /// Counts over all layers.
    pub summary: Summary,
    /// Layers in apply order.
    pub layers: Vec<LayerPlan>,
    /// The AWS account the environment lives in, when not the one of the credentials
    /// strata runs with (the account of its `account.role_arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Data volumes the apply deletes or leaves behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_volumes: Vec<DataVolumes>,
    /// In a plan made from a diff: what it changes about whom the machines' image is
    /// trusted from (`plan::trust`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<String>,
    /// What the environment is made of as the plan leaves it (the desired resources
    /// of the planned layers), for pictures; deleted ones are in their actions.
    #[serde(skip)]
    pub resources: Vec<super::Resource>,
}

/// A whole plan: the JSON schema of `strata plan --format json` (see README).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Plan {
    /// Schema version of this JSON.
    pub version: u32,
    /// The commit the plan was made from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Counts over everything.
    pub summary: Summary,
    /// Environments by name.
    pub environments: Vec<EnvironmentPlan>,
    /// Environments that could not be planned, by name, each with why; the others
    /// are planned without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unplanned: Vec<Unplanned>,
}

/// An environment that could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Unplanned {
    /// The environment.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Why, naming the environment, the call and what to do.
    pub error: String,
}

impl Plan {
    /// A plan of `environments`, made from `commit`, with its counts.
    pub fn new(commit: Option<String>, environments: Vec<EnvironmentPlan>) -> Plan {
        Plan {
            version: 1,
            commit,
            summary: environments.iter().map(|e| e.summary).sum(),
            environments,
            unplanned: Vec::new(),
        }
    }

    /// True when nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.summary.total() == 0
    }

    /// Every action with the environment and layer it was planned in, in apply order.
    pub fn actions(&self) -> impl Iterator<Item = (&EnvironmentPlan, &LayerPlan, &Action)> {
        self.environments.iter().flat_map(|e| {
            e.layers
                .iter()
                .flat_map(move |l| l.actions.iter().map(move |a| (e, l, a)))
        })
    }

    /// Every destructive action, for the consent check.
    pub fn destructive(&self) -> Vec<(&str, &Action)> {
        self.actions()
            .filter(|(_, _, a)| a.needs_consent())
            .map(|(e, _, a)| (e.name.as_str(), a))
            .collect()
    }
}

/// Tags strata puts on every resource.
pub fn tags(
    env: &str,
    region_tags: &BTreeMap<String, String>,
    layer: Layer,
    id: &super::LogicalId,
) -> Vec<(String, String)> {
    let id = id.to_string();
    let mut out: Vec<(String, String)> = region_tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.push((super::TAG_ENVIRONMENT.to_owned(), env.to_owned()));
    out.push((super::TAG_LAYER.to_owned(), layer.as_str().to_owned()));
    let name = crate::config::names::resource(env, &id);
    out.push((super::TAG_ID.to_owned(), id));
    out.push(("Name".to_owned(), name));
    out
}
