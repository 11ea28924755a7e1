//! The environment model: parsing `environments/<name>.yaml` with positions, and the
//! semantic checks that run before any AWS call.

pub mod addressing;
pub mod catalogue;
mod locate;
pub mod model;
mod read;
pub mod shape;
pub mod types;
mod validate;

use std::collections::BTreeSet;

use crate::diagnostic::Diagnostic;
pub use locate::PathSeg;
pub use model::*;
pub use shape::{ClusterShape, ImageSource, Size};
pub use types::*;
pub use validate::listener_target;

/// One parsed and validated environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The name, from the file stem.
    pub name: EnvName,
    /// The file, relative to the repository root.
    pub path: String,
    /// What the file says.
    pub spec: EnvironmentSpec,
    /// Its cluster as validation proved it (`None` without a cluster, or for a file
    /// read back only to tear its environment down).
    pub cluster: Option<ClusterShape>,
}

impl Environment {
    /// Its cluster section with the shape validation proved, when it has one.
    pub fn machines(&self) -> Option<(&Cluster, &ClusterShape)> {
        Some((self.spec.cluster.as_ref()?, self.cluster.as_ref()?))
    }
}

/// A parsed file (its semantic checks not run).
pub struct ParsedEnvironment {
    /// What the file says.
    pub spec: EnvironmentSpec,
}

/// Parses one environment file, reporting every problem of its text, syntax and types
/// at once (every unknown key and every bad value), each at `path:line:col`.
pub fn parse(path: &str, text: &str) -> Result<ParsedEnvironment, Vec<Diagnostic>> {
    match read::read(path, text).finish(Vec::new()) {
        (Some(spec), problems) if problems.is_empty() => Ok(ParsedEnvironment { spec }),
        (_, problems) => Err(problems),
    }
}

/// Parses and checks one environment file. `units` is the set of unit names present in
/// `units/`, so that references are checked without reading the units themselves.
///
/// Reports every problem at once: those of the file's name, text, syntax and types,
/// and the semantic ones of the sections that parsed whole (with the sections they
/// depend on), since checking the others would raise false alarms.
pub fn load(
    path: &str,
    text: &str,
    units: &BTreeSet<String>,
) -> Result<Environment, Vec<Diagnostic>> {
    let name = env_name_from_path(path);
    let reading = read::read(path, text);
    let mut semantic = Vec::new();
    let mut cluster = None;
    if let (Ok(name), Some(spec), Some(tree)) = (&name, &reading.spec, &reading.tree) {
        let (problems, shape) = validate::check(name, spec, units);
        cluster = shape;
        semantic = problems
            .into_iter()
            .filter(|p| reading.trusts(&p.path))
            .map(|p| p.locate(path, tree))
            .collect();
    }
    let (spec, mut problems) = reading.finish(semantic);
    match (name, spec) {
        (Ok(name), Some(spec)) if problems.is_empty() => Ok(Environment {
            name,
            path: path.to_owned(),
            spec,
            cluster,
        }),
        (name, _) => {
            problems.extend(name.err().into_iter().flatten());
            Err(problems)
        }
    }
}

/// The environment name for `environments/<name>.yaml`.
pub fn env_name_from_path(path: &str) -> Result<EnvName, Vec<Diagnostic>> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.strip_suffix(".yaml").unwrap_or(file);
    EnvName::try_from(stem.to_owned()).map_err(|e| {
        let (message, hint) = split_hint(&e);
        vec![
            Diagnostic::file(path, format!("file name: {message}"))
                .with_hint(hint.unwrap_or_default()),
        ]
    })
}

fn split_hint(message: &str) -> (String, Option<String>) {
    match message.split_once(HINT_SEPARATOR) {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (message.to_owned(), None),
    }
}

/// Logical ids and AWS names derived from an environment, shared by validation and
/// the AWS adapters so a name checked here is the name created there.
pub mod names {
    /// `Name` tag and most AWS names: `<environment>-<id>`.
    pub fn resource(env: &str, id: &str) -> String {
        format!("{env}-{id}")
    }

    /// A load balancer's AWS name (at most 32 characters).
    pub fn load_balancer(env: &str, lb: &str) -> String {
        format!("{env}-{lb}")
    }

    /// A target group's AWS name (at most 32 characters).
    pub fn target_group(env: &str, lb: &str, port: u16) -> String {
        format!("{env}-{lb}-{port}")
    }

    /// The launch template's name: the environment's (at most 128 characters; an
    /// environment name is far shorter and uses only characters AWS accepts here).
    pub fn launch_template(env: &str) -> String {
        env.to_owned()
    }

    /// The auto-scaling group's name: the environment's.
    pub fn auto_scaling_group(env: &str) -> String {
        env.to_owned()
    }

    /// The Secrets Manager secret holding an environment's etcd discovery token.
    pub fn etcd_discovery_secret(env: &str) -> String {
        format!("strata/{env}/etcd-discovery")
    }

    /// The Secrets Manager secret that is an environment's apply lock.
    pub fn apply_lock_secret(env: &str) -> String {
        format!("strata/{env}/apply-lock")
    }

    /// The longest name ELBv2 accepts for load balancers and target groups.
    pub const ELB_NAME_MAX: usize = 32;
}

/// The three layers of an environment, in apply order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// VPC, subnets, gateways, routes, security groups, load balancers.
    Network,
    /// Launch template and instances or auto-scaling group.
    Cluster,
    /// The Ignition config the instances boot with.
    Node,
}

impl Layer {
    /// All layers in apply order.
    pub const ALL: [Layer; 3] = [Layer::Network, Layer::Cluster, Layer::Node];

    /// The lowercase name used in tags, flags and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Network => "network",
            Layer::Cluster => "cluster",
            Layer::Node => "node",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
