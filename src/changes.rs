//! Which environments and layers changed between two commits.
//!
//! Pure: it works on a [`CommitDiff`] (the files whose blob id differs between the
//! two commits) and a [`Source`] that reads blobs and listings on demand. Files whose
//! blob did not change are never read, so the cost follows what changed. Environment
//! files are compared by parsed value, not text: a comment, key order or formatting
//! edit is no change. Units are installed verbatim, so any edit of a unit file is a
//! node change for every environment that lists the unit.

use std::collections::{BTreeMap, BTreeSet};

/// Git object ids, as listed by the git adapter.
pub use gix::ObjectId;
use serde::Serialize;

use crate::config::{self, EnvironmentSpec, Layer};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::units;

/// A commit as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRef {
    /// Full id.
    pub id: String,
    /// Abbreviated id for messages.
    pub short: String,
}

/// A file whose blob differs between the two commits (`None`: absent there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `environments/<name>.yaml`, or a path relative to `units/`.
    pub path: String,
    /// Blob in the base commit.
    pub old: Option<ObjectId>,
    /// Blob in the head commit.
    pub new: Option<ObjectId>,
}

/// The files strata reads that differ between two commits.
#[derive(Debug, Clone)]
pub struct CommitDiff {
    /// The older commit.
    pub base: CommitRef,
    /// The newer commit.
    pub head: CommitRef,
    /// Changed environment files.
    pub environments: Vec<FileChange>,
    /// Changed unit files and drop-ins.
    pub unit_files: Vec<FileChange>,
}

/// Reads what change detection needs beyond the diff, only when it needs it.
pub trait Source {
    /// One blob's bytes.
    fn read(&mut self, id: ObjectId) -> Result<Vec<u8>, String>;
    /// Every environment file of the head commit (needed only when a unit changed).
    fn head_environments(&mut self) -> Result<BTreeMap<String, ObjectId>, String>;
    /// The unit names of the head commit (to check references of changed environments).
    fn head_unit_names(&mut self) -> Result<BTreeSet<String>, String>;
}

/// What happened to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The file is new: every layer is to be created.
    Added,
    /// The file is gone: a teardown, which apply performs only with explicit consent.
    Removed,
    /// Some layers changed.
    Modified,
}

/// Why a layer is in the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The layer.
    pub layer: Layer,
    /// A short sentence, e.g. `network changed in environments/etcd.yaml`.
    pub because: String,
}

/// One environment's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentChange {
    /// Environment name.
    pub name: String,
    /// Added, removed or modified.
    pub change: ChangeKind,
    /// Changed layers in apply order (for a removal: the layers to tear down).
    pub layers: Vec<Layer>,
    /// Why each layer is listed.
    pub reasons: Vec<Reason>,
}

/// The answer of `strata changes`: stable JSON (see README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// Base commit id.
    pub base: String,
    /// Head commit id.
    pub head: String,
    /// Changed environments, by name; unchanged ones are left out.
    pub environments: Vec<EnvironmentChange>,
}

/// Detection state: the diff, the source, and what was found wrong on the way.
struct Detector<'a> {
    diff: &'a CommitDiff,
    source: &'a mut dyn Source,
    problems: Vec<Diagnostic>,
    head_unit_names: Option<BTreeSet<String>>,
}

/// Compares two commits. Errors in files that had to be read are all reported, each
/// path prefixed with the commit it was read from.
pub fn detect(diff: &CommitDiff, source: &mut dyn Source) -> Result<ChangeSet, Diagnostics> {
    let mut d = Detector {
        diff,
        source,
        problems: Vec::new(),
        head_unit_names: None,
    };
    let changed_units = d.changed_units();
    let mut changes = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &diff.environments {
        seen.insert(file.path.clone());
        let name = match config::env_name_from_path(&file.path) {
            Ok(name) => name.to_string(),
            Err(e) => {
                // A removed file with a bad name was never an environment strata applied.
                if file.new.is_some() {
                    let head = diff.head.short.clone();
                    d.problems.extend(e.into_iter().map(|p| p.in_commit(&head)));
                }
                continue;
            }
        };
        let path = &file.path;
        match (file.old, file.new) {
            (None, Some(id)) => {
                if d.load_head(path, id).is_some() {
                    changes.push(EnvironmentChange {
                        name,
                        change: ChangeKind::Added,
                        layers: Layer::ALL.to_vec(),
                        reasons: vec![Reason {
                            layer: Layer::Network,
                            because: format!("{path} was added"),
                        }],
                    });
                }
            }
            (Some(_), None) => changes.push(EnvironmentChange {
                name,
                change: ChangeKind::Removed,
                layers: Layer::ALL.iter().rev().copied().collect(),
                reasons: vec![Reason {
                    layer: Layer::Network,
                    because: format!("{path} was removed"),
                }],
            }),
            (Some(old_id), Some(new_id)) => {
                let old = d.parse_base(path, old_id);
                let new = d.load_head(path, new_id);
                if let (Some(old), Some(new)) = (&old, &new) {
                    let mut reasons = layer_reasons(path, old, new);
                    reasons.extend(unit_reasons(new, &changed_units));
                    if !reasons.is_empty() {
                        changes.push(modified(name, reasons));
                    }
                }
            }
            (None, None) => {}
        }
    }
    // A changed unit matters to every unchanged environment whose head version lists it.
    if !changed_units.is_empty() {
        match d.source.head_environments() {
            Ok(all) => {
                let finders: Vec<_> = changed_units
                    .iter()
                    .map(|u| memchr::memmem::Finder::new(u.as_bytes()))
                    .collect();
                for (path, id) in all.iter().filter(|(p, _)| !seen.contains(*p)) {
                    if !d.mentions_any(*id, &finders) {
                        continue;
                    }
                    let Ok(name) = config::env_name_from_path(path) else {
                        continue;
                    };
                    if let Some(spec) = d.load_head(path, *id) {
                        let reasons = unit_reasons(&spec, &changed_units);
                        if !reasons.is_empty() {
                            changes.push(modified(name.to_string(), reasons));
                        }
                    }
                }
            }
            Err(e) => d
                .problems
                .push(Diagnostic::file("environments", e).in_commit(&diff.head.short)),
        }
    }
    if !d.problems.is_empty() {
        return Err(d.problems.into());
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ChangeSet {
        base: diff.base.id.clone(),
        head: diff.head.id.clone(),
        environments: changes,
    })
}

fn modified(name: String, reasons: Vec<Reason>) -> EnvironmentChange {
    let layers: BTreeSet<Layer> = reasons.iter().map(|r| r.layer).collect();
    EnvironmentChange {
        name,
        change: ChangeKind::Modified,
        layers: layers.into_iter().collect(),
        reasons,
    }
}

fn unit_reasons(spec: &EnvironmentSpec, changed_units: &BTreeSet<String>) -> Vec<Reason> {
    spec.node
        .iter()
        .flat_map(|n| &n.units)
        .filter(|u| changed_units.contains(*u))
        .map(|unit| Reason {
            layer: Layer::Node,
            because: format!("unit {unit} changed"),
        })
        .collect()
}

/// Layers whose parsed values differ. Region and tags touch every resource, so they
/// change every layer.
fn layer_reasons(path: &str, old: &EnvironmentSpec, new: &EnvironmentSpec) -> Vec<Reason> {
    let everything = |what: &str| {
        Layer::ALL
            .iter()
            .map(|&layer| Reason {
                layer,
                because: format!("{what} changed in {path}"),
            })
            .collect()
    };
    if old.region != new.region {
        return everything("region");
    }
    if old.tags != new.tags {
        return everything("tags");
    }
    let mut reasons = Vec::new();
    if old.network != new.network {
        reasons.push(Reason {
            layer: Layer::Network,
            because: format!("network changed in {path}"),
        });
    }
    if old.cluster != new.cluster {
        reasons.push(Reason {
            layer: Layer::Cluster,
            because: format!("cluster changed in {path}"),
        });
    }
    if old.node != new.node {
        reasons.push(Reason {
            layer: Layer::Node,
            because: format!("node changed in {path}"),
        });
    }
    reasons
}

impl Detector<'_> {
    fn read(&mut self, path: &str, id: ObjectId, commit: &str) -> Option<Vec<u8>> {
        match self.source.read(id) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problems
                    .push(Diagnostic::file(path, e).in_commit(commit));
                None
            }
        }
    }

    /// Cheap pre-filter before parsing an unchanged environment: its bytes must contain
    /// a changed unit's name for it to list that unit. Parsing then decides.
    fn mentions_any(&mut self, id: ObjectId, names: &[memchr::memmem::Finder]) -> bool {
        let Ok(bytes) = self.source.read(id) else {
            return true;
        };
        names.iter().any(|finder| finder.find(&bytes).is_some())
    }

    /// The base version only needs to parse: it is compared, not applied.
    fn parse_base(&mut self, path: &str, id: ObjectId) -> Option<EnvironmentSpec> {
        let commit = self.diff.base.short.clone();
        let bytes = self.read(path, id, &commit)?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.problems
                .push(Diagnostic::file(path, "not UTF-8 text").in_commit(&commit));
            return None;
        };
        match config::parse(path, text) {
            Ok(parsed) => Some(parsed.spec),
            Err(e) => {
                self.problems
                    .extend(e.into_iter().map(|d| d.in_commit(&commit)));
                None
            }
        }
    }

    /// The head version is fully checked: it is what would be applied.
    fn load_head(&mut self, path: &str, id: ObjectId) -> Option<EnvironmentSpec> {
        let commit = self.diff.head.short.clone();
        let bytes = self.read(path, id, &commit)?;
        if self.head_unit_names.is_none() {
            match self.source.head_unit_names() {
                Ok(names) => self.head_unit_names = Some(names),
                Err(e) => {
                    self.problems
                        .push(Diagnostic::file("units", e).in_commit(&commit));
                    return None;
                }
            }
        }
        let names = self.head_unit_names.as_ref()?;
        match crate::repo::load_environment(path, &bytes, names) {
            Ok(env) => Some(env.spec),
            Err(e) => {
                self.problems
                    .extend(e.into_iter().map(|d| d.in_commit(&commit)));
                None
            }
        }
    }

    /// Parses one unit file or drop-in as of one commit.
    fn unit_sections(
        &mut self,
        path: &str,
        id: ObjectId,
        commit: &str,
    ) -> Option<Vec<units::Section>> {
        let full = format!("units/{path}");
        let bytes = self.read(&full, id, commit)?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.problems
                .push(Diagnostic::file(&full, "not UTF-8 text").in_commit(commit));
            return None;
        };
        match units::parse(&full, text) {
            Ok(sections) => Some(sections),
            Err(e) => {
                self.problems
                    .extend(e.into_iter().map(|d| d.in_commit(commit)));
                None
            }
        }
    }

    /// Units with a file that changed, was added or was removed. Units are installed
    /// verbatim, so any byte changed (a comment included) changes what the machines
    /// boot with; a head file that does not parse is reported.
    fn changed_units(&mut self) -> BTreeSet<String> {
        let head = self.diff.head.short.clone();
        let mut changed = BTreeSet::new();
        for file in &self.diff.unit_files {
            let unit = match units::classify(&file.path) {
                Ok(class) => class.unit().to_owned(),
                Err(e) => {
                    if file.new.is_some() {
                        self.problems.push(
                            Diagnostic::file(format!("units/{}", file.path), e).in_commit(&head),
                        );
                    }
                    continue;
                }
            };
            if let Some(new) = file.new {
                self.unit_sections(&file.path, new, &head);
            }
            changed.insert(unit);
        }
        changed
    }
}

/// Plain-text rendering for the terminal.
pub fn render_text(set: &ChangeSet) -> String {
    if set.environments.is_empty() {
        return format!(
            "no environment changed between {} and {}\n",
            short(&set.base),
            short(&set.head)
        );
    }
    let width = set
        .environments
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for env in &set.environments {
        let (kind, layers) = match env.change {
            ChangeKind::Added => ("added", "network, cluster, node".to_owned()),
            ChangeKind::Removed => (
                "removed",
                "teardown: apply needs --allow-destroy".to_owned(),
            ),
            ChangeKind::Modified => (
                "modified",
                env.layers
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        out.push_str(&format!("{:width$}  {kind:8}  {layers}\n", env.name));
        if env.change == ChangeKind::Modified {
            for reason in &env.reasons {
                out.push_str(&format!(
                    "{:width$}    {}: {}\n",
                    "", reason.layer, reason.because
                ));
            }
        }
    }
    out
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}
