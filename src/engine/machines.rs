//! What an environment's machines are made of: the OS image, the SSH key, the etcd
//! discovery token, the rendered configs (in memory only), and the desired cluster and
//! node resources built from them.

use std::collections::BTreeMap;

use super::{EngineError, Target};
use crate::aws::AwsError;
use crate::aws::executor::Executor;
use crate::aws::images::{self, Image};
use crate::config::{Environment, ImageSource, Layer};
use crate::plan::cluster::Machine;
use crate::plan::spec::{Instance, LaunchTemplate};
use crate::plan::{self, Action};
use crate::units::UnitSet;

/// What apply needs to render an environment's configs again once it has fetched its
/// etcd discovery token (in memory only, like the key it holds).
#[derive(Debug, Clone)]
pub(super) struct PendingDiscovery {
    pub(super) environment: Environment,
    pub(super) units: UnitSet,
    pub(super) image: Image,
    pub(super) key: Option<crate::aws::secrets::SshPublicKey>,
}

/// True when strata manages this target's machines (cluster or node layer planned,
/// and a cluster section).
pub(super) fn manages_machines(t: &Target) -> bool {
    (t.layers.contains(&Layer::Cluster) || t.layers.contains(&Layer::Node))
        && t.environment
            .as_ref()
            .is_some_and(|e| e.spec.cluster.is_some())
}

/// What was read for each environment, and why it could not be for the others: one
/// environment's missing secret or unreachable feed stops only that environment.
#[derive(Debug)]
pub(super) struct PerEnvironment<T> {
    /// By environment.
    pub(super) found: BTreeMap<String, T>,
    /// By environment: why it could not be read.
    pub(super) failed: BTreeMap<String, EngineError>,
}

impl<T> Default for PerEnvironment<T> {
    fn default() -> Self {
        PerEnvironment {
            found: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }
}

/// The SSH keys of the targets whose machines strata manages, by secret (each secret
/// is read once per run, however many environments share it), and the environments
/// whose secret could not be read.
pub(super) async fn read_keys(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> (
    BTreeMap<String, crate::aws::secrets::SshPublicKey>,
    BTreeMap<String, EngineError>,
) {
    let mut read: BTreeMap<String, Result<crate::aws::secrets::SshPublicKey, AwsError>> =
        BTreeMap::new();
    let mut failed = BTreeMap::new();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        let Some(node) = t.environment.as_ref().and_then(|e| e.spec.node.as_ref()) else {
            continue;
        };
        let secret = &node.ssh.public_key_secret;
        if !read.contains_key(secret.as_str()) {
            let key = crate::aws::secrets::ssh_public_key(aws, secret).await;
            read.insert(secret.to_string(), key);
        }
        if let Err(e) = &read[secret.as_str()] {
            failed.insert(
                t.name.clone(),
                EngineError::from(e.clone()).of_environment(&t.name),
            );
        }
    }
    let keys = read
        .into_iter()
        .filter_map(|(secret, key)| Some((secret, key.ok()?)))
        .collect();
    (keys, failed)
}

/// The etcd discovery tokens of the targets whose machines strata manages and that
/// bootstrap etcd through discovery: `None` for one that has none yet.
pub(super) async fn read_discovery_tokens(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> PerEnvironment<Option<crate::aws::discovery::Token>> {
    let mut out = PerEnvironment::default();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        if t.environment.as_ref().is_some_and(uses_discovery) {
            match crate::aws::discovery::read(aws, &t.name).await {
                Ok(token) => {
                    out.found.insert(t.name.clone(), token);
                }
                Err(e) => {
                    out.failed
                        .insert(t.name.clone(), EngineError::from(e).of_environment(&t.name));
                }
            }
        }
    }
    out
}

fn uses_discovery(env: &Environment) -> bool {
    env.spec.node.as_ref().and_then(|n| n.etcd_bootstrap())
        == Some(crate::config::EtcdBootstrap::Discovery)
}

/// The number of members etcd discovery waits for.
fn member_count(env: &Environment) -> u16 {
    env.cluster.as_ref().map_or(0, |c| c.size.members())
}

/// What the plan says about an environment's etcd discovery token: that apply will
/// fetch one, or that the cluster's size no longer matches the one it was made for.
pub(super) fn discovery_note(
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
pub(super) async fn fetch_discovery_token(
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
    let tags = exec.tags(&plan::LogicalId::EtcdDiscovery, Layer::Node);
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
        plan::Spec::LaunchTemplate(LaunchTemplate { user_data, .. }) => {
            user_data.clone_from(&m.user_data)
        }
        plan::Spec::Instance(Instance {
            user_data, config, ..
        }) => {
            let node = r.id.node().and_then(|i| m.nodes.get(usize::from(i)));
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
pub(super) fn machine(
    env: &Environment,
    units: &UnitSet,
    image: Image,
    key: Option<&crate::aws::secrets::SshPublicKey>,
    discovery: Option<&str>,
) -> Result<Machine, EngineError> {
    let secrets = plan::machine::Secrets {
        ssh_public_key: key.map(|k| k.openssh()),
        etcd_discovery: discovery,
    };
    plan::machine::render(env, units, image, secrets).map_err(|e| EngineError::Render {
        env: env.name.to_string(),
        message: e.to_string(),
    })
}

/// The OS image of every target whose cluster layer is planned, looked up before any
/// write so a feed that is down or an image that is not the publisher's stops the run.
pub(super) async fn resolve_images(
    aws: &crate::aws::Aws,
    targets: &[&Target],
) -> PerEnvironment<Image> {
    let mut out = PerEnvironment::default();
    // Environments that ask for the same image share one lookup.
    let mut looked_up: BTreeMap<String, Result<Image, images::ImageError>> = BTreeMap::new();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        let Some(shape) = t.environment.as_ref().and_then(|e| e.cluster.as_ref()) else {
            continue;
        };
        let key = match &shape.image {
            ImageSource::Feed(os) => format!("{}|{:?}", images::feed_url(os), images::owners(os)),
            ImageSource::Pinned(ami) => ami.to_string(),
        };
        if !looked_up.contains_key(&key) {
            let image = match &shape.image {
                ImageSource::Feed(os) => images::resolve(aws, os).await,
                ImageSource::Pinned(ami) => images::pinned(aws, ami).await,
            };
            looked_up.insert(key.clone(), image);
        }
        match &looked_up[&key] {
            Ok(image) => {
                out.found.insert(t.name.clone(), image.clone());
            }
            Err(source) => {
                out.failed.insert(
                    t.name.clone(),
                    EngineError::Image {
                        env: t.name.clone(),
                        source: Box::new(source.clone()),
                    },
                );
            }
        }
    }
    out
}
