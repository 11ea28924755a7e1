//! The git adapter: reads commits' trees with gix (no `git` binary needed).
//!
//! Comparing two commits walks both trees side by side and skips every subtree and
//! blob whose id is unchanged, so the cost follows what changed, not the size of the
//! repository. Blobs are read only when the core asks for them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gix::ObjectId;
use std::cmp::Ordering;

use gix::bstr::{BStr, ByteSlice};

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
    #[error("`{rev}` does not name a commit in {path}{}", if *.shallow {
        "\n  hint: this clone is shallow and may lack it; fetch the history (actions/checkout with `fetch-depth: 0`, or `git fetch --unshallow`)"
    } else { "" })]
    UnknownRevision {
        /// As given.
        rev: String,
        /// Repository.
        path: String,
        /// The clone is shallow, which may be why.
        shallow: bool,
    },
    /// Two commits with no history in common: what changed between them means nothing.
    #[error(
        "`{base}` and `{head}` share no history in {path}\n  hint: compare commits of one history: the pull request's base, or a commit the head was built on"
    )]
    UnrelatedHistories {
        /// The base commit.
        base: String,
        /// The head commit.
        head: String,
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
    /// `environments` or `units` when the commit has a symbolic link in its place.
    linked_roots: Vec<&'static str>,
}

/// One tree entry, its name borrowed from the tree's data.
struct Entry<'t> {
    name: &'t BStr,
    is_tree: bool,
    id: ObjectId,
}

impl Entry<'_> {
    /// git sorts tree entries by name, a tree's name compared as if it ended in `/`.
    fn git_order(&self, other: &Entry) -> Ordering {
        let own = self
            .name
            .iter()
            .copied()
            .chain(self.is_tree.then_some(b'/'));
        own.cmp(
            other
                .name
                .iter()
                .copied()
                .chain(other.is_tree.then_some(b'/')),
        )
    }
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
            shallow: self.repo.is_shallow().unwrap_or(false),
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
        let linked_roots = [ENVIRONMENTS_DIR, UNITS_DIR]
            .into_iter()
            .filter(|name| tree.find_entry(*name).is_some_and(|e| e.mode().is_link()))
            .collect();
        let id = commit.id.to_string();
        Ok(Commit {
            reference: CommitRef {
                short: id[..12.min(id.len())].to_owned(),
                id,
            },
            environments: subtree(ENVIRONMENTS_DIR),
            units: subtree(UNITS_DIR),
            linked_roots,
        })
    }

    /// The first parent of `commit`'s id, as a revision (`None` for a root commit):
    /// the base of a pull request's merge commit.
    pub fn first_parent(&self, commit: &Commit) -> Result<Option<String>, GitError> {
        let id = ObjectId::from_hex(commit.reference.id.as_bytes())
            .map_err(|e| self.read_error(format!("commit {}", commit.reference.id), e))?;
        let object = self
            .repo
            .find_commit(id)
            .map_err(|e| self.read_error(format!("commit {}", commit.reference.id), e))?;
        Ok(object.parent_ids().next().map(|p| p.to_string()))
    }

    /// Loads a tree (`None` for a missing one).
    fn tree(&self, id: Option<ObjectId>) -> Result<Option<gix::Tree<'_>>, GitError> {
        id.map(|id| {
            self.repo
                .find_tree(id)
                .map_err(|e| self.read_error(format!("tree {id}"), e))
        })
        .transpose()
    }

    /// The blob and tree entries of a loaded tree, borrowing names from its data.
    fn entries<'t>(&self, tree: &'t Option<gix::Tree<'_>>) -> Result<Vec<Entry<'t>>, GitError> {
        let Some(tree) = tree else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in gix::objs::TreeRefIter::from_bytes(&tree.data, tree.id.kind()) {
            let entry = entry.map_err(|e| self.read_error(format!("tree {}", tree.id), e))?;
            if entry.mode.is_tree() || entry.mode.is_blob() {
                out.push(Entry {
                    name: entry.filename,
                    is_tree: entry.mode.is_tree(),
                    id: entry.oid.to_owned(),
                });
            }
        }
        Ok(out)
    }

    /// Refuses two commits that share no history. A walk that cannot finish (a
    /// shallow clone's cut-off history) is no proof either way and lets them pass.
    fn related(&self, base: &Commit, head: &Commit) -> Result<(), GitError> {
        let id = |c: &Commit| gix::ObjectId::from_hex(c.reference.id.as_bytes()).ok();
        let (Some(b), Some(h)) = (id(base), id(head)) else {
            return Ok(());
        };
        match self.repo.merge_base(b, h) {
            Ok(None) => Err(GitError::UnrelatedHistories {
                base: base.reference.short.clone(),
                head: head.reference.short.clone(),
                path: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// What differs between two commits in `environments/` and `units/`.
    pub fn diff(&self, base: &Commit, head: &Commit) -> Result<CommitDiff, GitError> {
        self.related(base, head)?;
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
        let (old_tree, new_tree) = (self.tree(old)?, self.tree(new)?);
        let (a, b) = (self.entries(&old_tree)?, self.entries(&new_tree)?);
        // Both lists are in git's tree order, so one merge pass pairs them up.
        let (mut i, mut j) = (0, 0);
        loop {
            let (x, y) = match (a.get(i), b.get(j)) {
                (None, None) => break,
                (Some(x), None) => (Some(x), None),
                (None, Some(y)) => (None, Some(y)),
                (Some(x), Some(y)) => match x.git_order(y) {
                    Ordering::Less => (Some(x), None),
                    Ordering::Greater => (None, Some(y)),
                    Ordering::Equal => (Some(x), Some(y)),
                },
            };
            i += usize::from(x.is_some());
            j += usize::from(y.is_some());
            if let (Some(x), Some(y)) = (x, y)
                && x.id == y.id
            {
                continue;
            }
            let Some(entry) = x.or(y) else { break };
            let path = format!("{prefix}{}", entry.name);
            if entry.is_tree {
                if recurse {
                    self.diff_trees(
                        x.map(|e| e.id),
                        y.map(|e| e.id),
                        &format!("{path}/"),
                        recurse,
                        out,
                    )?;
                }
            } else {
                out.push(FileChange {
                    path,
                    old: x.map(|e| e.id),
                    new: y.map(|e| e.id),
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
        let tree = self.tree(commit.environments)?;
        Ok(self
            .entries(&tree)?
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

    /// Symbolic links in a tree (recursively for units), as paths under `dir`. git
    /// stores a link's target as its blob; strata never reads it as a file.
    fn links(
        &self,
        tree: Option<ObjectId>,
        dir: &str,
        recurse: bool,
    ) -> Result<Vec<String>, GitError> {
        let tree = self.tree(tree)?;
        let Some(loaded) = &tree else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in gix::objs::TreeRefIter::from_bytes(&loaded.data, loaded.id.kind()) {
            let entry = entry.map_err(|e| self.read_error(format!("tree {}", loaded.id), e))?;
            let path = format!("{dir}/{}", entry.filename);
            if entry.mode.is_link() {
                out.push(path);
            } else if recurse && entry.mode.is_tree() {
                out.extend(self.links(Some(entry.oid.to_owned()), &path, recurse)?);
            }
        }
        Ok(out)
    }

    /// Reads every file strata cares about in a commit; symbolic links are listed in
    /// [`RepoFiles::links`], never followed.
    pub fn files(&self, commit: &Commit) -> Result<RepoFiles, GitError> {
        let mut files = RepoFiles {
            links: commit
                .linked_roots
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            ..RepoFiles::default()
        };
        let env_links = self.links(commit.environments, ENVIRONMENTS_DIR, false)?;
        files.links.extend(env_links.into_iter().filter(|path| {
            path.strip_prefix(&format!("{ENVIRONMENTS_DIR}/"))
                .is_some_and(is_environment_file)
        }));
        files
            .links
            .extend(self.links(commit.units, UNITS_DIR, true)?);
        for (path, id) in self.environments(commit)? {
            files.environments.insert(path, self.read(id)?);
        }
        for (path, id) in self.unit_files(commit)? {
            files.units.insert(path, self.read(id)?);
        }
        Ok(files)
    }
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
