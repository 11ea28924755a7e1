//! The node section: units, the login user, etcd and the environment file.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::types::*;

/// Layer 3: what every instance boots with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Units from `units/` to install (with their drop-ins).
    #[serde(default)]
    pub units: Vec<String>,
    /// The login user and where its SSH public key comes from.
    pub ssh: Ssh,
    /// etcd bootstrap values written to the environment file.
    #[serde(default)]
    pub etcd: Option<Etcd>,
    /// Extra `KEY=value` lines for `/etc/strata/cluster.env`.
    #[serde(default)]
    pub environment: BTreeMap<EnvKey, String>,
}

impl Node {
    /// How etcd bootstraps, when the node runs etcd.
    pub fn etcd_bootstrap(&self) -> Option<EtcdBootstrap> {
        self.etcd.as_ref().map(|e| e.bootstrap)
    }
}

/// The login user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// User name on the node.
    #[serde(default = "default_user")]
    pub user: UserName,
    /// Secrets Manager secret holding the OpenSSH public key.
    pub public_key_secret: SecretId,
}

fn default_user() -> UserName {
    UserName::try_from("core".to_owned()).expect("`core` is a valid user name")
}

/// etcd bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Etcd {
    /// static: members from the deterministic addresses; discovery: a discovery token.
    #[serde(default)]
    pub bootstrap: EtcdBootstrap,
    /// Discovery service, `{size}` replaced by the cluster size.
    #[serde(default)]
    pub discovery_url: Option<String>,
}

/// static | discovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EtcdBootstrap {
    /// `ETCD_INITIAL_CLUSTER` from the fixed cluster's addresses.
    #[default]
    Static,
    /// A token from a discovery service, fetched once per cluster.
    Discovery,
}
