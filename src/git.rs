//! The git adapter: reads commits' trees with gix (no `git` binary needed).
//!
//! Comparing two commits walks both trees side by side and skips every subtree and
//! blob whose id is unchanged, so the cost follows what changed, not the size of the
//! repository. Blobs are read only when the core asks for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};

use crate::changes::{CommitDiff, CommitRef, FileChange, Source};
use crate::repo::{ENVIRONMENTS_DIR, RepoFiles, UNITS_DIR, is_environment_file};
use crate::units;

/// Why git could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The directory is not inside a git repository.
    #[error("{path}: not a git repository (or any parent up to the filesystem root)")]
    NotARepository {
        /// The directory given.
        path: String,
    },
    /// A revision that does not name a commit.
    #[error("`{rev}` does not name a commit in {path}")]
    UnknownRevision {
        /// As given.
        rev: String,
        /// Repository.
        path: String,
    },
    /// The object database failed.
    #[error("reading {what}: {message}")]
    Read {
        /// What was being read.
        what: String,
        /// gix's message.
        message: String,
    },
}

/// An open repository.
pub struct GitRepo {
    repo: gix::Repository,
    path: String,
}

/// A resolved commit and the trees strata reads from it.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Full id and abbreviation.
    pub reference: CommitRef,
    environments: Option<ObjectId>,
    units: Option<ObjectId>,
}

/// One tree entry.
struct Entry {
    name: BString,
    is_tree: bool,
    id: ObjectId,
}

impl GitRepo {
    /// Opens the repository containing `dir`.
    pub fn open(dir: &Path) -> Result<GitRepo, GitError> {
        let path = dir.display().to_string();
        let repo =
            gix::discover(dir).map_err(|_| GitError::NotARepository { path: path.clone() })?;
        Ok(GitRepo { repo, path })
    }

    fn read_error(&self, what: impl Into<String>, e: impl std::fmt::Display) -> GitError {
        GitError::Read {
            what: what.into(),
            message: e.to_string(),
        }
    }

    /// Resolves `rev` (a commit id, branch, tag, `HEAD~1`, ...) to a commit.
    pub fn commit(&self, rev: &str) -> Result<Commit, GitError> {
        let unknown = || GitError::UnknownRevision {
            rev: rev.to_owned(),
            path: self.path.clone(),
        };
        let id = self.repo.rev_parse_single(rev).map_err(|_| unknown())?;
        let commit = id
            .object()
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .ok_or_else(unknown)?;
        let tree = commit
            .tree()
            .map_err(|e| self.read_error(format!("tree of {rev}"), e))?;
        let subtree = |name: &str| {
            tree.find_entry(name)
                .filter(|e| e.mode().is_tree())
                .map(|e| e.object_id())
        };
        let id = commit.id.to_string();
        Ok(Commit {
            reference: CommitRef {
                short: id[..12.min(id.len())].to_owned(),
                id,
            },
            environments: subtree(ENVIRONMENTS_DIR),
            units: subtree(UNITS_DIR),
        })
    }

    /// The entries of a tree (empty for a missing one).
    fn entries(&self, tree: Option<ObjectId>) -> Result<Vec<Entry>, GitError> {
        let Some(id) = tree else {
            return Ok(Vec::new());
        };
        let tree = self
            .repo
            .find_tree(id)
            .map_err(|e| self.read_error(format!("tree {id}"), e))?;
        let mut out = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| self.read_error(format!("tree {id}"), e))?;
            let mode = entry.mode();
            if !(mode.is_tree() || mode.is_blob()) {
                continue;
            }
            out.push(Entry {
                name: entry.filename().to_owned(),
                is_tree: mode.is_tree(),
                id: entry.object_id(),
            });
        }
        Ok(out)
    }

    /// What differs between two commits in `environments/` and `units/`.
    pub fn diff(&self, base: &Commit, head: &Commit) -> Result<CommitDiff, GitError> {
        let mut diff = CommitDiff {
            base: base.reference.clone(),
            head: head.reference.clone(),
            environments: Vec::new(),
            unit_files: Vec::new(),
        };
        if base.environments != head.environments {
            let mut changes = Vec::new();
            self.diff_trees(
                base.environments,
                head.environments,
                "",
                false,
                &mut changes,
            )?;
            diff.environments = changes
                .into_iter()
                .filter(|c| is_environment_file(&c.path))
                .map(|c| FileChange {
                    path: format!("{ENVIRONMENTS_DIR}/{}", c.path),
                    ..c
                })
                .collect();
        }
        if base.units != head.units {
            self.diff_trees(base.units, head.units, "", true, &mut diff.unit_files)?;
        }
        Ok(diff)
    }

    /// Merge-walks two sorted trees, recording blobs that were added, removed or changed.
    fn diff_trees(
        &self,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        prefix: &str,
        recurse: bool,
        out: &mut Vec<FileChange>,
    ) -> Result<(), GitError> {
        if old == new {
            return Ok(());
        }
        let (a, b) = (self.entries(old)?, self.entries(new)?);
        let (a, b) = (by_name(&a), by_name(&b));
        let names: BTreeSet<&BStr> = a.keys().chain(b.keys()).copied().collect();
        for name in names {
            let (x, y) = (a.get(name).copied(), b.get(name).copied());
            if let (Some(x), Some(y)) = (x, y)
                && x.id == y.id
                && x.is_tree == y.is_tree
            {
                continue;
            }
            let path = format!("{prefix}{name}");
            let tree_of = |e: Option<&Entry>| e.filter(|e| e.is_tree).map(|e| e.id);
            let blob_of = |e: Option<&Entry>| e.filter(|e| !e.is_tree).map(|e| e.id);
            if recurse && (tree_of(x).is_some() || tree_of(y).is_some()) {
                self.diff_trees(tree_of(x), tree_of(y), &format!("{path}/"), recurse, out)?;
            }
            let (old_blob, new_blob) = (blob_of(x), blob_of(y));
            if old_blob.is_some() || new_blob.is_some() {
                out.push(FileChange {
                    path,
                    old: old_blob,
                    new: new_blob,
                });
            }
        }
        Ok(())
    }

    /// Reads one blob.
    pub fn read(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        self.repo
            .find_blob(id)
            .map(|mut b| b.take_data())
            .map_err(|e| self.read_error(format!("blob {id}"), e))
    }

    /// Every environment file of a commit: path → blob.
    pub fn environments(&self, commit: &Commit) -> Result<BTreeMap<String, ObjectId>, GitError> {
        Ok(self
            .entries(commit.environments)?
            .into_iter()
            .filter(|e| !e.is_tree && is_environment_file(&e.name.to_str_lossy()))
            .map(|e| (format!("{ENVIRONMENTS_DIR}/{}", e.name), e.id))
            .collect())
    }

    /// Every unit file and drop-in of a commit, relative to `units/`.
    pub fn unit_files(&self, commit: &Commit) -> Result<BTreeMap<String, ObjectId>, GitError> {
        let mut out = Vec::new();
        self.diff_trees(None, commit.units, "", true, &mut out)?;
        Ok(out
            .into_iter()
            .filter_map(|c| c.new.map(|id| (c.path, id)))
            .collect())
    }

    /// Reads every file strata cares about in a commit.
    pub fn files(&self, commit: &Commit) -> Result<RepoFiles, GitError> {
        let mut files = RepoFiles::default();
        for (path, id) in self.environments(commit)? {
            files.environments.insert(path, self.read(id)?);
        }
        for (path, id) in self.unit_files(commit)? {
            files.units.insert(path, self.read(id)?);
        }
        Ok(files)
    }
}

fn by_name(entries: &[Entry]) -> BTreeMap<&BStr, &Entry> {
    entries.iter().map(|e| (e.name.as_bstr(), e)).collect()
}

/// The git-backed [`Source`] for change detection: blobs and the head commit's
/// listings, read only when asked for.
pub struct GitSource<'a> {
    /// The repository.
    pub repo: &'a GitRepo,
    /// The newer commit.
    pub head: &'a Commit,
}

impl Source for GitSource<'_> {
    fn read(&mut self, id: ObjectId) -> Result<Vec<u8>, String> {
        self.repo.read(id).map_err(|e| e.to_string())
    }

    fn head_environments(&mut self) -> Result<BTreeMap<String, ObjectId>, String> {
        self.repo.environments(self.head).map_err(|e| e.to_string())
    }

    fn head_unit_names(&mut self) -> Result<BTreeSet<String>, String> {
        let files = self.repo.unit_files(self.head).map_err(|e| e.to_string())?;
        Ok(files
            .keys()
            .filter_map(|p| units::classify(p).ok())
            .map(|c| c.unit().to_owned())
            .collect())
    }
}
