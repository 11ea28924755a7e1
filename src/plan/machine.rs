//! What an environment's machines boot with (pure): the configs rendered from the
//! environment, its units and its secrets, one shared by a group's instances or one
//! per node of a fixed-size cluster. In memory only: a config holds the SSH key.

use super::cluster::{Image, digest};
use crate::config::Environment;
use crate::ignition::{self, RenderError, RenderRequest};
use crate::units::UnitSet;

/// What node `i` of a fixed-size cluster launches with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLaunch {
    /// Base64 of its user data.
    pub user_data: String,
    /// Digest of its config without the member list
    /// ([`crate::ignition::comparable_json`]).
    pub digest: String,
}

/// What the cluster and node layers of one environment are made from: the image, and
/// the rendered config (only in memory; it holds the SSH key).
pub struct Machine {
    /// The image the machines run.
    pub image: Image,
    /// The full config JSON in the template (what the node layer compares): the
    /// group's shared config, or node 0's for a fixed-size cluster.
    pub config: Option<String>,
    /// Base64 of the template's user data (the config, or its gzip wrapper).
    pub user_data: String,
    /// A fixed-size cluster's nodes, by index.
    pub nodes: Vec<NodeLaunch>,
}

/// The secrets a render puts into the configs, when they are known.
#[derive(Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// The login user's OpenSSH public key.
    pub ssh_public_key: Option<&'a str>,
    /// The etcd discovery URL.
    pub etcd_discovery: Option<&'a str>,
}

/// Renders the configs `env`'s instances boot with on `image`: one shared by a
/// group's instances, or one per node of a fixed-size cluster (whose template holds
/// node 0's without the member list, what the node layer diffs, so that a size change
/// stays a cluster change as `strata changes` says).
pub fn render(
    env: &Environment,
    units: &UnitSet,
    image: Image,
    secrets: Secrets<'_>,
) -> Result<Machine, RenderError> {
    use base64::Engine as _;
    let encode = |json: String| base64::engine::general_purpose::STANDARD.encode(json);
    let size = env
        .cluster
        .as_ref()
        .and_then(|c| c.size.fixed())
        .unwrap_or(0);
    if env.spec.node.is_none() {
        // A cluster without a node section boots an empty config.
        let empty =
            serde_json::json!({"ignition": {"version": ignition::SPEC_VERSION}}).to_string();
        let nodes = (0..size)
            .map(|_| NodeLaunch {
                user_data: encode(empty.clone()),
                digest: digest(&empty),
            })
            .collect();
        return Ok(Machine {
            image,
            config: None,
            user_data: encode(empty),
            nodes,
        });
    }
    let request = |node: Option<u16>| RenderRequest {
        environment: env,
        units,
        node,
        ssh_public_key: secrets.ssh_public_key,
        etcd_discovery: secrets.etcd_discovery,
    };
    let mut nodes = Vec::with_capacity(usize::from(size));
    for index in 0..size {
        let request = request(Some(index));
        let config = ignition::build(&request).map(|c| ignition::to_json(&c))?;
        nodes.push(NodeLaunch {
            user_data: encode(ignition::fit(config)?.json),
            digest: digest(&ignition::comparable_json(&request)?),
        });
    }
    let config = if size > 0 {
        ignition::comparable_json(&request(Some(0)))?
    } else {
        ignition::build(&request(None)).map(|c| ignition::to_json(&c))?
    };
    let data = ignition::fit(config.clone())?;
    Ok(Machine {
        image,
        config: Some(config),
        user_data: encode(data.json),
        nodes,
    })
}
