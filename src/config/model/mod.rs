//! The shape of `environments/<name>.yaml` (DESIGN.md §1).
//!
//! Plain data with `deny_unknown_fields`: comparing two parsed files with `==` is how
//! change detection ignores comments, key order and formatting.
//!
//! By layer: `network` (the VPC, its carving, NAT, security groups and rules),
//! `balancers`, `cluster` and `node`.

mod balancers;
mod cluster;
mod network;
mod node;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use balancers::*;
pub use cluster::*;
pub use network::*;
pub use node::*;

use super::types::*;

/// One environment file: a network, optionally a cluster in it, and the node config
/// its instances boot with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// The AWS region every resource of this environment lives in.
    pub region: Region,
    /// The AWS account the environment lives in, when it is not the one of the
    /// credentials strata runs with: a role there that strata assumes through STS.
    #[serde(default)]
    pub account: Option<Account>,
    /// Tags merged into every resource strata creates for this environment.
    #[serde(default)]
    pub tags: BTreeMap<TagKey, String>,
    /// Layer 1: VPC, subnets, gateways, routes, security groups, load balancers.
    pub network: Network,
    /// Layer 2: the instances, fixed-size or an auto-scaling group.
    #[serde(default)]
    pub cluster: Option<Cluster>,
    /// Layer 3: what every instance boots with (systemd units, SSH user, environment file).
    #[serde(default)]
    pub node: Option<Node>,
}

/// Another AWS account: the role strata assumes there, from the credentials it runs
/// with, to plan, apply, lock and check drift.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The role to assume, `arn:aws:iam::<account>:role/<name>`.
    pub role_arn: RoleArn,
    /// The external id the role's trust policy asks for, if any.
    #[serde(default)]
    pub external_id: Option<ExternalId>,
}
