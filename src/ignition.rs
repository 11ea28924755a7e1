//! The node layer's user data: an Ignition spec 3.3.0 config.
//!
//! Pure: the model, the units and (when known) the SSH key go in, JSON comes out.
//! Raw EC2 user data must fit 16,384 bytes; a larger config is shipped gzipped inside
//! a small `ignition.config.replace` wrapper, verified by its sha512.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;

use base64::Engine as _;
use ignition_config::v3_3 as ign;
use sha2::{Digest, Sha512};

use crate::config::addressing;
use crate::config::{Environment, EtcdBootstrap, FsFormat, Size};
use crate::units::UnitSet;

/// EC2 accepts at most this many bytes of user data (before base64).
pub const USER_DATA_LIMIT: usize = 16_384;

/// Where the node layer writes per-environment values for units to read.
pub const CLUSTER_ENV_PATH: &str = "/etc/strata/cluster.env";

/// The Ignition spec version strata emits.
pub const SPEC_VERSION: &str = "3.3.0";

/// What to render.
#[derive(Debug, Clone, Copy)]
pub struct RenderRequest<'a> {
    /// The environment.
    pub environment: &'a Environment,
    /// The repository's units.
    pub units: &'a UnitSet,
    /// Node index, required for fixed clusters and refused for auto-scaling groups.
    pub node: Option<u16>,
    /// The OpenSSH public key for the login user, when fetched.
    pub ssh_public_key: Option<&'a str>,
    /// The etcd discovery URL, when the environment uses discovery and it is known.
    pub etcd_discovery: Option<&'a str>,
}

/// Rendered user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The exact bytes to hand to EC2.
    pub json: String,
    /// Size of the full config before any wrapping.
    pub full_size: usize,
    /// True when `json` is the gzip wrapper around the full config.
    pub wrapped: bool,
}

/// Why a config cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The environment has no `node:` section.
    #[error("environment `{0}` has no node section to render")]
    NoNode(String),
    /// A fixed cluster renders one config per node.
    #[error("environment `{env}` is a fixed cluster of {size}: choose a node with --node 0..{last}", last = size - 1)]
    NodeRequired {
        /// Environment.
        env: String,
        /// Cluster size.
        size: u16,
    },
    /// Index past the cluster's size.
    #[error("node {index} does not exist: environment `{env}` has nodes 0..{last}", last = size - 1)]
    NodeOutOfRange {
        /// Environment.
        env: String,
        /// Requested index.
        index: u16,
        /// Cluster size.
        size: u16,
    },
    /// Auto-scaling nodes are interchangeable.
    #[error(
        "environment `{0}` is an auto-scaling group: its nodes share one config, so --node does not apply"
    )]
    NodeNotApplicable(String),
    /// Even gzipped, the config is over the EC2 limit.
    #[error(
        "the Ignition config is {full} bytes and its gzip wrapper {wrapped} bytes; EC2 user data is limited to {USER_DATA_LIMIT} bytes"
    )]
    TooLarge {
        /// Uncompressed size.
        full: usize,
        /// Size of the gzip wrapper.
        wrapped: usize,
    },
}

/// The per-node values a fixed cluster knows offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Index 0..size.
    pub index: u16,
    /// Deterministic private address.
    pub address: Ipv4Addr,
}

/// Renders the user data for one node (fixed) or for every node (auto-scaling).
pub fn render(request: &RenderRequest) -> Result<UserData, RenderError> {
    fit(to_json(&build(request)?))
}

/// Compact JSON without the `null` fields the schema types carry, so the user data
/// holds only what strata sets.
pub fn to_json(config: &ign::Config) -> String {
    fn strip_nulls(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(strip_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    // Serialising plain structs with string keys cannot fail.
    let mut value = serde_json::to_value(config).expect("Ignition config serialises");
    strip_nulls(&mut value);
    value.to_string()
}

/// The full (unwrapped) Ignition config.
pub fn build(request: &RenderRequest) -> Result<ign::Config, RenderError> {
    build_with(request, Membership::Included)
}

/// The config as a running node of a fixed-size cluster is compared: without the
/// member list (`STRATA_CLUSTER_SIZE`, `ETCD_INITIAL_CLUSTER`). A node reads those at
/// first boot only, so growing or shrinking the cluster launches or removes nodes
/// but does not replace the ones that run.
pub fn comparable_json(request: &RenderRequest) -> Result<String, RenderError> {
    build_with(request, Membership::Omitted).map(|c| to_json(&c))
}

/// Whether `cluster.env` lists the cluster's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Included,
    Omitted,
}

/// Which node `--node` asks for, checked against the cluster before anything is read:
/// a fixed cluster's index (with its address), none for a group.
pub fn node_identity(
    env: &Environment,
    node: Option<u16>,
) -> Result<Option<NodeIdentity>, RenderError> {
    let name = env.name.as_str();
    let (Some(_), Some((cluster, shape))) = (&env.spec.node, env.machines()) else {
        return Err(RenderError::NoNode(name.to_owned()));
    };
    Ok(match (shape.size.fixed(), node) {
        (Some(size), None) => {
            return Err(RenderError::NodeRequired {
                env: name.to_owned(),
                size,
            });
        }
        (Some(size), Some(index)) => {
            let placement = (index < size)
                .then(|| addressing::node_placement(&env.spec.network, cluster.subnets, index))
                .flatten();
            let Some((_, address)) = placement else {
                return Err(RenderError::NodeOutOfRange {
                    env: name.to_owned(),
                    index,
                    size,
                });
            };
            Some(NodeIdentity { index, address })
        }
        (None, Some(_)) => {
            return Err(RenderError::NodeNotApplicable(name.to_owned()));
        }
        (None, None) => None,
    })
}

fn build_with(request: &RenderRequest, membership: Membership) -> Result<ign::Config, RenderError> {
    let env = request.environment;
    let name = env.name.as_str();
    let (Some(node), Some((cluster, _))) = (&env.spec.node, env.machines()) else {
        return Err(RenderError::NoNode(name.to_owned()));
    };
    let identity = node_identity(env, request.node)?;

    let mut config = ign::Config::default();

    let mut user = ign::User::new(node.ssh.user.to_string());
    user.ssh_authorized_keys = request.ssh_public_key.map(|k| vec![k.trim().to_owned()]);
    config.passwd = Some(ign::Passwd {
        users: Some(vec![user]),
        groups: None,
    });

    let mut env_file = ign::File::new(CLUSTER_ENV_PATH.to_owned());
    env_file.mode = Some(0o644);
    env_file.overwrite = Some(true);
    env_file.contents = Some(ign::Resource {
        source: Some(data_url(&env_file_text(request, identity, membership))),
        ..Default::default()
    });
    let mut storage = ign::Storage {
        files: Some(vec![env_file]),
        ..Default::default()
    };
    if let Some(volume) = &cluster.data_volume {
        let mut fs = ign::Filesystem::new(volume.device.clone());
        fs.format = Some(
            match volume.format {
                FsFormat::Xfs => "xfs",
                FsFormat::Ext4 => "ext4",
            }
            .to_owned(),
        );
        fs.label = Some(volume.label.clone());
        // Keep the data of a volume that already has this filesystem.
        fs.wipe_filesystem = Some(false);
        storage.filesystems = Some(vec![fs]);
    }
    config.storage = Some(storage);

    let units = node
        .units
        .iter()
        .filter_map(|n| request.units.get(n))
        .map(|u| {
            let mut unit = ign::Unit::new(u.name.clone());
            unit.contents = u.contents.clone();
            unit.enabled = u.enabled().then_some(true);
            if !u.dropins.is_empty() {
                unit.dropins = Some(
                    u.dropins
                        .iter()
                        .map(|d| ign::Dropin {
                            name: d.name.clone(),
                            contents: Some(d.contents.clone()),
                        })
                        .collect(),
                );
            }
            unit
        })
        .collect();
    config.systemd = Some(ign::Systemd { units: Some(units) });
    Ok(config)
}

/// `/etc/strata/cluster.env`: what units read through `EnvironmentFile=`.
pub fn cluster_env(request: &RenderRequest, identity: Option<NodeIdentity>) -> String {
    env_file_text(request, identity, Membership::Included)
}

fn env_file_text(
    request: &RenderRequest,
    identity: Option<NodeIdentity>,
    membership: Membership,
) -> String {
    let env = request.environment;
    let name = env.name.as_str();
    let mut lines: Vec<(String, String)> = vec![
        ("STRATA_ENVIRONMENT".into(), name.to_owned()),
        ("STRATA_REGION".into(), env.spec.region.to_string()),
    ];
    let Some((cluster, shape)) = env.machines() else {
        return String::new();
    };
    let size = shape.size.members();
    lines.push((
        "STRATA_CLUSTER_MODE".into(),
        match shape.size {
            Size::Fixed(_) => "fixed",
            Size::Autoscaling { .. } => "autoscaling",
        }
        .into(),
    ));
    if membership == Membership::Included {
        lines.push(("STRATA_CLUSTER_SIZE".into(), size.to_string()));
    }
    if let Some(id) = identity {
        lines.push(("STRATA_NODE_INDEX".into(), id.index.to_string()));
        lines.push(("STRATA_NODE_IP".into(), id.address.to_string()));
    }
    if let Some(etcd) = env.spec.node.as_ref().and_then(|n| n.etcd.as_ref()) {
        match etcd.bootstrap {
            EtcdBootstrap::Static => {
                let members: Vec<String> = (0..size)
                    .filter_map(|i| {
                        addressing::node_placement(&env.spec.network, cluster.subnets, i)
                            .map(|(_, ip)| format!("{name}-{i}=http://{ip}:2380"))
                    })
                    .collect();
                if let Some(id) = identity {
                    lines.push(("ETCD_NAME".into(), format!("{name}-{}", id.index)));
                }
                if membership == Membership::Included {
                    lines.push(("ETCD_INITIAL_CLUSTER".into(), members.join(",")));
                }
                lines.push(("ETCD_INITIAL_CLUSTER_STATE".into(), "new".into()));
                lines.push(("ETCD_INITIAL_CLUSTER_TOKEN".into(), name.to_owned()));
            }
            EtcdBootstrap::Discovery => {
                if let Some(url) = request.etcd_discovery {
                    lines.push(("ETCD_DISCOVERY".into(), url.to_owned()));
                }
            }
        }
    }
    if let Some(node) = &env.spec.node {
        lines.extend(
            node.environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );
    }
    let mut out = format!(
        "# Written by strata for environment {name}. Do not edit: the next rollout replaces it.\n"
    );
    for (k, v) in lines {
        let _ = writeln!(out, "{k}={}", quote_env_value(&v));
    }
    out
}

/// Quotes a value the way systemd's `EnvironmentFile=` reads it back unchanged.
fn quote_env_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.,:/=@%+-".contains(c));
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// An RFC 2397 `data:` URL with percent-encoded text.
pub fn data_url(text: &str) -> String {
    let mut out = String::from("data:,");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Returns `json` as is when it fits; otherwise the gzip wrapper, or an error with both
/// sizes when even that is over the limit.
pub fn fit(json: String) -> Result<UserData, RenderError> {
    let full_size = json.len();
    if full_size <= USER_DATA_LIMIT {
        return Ok(UserData {
            json,
            full_size,
            wrapped: false,
        });
    }
    let wrapper = wrap(&json);
    if wrapper.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            full: full_size,
            wrapped: wrapper.len(),
        });
    }
    Ok(UserData {
        json: wrapper,
        full_size,
        wrapped: true,
    })
}

/// A config whose `ignition.config.replace` carries `json` gzipped in a data URL.
fn wrap(json: &str) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    gz.write_all(json.as_bytes()).expect("gzip into memory");
    let compressed = gz.finish().expect("gzip into memory");
    let hash = Sha512::digest(json.as_bytes());
    let mut hex = String::with_capacity(128);
    for b in hash {
        let _ = write!(hex, "{b:02x}");
    }
    let mut config = ign::Config::default();
    config.ignition.config = Some(ign::IgnitionConfig {
        merge: None,
        replace: Some(ign::Resource {
            compression: Some("gzip".to_owned()),
            http_headers: None,
            source: Some(format!(
                "data:;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(compressed)
            )),
            // Ignition checks the hash of the decompressed config.
            verification: Some(ign::Verification {
                hash: Some(format!("sha512-{hex}")),
            }),
        }),
    });
    to_json(&config)
}

/// Reads user data back: unwraps a gzip `replace` wrapper to the full config JSON.
/// Used by tests and, later, by the node layer's plan to diff against what is live.
pub fn unwrap(user_data: &str) -> Result<String, String> {
    let config: ign::Config =
        serde_json::from_str(user_data).map_err(|e| format!("not an Ignition config: {e}"))?;
    let Some(replace) = config.ignition.config.and_then(|c| c.replace) else {
        return Ok(user_data.to_owned());
    };
    let source = replace.source.ok_or("replace has no source")?;
    let payload = source
        .strip_prefix("data:;base64,")
        .ok_or("replace source is not a base64 data URL")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| format!("bad base64: {e}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .map_err(|e| format!("bad gzip: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted_only_when_needed() {
        assert_eq!(quote_env_value("info"), "info");
        assert_eq!(quote_env_value("a b"), "\"a b\"");
        assert_eq!(quote_env_value("x\"$y"), "\"x\\\"\\$y\"");
        assert_eq!(quote_env_value(""), "\"\"");
    }

    #[test]
    fn data_urls_percent_encode_everything_but_unreserved() {
        assert_eq!(data_url("A=b c\n"), "data:,A%3Db%20c%0A");
    }

    #[test]
    fn oversized_configs_are_wrapped_and_round_trip() {
        let big = serde_json::json!({"ignition": {"version": "3.3.0"}, "pad": "x".repeat(40_000)})
            .to_string();
        let data = fit(big.clone()).unwrap();
        assert!(data.wrapped && data.json.len() <= USER_DATA_LIMIT);
        assert_eq!(unwrap(&data.json).unwrap(), big);
    }
}
