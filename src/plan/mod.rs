//! Plans: desired state (from the model) against observed state (from AWS), as
//! ordered actions with field-level changes. Pure: no I/O here.

pub mod cluster;
pub mod comment;
pub mod desired;
mod diff;
pub mod digest;
pub mod drift;
pub mod environment;
pub mod id;
mod json;
pub mod machine;
pub mod model;
pub mod model_only;
pub mod network;
pub mod node_diff;
pub mod origin;
pub mod render;
mod rollout;
pub mod schedule;
pub mod spec;
#[cfg(test)]
pub(crate) mod testing;
pub mod trust;
#[cfg(test)]
mod truth_tests;

use std::collections::BTreeMap;

pub use diff::plan_resources;
pub use id::LogicalId;
pub use model::*;
pub use spec::{ListenerAction, Route, Rule, RulePeer, Spec};

/// Tag naming the environment a resource belongs to.
pub const TAG_ENVIRONMENT: &str = "strata:environment";
/// Tag naming the layer (`network`, `cluster`, `node`).
pub const TAG_LAYER: &str = "strata:layer";
/// Tag holding the logical id (`subnet/private/0`).
pub const TAG_ID: &str = "strata:id";
/// Tag on a layer's root resource: the commit last applied to the layer.
pub const TAG_COMMIT: &str = "strata:commit";
/// Tag on an instance of a fixed-size cluster: the digest of the config it booted with.
pub const TAG_CONFIG: &str = "strata:config";
/// Tag on an instance of a fixed-size cluster: the digest of the template settings it
/// keeps for life (root volume, data volume, instance profile).
pub const TAG_SETTINGS: &str = "strata:settings";

/// A resource strata wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Resource type.
    pub kind: Kind,
    /// Logical id, unique within the environment.
    pub id: LogicalId,
    /// Its properties.
    pub spec: Spec,
}

/// A resource found in AWS by its strata tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Resource type.
    pub kind: Kind,
    /// Logical id from the `strata:id` tag.
    pub id: LogicalId,
    /// The AWS id or ARN.
    pub aws_id: String,
    /// Its properties as AWS reports them, references mapped to logical ids.
    pub spec: Spec,
    /// All its tags.
    pub tags: BTreeMap<String, String>,
    /// What the adapter learnt besides the spec, for execution; never compared.
    pub live: Live,
}

/// Tests build what AWS would hold from what they want.
#[cfg(test)]
impl Observed {
    /// What AWS would hold had each of `resources` been made, as `aws-<n>`.
    pub(crate) fn all_made(resources: &[Resource]) -> Vec<Observed> {
        let made = resources.iter().enumerate();
        made.map(|(n, r)| Observed::made(r, format!("aws-{n}")))
            .collect()
    }
}

/// What an adapter keeps of a live resource besides its spec: what execution and
/// plan notes need, never compared by plans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Live {
    /// Nothing beyond the spec.
    #[default]
    Nothing,
    /// An internet gateway: the AWS id of the VPC it is attached to.
    InternetGateway {
        /// `None` when detached.
        attached_vpc: Option<String>,
    },
    /// A route table: the association id of each associated subnet, by the subnet's
    /// AWS id, to disassociate precisely.
    RouteTable {
        /// Subnet id → association id.
        associations: BTreeMap<String, String>,
    },
    /// A launch template: its latest version, what instances launch from unless the
    /// run makes another.
    LaunchTemplate {
        /// Version number.
        latest_version: i64,
    },
    /// The node config in the template's latest version, for the unit-level diff (in
    /// memory only: it holds the SSH key, which the diff shows as a fingerprint).
    NodeConfig {
        /// The full config JSON.
        config: String,
    },
    /// An auto-scaling group: the template version it launches from, and the ones its
    /// machines were launched from (read from the same `DescribeAutoScalingGroups`).
    AutoScalingGroup {
        /// As the group names it (a number, `$Latest` or `$Default`).
        template_version: String,
        /// Its in-service instances by the template version each was launched from:
        /// how many run each version.
        running: BTreeMap<i64, u16>,
    },
    /// An instance of a fixed-size cluster.
    Instance {
        /// Its state.
        state: InstanceState,
    },
}

/// The states of a cluster member instance (one shutting down or terminated is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
}

impl InstanceState {
    /// EC2's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }
}
