//! What a plan or apply works on: reads the repository (a checkout, or a commit
//! through git) and picks the environments and layers, explicitly or from what
//! changed. The command line and the GitHub Action share it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::changes::{self, ChangeKind, ChangeSet};
use crate::config::{self, Environment, Layer};
use crate::diagnostic::Diagnostics;
use crate::engine::{self, Target};
use crate::git::{Commit, GitError, GitRepo, GitSource};
use crate::repo;
use crate::units::UnitSet;

/// What was asked for: environments, layers and the commits to read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Environments by name (empty: all, or what changed).
    pub envs: Vec<String>,
    /// Layers (empty: all, or what changed).
    pub layers: Vec<Layer>,
    /// Work on what changed since this revision (needs `head`).
    pub base: Option<String>,
    /// The revision to make real; `None`: the checkout as it is on disk.
    pub head: Option<String>,
}

/// The targets of a plan or apply, the units they render, and the commit they come from.
#[derive(Debug, Clone)]
pub struct Work {
    /// Environments and layers to plan.
    pub targets: Vec<Target>,
    /// The repository's units.
    pub units: UnitSet,
    /// The commit the repository was read from (the checkout's `HEAD` when known).
    pub commit: Option<String>,
    /// For a plan made from a diff: the base commit's side, to tell the diff's own
    /// changes from drift.
    pub base: Option<engine::Base>,
    /// Every environment of the repository as read, by name (what a merge's
    /// selection since each last applied commit starts from).
    pub environments: BTreeMap<String, Environment>,
}

/// Why no targets could be picked.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The repository's files have problems; each is a [`Diagnostic`](crate::diagnostic::Diagnostic)
    /// at its path (prefixed with the commit when read from git).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// An environment asked for does not exist.
    #[error("no environment `{name}` in environments/ (found: {})", known.join(", "))]
    UnknownEnvironment {
        /// As asked for.
        name: String,
        /// The environments there are.
        known: Vec<String>,
    },
    /// The repository directory does not exist.
    #[error("{path}: no such directory")]
    NoDirectory {
        /// As given.
        path: String,
    },
    /// Reading the checkout failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The repository directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A revision was given but the directory is not a git repository.
    #[error("{path}: --head needs a git repository")]
    NotGit {
        /// The repository directory.
        path: String,
    },
    /// git could not answer.
    #[error(transparent)]
    Git(#[from] GitError),
}

impl From<engine::UnknownEnvironment> for SelectError {
    fn from(e: engine::UnknownEnvironment) -> SelectError {
        SelectError::UnknownEnvironment {
            name: e.name,
            known: e.known,
        }
    }
}

/// Reads and checks the checkout at `root` (not following links out of it).
pub fn read_checkout(root: &Path) -> Result<repo::RepoFiles, SelectError> {
    if !root.is_dir() {
        return Err(SelectError::NoDirectory {
            path: root.display().to_string(),
        });
    }
    repo::read_dir(root).map_err(|source| SelectError::Read {
        path: root.display().to_string(),
        source,
    })
}

/// Parses and checks a commit's files; problems name the commit.
pub fn load_commit(git: &GitRepo, commit: &Commit) -> Result<repo::Repository, SelectError> {
    repo::load(&git.files(commit)?).map_err(|diagnostics| {
        SelectError::Invalid(Diagnostics(
            diagnostics
                .0
                .into_iter()
                .map(|d| d.in_commit(&commit.reference.short))
                .collect(),
        ))
    })
}

/// Picks the targets of `selection` in the repository at `root`: the checkout (or the
/// `head` commit), every environment and layer asked for, or with `base` what changed
/// between `base` and `head` (removed environments as teardowns).
pub fn select(root: &Path, selection: &Selection) -> Result<Work, SelectError> {
    let git = GitRepo::open(root).ok();
    let Some(head_rev) = &selection.head else {
        let repository = repo::load(&read_checkout(root)?).map_err(SelectError::Invalid)?;
        let environments = by_name(repository.environments);
        let targets = engine::select(&environments, &selection.envs, &selection.layers)?;
        let commit = git
            .as_ref()
            .and_then(|g| g.commit("HEAD").ok())
            .map(|c| c.reference.id);
        return Ok(Work {
            targets,
            units: repository.units,
            commit,
            base: None,
            environments,
        });
    };
    let git = git.ok_or_else(|| SelectError::NotGit {
        path: root.display().to_string(),
    })?;
    let head = git.commit(head_rev)?;
    let repository = load_commit(&git, &head)?;
    let environments = by_name(repository.environments);
    let (targets, base) = match &selection.base {
        None => (
            engine::select(&environments, &selection.envs, &selection.layers)?,
            None,
        ),
        Some(base_rev) => {
            let base = git.commit(base_rev)?;
            let set = changed(&git, &base, &head)?;
            let removed = removed_environments(&git, &base, &set)?;
            let mut targets =
                engine::from_changes(&set, &environments, &removed, &selection.layers);
            if !selection.envs.is_empty() {
                targets.retain(|t| selection.envs.contains(&t.name));
            }
            (targets, Some(base_side(&git, &base)))
        }
    };
    Ok(Work {
        targets,
        units: repository.units,
        commit: Some(head.reference.id),
        base,
        environments,
    })
}

/// A base commit's environments and units, to tell a diff's own changes from drift.
/// A base whose files have problems of its own compares as empty: everything the head
/// declares is then the diff's.
pub fn base_side(git: &GitRepo, base: &Commit) -> engine::Base {
    match load_commit(git, base) {
        Ok(repository) => engine::Base {
            environments: by_name(repository.environments),
            units: repository.units,
        },
        Err(_) => engine::Base::default(),
    }
}

/// What changed between two commits.
pub fn changed(git: &GitRepo, base: &Commit, head: &Commit) -> Result<ChangeSet, SelectError> {
    let diff = git.diff(base, head)?;
    changes::detect(&diff, &mut GitSource { repo: git, head }).map_err(SelectError::Invalid)
}

/// The environments `set` reports removed, read from their last version in `base`
/// (their region and tags say where and what to tear down).
pub fn removed_environments(
    git: &GitRepo,
    base: &Commit,
    set: &ChangeSet,
) -> Result<BTreeMap<String, Environment>, SelectError> {
    let mut removed = BTreeMap::new();
    let base_envs = git.environments(base)?;
    for change in set
        .environments
        .iter()
        .filter(|c| c.change == ChangeKind::Removed)
    {
        if let Some(environment) = environment_in(git, &base_envs, &change.name)? {
            removed.insert(change.name.clone(), environment);
        }
    }
    Ok(removed)
}

/// Environment `name` as a commit's file had it, from that commit's `listing` of
/// environment files (`None`: no such file, or one that does not parse).
fn environment_in(
    git: &GitRepo,
    listing: &BTreeMap<String, gix::ObjectId>,
    name: &str,
) -> Result<Option<Environment>, GitError> {
    let path = format!("{}/{name}.yaml", repo::ENVIRONMENTS_DIR);
    let Some(id) = listing.get(&path) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&git.read(*id)?).into_owned();
    Ok(
        match (
            config::env_name_from_path(&path),
            config::parse(&path, &text),
        ) {
            (Ok(name), Ok(parsed)) => Some(Environment {
                name,
                path,
                spec: parsed.spec,
                cluster: None,
            }),
            _ => None,
        },
    )
}

/// Environments keyed by their name as text.
pub fn by_name(
    environments: BTreeMap<config::EnvName, Environment>,
) -> BTreeMap<String, Environment> {
    environments
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The targets of a merge: for each environment, the layers that changed since the
/// commit last applied to them (`last`, read from AWS), never since `push.before`.
/// An environment never applied is planned whole; one found in AWS whose file is
/// gone is a teardown when this repository applied it (its recorded commit is here
/// and held its file, which gives its tags). A recorded commit this clone does not
/// have plans every layer of its group.
pub fn since_applied(
    git: &GitRepo,
    head: &Commit,
    environments: &BTreeMap<String, Environment>,
    last: &BTreeMap<String, (String, crate::aws::applied::LastApplied)>,
) -> Result<Vec<Target>, SelectError> {
    use crate::aws::applied::Root;
    use std::collections::BTreeSet;
    let mut diffs: BTreeMap<String, Option<ChangeSet>> = BTreeMap::new();
    let mut changed_since = |commit: &str| -> Result<Option<ChangeSet>, SelectError> {
        if let Some(set) = diffs.get(commit) {
            return Ok(set.clone());
        }
        let set = match git.commit(commit) {
            Ok(base) => Some(changed(git, &base, head)?),
            Err(GitError::UnknownRevision { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        diffs.insert(commit.to_owned(), set.clone());
        Ok(set)
    };
    let mut targets = Vec::new();
    for (name, env) in environments {
        let layers: BTreeSet<Layer> = match last.get(name) {
            None => Layer::ALL.into_iter().collect(),
            Some((_, applied)) => {
                let mut layers = BTreeSet::new();
                for (root, group) in [
                    (&applied.network, &[Layer::Network][..]),
                    (&applied.machines, &[Layer::Cluster, Layer::Node][..]),
                ] {
                    let whole = match root {
                        Root::Missing | Root::Unrecorded => true,
                        Root::Commit(commit) => match changed_since(commit)? {
                            None => true,
                            Some(set) => {
                                layers.extend(
                                    set.environments
                                        .iter()
                                        .filter(|c| &c.name == name)
                                        .flat_map(|c| c.layers.iter().copied())
                                        .filter(|l| group.contains(l)),
                                );
                                false
                            }
                        },
                    };
                    // A group with nothing to manage (no cluster) stays out of the plan.
                    let manages = group.contains(&Layer::Network) || env.spec.cluster.is_some();
                    if whole && (manages || *root != Root::Missing) {
                        layers.extend(group.iter().copied());
                    }
                }
                layers
            }
        };
        if layers.is_empty() {
            continue;
        }
        // Every layer is planned: the plan holds what a plan of every layer would.
        targets.push(Target::new(
            name.clone(),
            Some(env.clone()),
            env,
            Layer::ALL.into_iter().collect(),
            layers,
        ));
    }
    for (name, (region, applied)) in last {
        if environments.contains_key(name) {
            continue;
        }
        // A teardown only of what this repository applied: the recorded commit is in
        // this clone and held the environment's file (another repository's
        // environments in the same account and region are not this one's to remove).
        let recorded = [&applied.network, &applied.machines]
            .into_iter()
            .find_map(|r| match r {
                Root::Commit(c) => Some(c.clone()),
                _ => None,
            });
        let Some(old) = recorded
            .and_then(|c| git.commit(&c).ok())
            .and_then(|c| git.environments(&c).ok())
            .and_then(|listing| environment_in(git, &listing, name).ok().flatten())
        else {
            continue;
        };
        let mut target = Target::new(
            name.clone(),
            None,
            &old,
            Layer::ALL.into_iter().collect(),
            Layer::ALL.into_iter().collect(),
        );
        // Torn down where it was found.
        target.region = region.clone();
        targets.push(target);
    }
    Ok(targets)
}

/// Where a drift check looks for environments whose file is gone: `default` (the
/// job's region) and the regions of the history of the repository at `root` (none
/// when it is not a git repository).
pub fn orphan_regions(root: &Path, default: Option<String>) -> Result<Vec<String>, GitError> {
    let mut regions: Vec<String> = default.into_iter().collect();
    if let Ok(git) = GitRepo::open(root) {
        regions.extend(history_regions(&git)?);
    }
    Ok(regions)
}

/// How many commits back [`history_regions`] looks.
const HISTORY_DEPTH: usize = 500;

/// The regions of every environment file in the first-parent history of `HEAD` (up to
/// [`HISTORY_DEPTH`] commits): where environments whose file is gone may have been
/// applied. Each blob is read once; a file that does not parse is passed over, and a
/// shallow clone's history ends where it does.
pub fn history_regions(git: &GitRepo) -> Result<std::collections::BTreeSet<String>, GitError> {
    let mut regions = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut commit = git.commit("HEAD")?;
    for _ in 0..HISTORY_DEPTH {
        for (path, blob) in git.environments(&commit)? {
            if !seen.insert(blob) {
                continue;
            }
            let text = String::from_utf8_lossy(&git.read(blob)?).into_owned();
            if let Ok(parsed) = config::parse(&path, &text) {
                regions.insert(parsed.spec.region.to_string());
            }
        }
        // A shallow clone ends where its history does.
        match git
            .first_parent(&commit)
            .ok()
            .flatten()
            .map(|p| git.commit(&p))
        {
            Some(Ok(parent)) => commit = parent,
            _ => break,
        }
    }
    Ok(regions)
}
