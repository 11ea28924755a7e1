//! The environment model: parsing `environments/<name>.yaml` with positions, and the
//! semantic checks that run before any AWS call.

pub mod addressing;
pub mod catalogue;
mod locate;
pub mod model;
pub mod shape;
pub mod types;
mod validate;

use std::collections::BTreeSet;

use marked_yaml::{LoadError, LoaderOptions, Node as YamlNode};

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

/// A parsed file together with its YAML tree, kept for positions of later checks.
pub struct ParsedEnvironment {
    /// What the file says.
    pub spec: EnvironmentSpec,
    tree: YamlNode,
}

/// Parses one environment file. Syntax and type errors stop at the first one (YAML
/// cannot be read past them); each names `path:line:col`.
pub fn parse(path: &str, text: &str) -> Result<ParsedEnvironment, Vec<Diagnostic>> {
    if let Some(problem) = crate::diagnostic::too_large(path, text, "an environment file") {
        return Err(vec![problem]);
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let tree = marked_yaml::parse_yaml_with_options(0, text, options)
        .map_err(|e| vec![load_error(path, e)])?;
    let spec = marked_yaml::from_node::<EnvironmentSpec>(&tree)
        .map_err(|e| vec![serde_error(path, &tree, e.into_inner())])?;
    Ok(ParsedEnvironment { spec, tree })
}

/// Parses and checks one environment file. `units` is the set of unit names present in
/// `units/`, so that references are checked without reading the units themselves.
pub fn load(
    path: &str,
    text: &str,
    units: &BTreeSet<String>,
) -> Result<Environment, Vec<Diagnostic>> {
    let name = env_name_from_path(path)?;
    let parsed = parse(path, text)?;
    let (problems, cluster) = validate::check(&name, &parsed.spec, units);
    if problems.is_empty() {
        return Ok(Environment {
            name,
            path: path.to_owned(),
            spec: parsed.spec,
            cluster,
        });
    }
    Err(problems
        .into_iter()
        .map(|p| p.locate(path, &parsed.tree))
        .collect())
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

fn load_error(path: &str, error: LoadError) -> Diagnostic {
    match error {
        LoadError::TopLevelMustBeMapping(m) => Diagnostic::at(
            path,
            m.line(),
            Some(m.column()),
            "the file must be a mapping of keys",
        )
        .with_hint("start with `region:`, `network:` ...; see schema/environment.schema.json"),
        LoadError::TopLevelMustBeSequence(m) => {
            Diagnostic::at(path, m.line(), Some(m.column()), "unexpected sequence")
        }
        LoadError::UnexpectedAnchor(m) => Diagnostic::at(
            path,
            m.line(),
            Some(m.column()),
            "YAML anchors are not supported",
        )
        .with_hint("write the value out; environment files stay flat so a diff shows every change"),
        LoadError::MappingKeyMustBeScalar(m) => Diagnostic::at(
            path,
            m.line(),
            Some(m.column()),
            "mapping keys must be plain words",
        ),
        LoadError::UnexpectedTag(m) => Diagnostic::at(
            path,
            m.line(),
            Some(m.column()),
            "YAML tags (`!tag`) are not supported",
        )
        .with_hint("remove the tag"),
        LoadError::ScanError(m, e) => Diagnostic::at(
            path,
            m.line(),
            Some(m.column()),
            format!("YAML syntax error: {}", e.info()),
        )
        .with_hint("check indentation, colons and brackets around this position"),
        LoadError::DuplicateKey(inner) => {
            let at = inner.key.span().start().copied();
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            Diagnostic::at(
                path,
                at.map_or(0, |m| m.line()),
                at.map(|m| m.column()),
                format!("duplicate key `{}`", inner.key.as_str()),
            )
            .with_hint(format!("it is already set on line {first}; keep one"))
        }
    }
}

fn serde_error(path: &str, tree: &YamlNode, error: marked_yaml::Error) -> Diagnostic {
    use marked_yaml::Error;
    let mark = error
        .start_mark()
        .map(|m| locate::refine(tree, m))
        .or_else(|| locate::start_of(tree));
    let (line, column) = mark.map_or((1, Some(1)), |m| (m.line(), Some(m.column())));
    let (message, hint) = match &error {
        Error::UnknownFieldError(field, expected, _) => (
            format!("unknown key `{field}`"),
            Some(match expected.len() {
                0 => "this mapping takes no keys".to_owned(),
                _ => format!(
                    "expected one of {}",
                    expected
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        ),
        Error::NotBoolean(_) => ("expected true or false".to_owned(), None),
        Error::IntegerParseFailure(_, _) => ("expected a whole number in range".to_owned(), None),
        Error::FloatParseFailure(_, _) => ("expected a number".to_owned(), None),
        Error::Other(message, _) => split_hint(&humanise_serde(message)),
    };
    let diagnostic = Diagnostic::at(path, line, column, message);
    match hint {
        Some(h) => diagnostic.with_hint(h),
        None => diagnostic,
    }
}

/// serde's messages are precise but terse; reword the common ones for people.
fn humanise_serde(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!(
            "missing required key {rest}{HINT_SEPARATOR}add it here; schema/environment.schema.json lists every key"
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    message.to_owned()
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
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
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
