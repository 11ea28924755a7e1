//! A user's repository: `environments/*.yaml` and `units/`, read from a directory or
//! from a git tree, then parsed and checked as a whole.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::path::Path;

use crate::config::{self, EnvName, Environment};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::units::{self, UnitSet};

/// The directory of environment files.
pub const ENVIRONMENTS_DIR: &str = "environments";
/// The directory of unit files.
pub const UNITS_DIR: &str = "units";

/// The raw files strata reads, keyed by path relative to the repository root
/// (environments) or to `units/` (units).
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    /// `environments/<name>.yaml` → contents.
    pub environments: BTreeMap<String, Vec<u8>>,
    /// `<unit>` or `<unit>.d/<dropin>` → contents.
    pub units: BTreeMap<String, Vec<u8>>,
    /// Symbolic links found where strata reads files, relative to the repository root.
    /// Never followed: a pull request's link could point anywhere on the runner.
    pub links: Vec<String>,
}

/// A parsed, validated repository.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Environments by name.
    pub environments: BTreeMap<EnvName, Environment>,
    /// Units by name.
    pub units: UnitSet,
}

/// True for paths strata reads as environments; `.yml` is reported, not skipped.
pub fn is_environment_file(relative_to_dir: &str) -> bool {
    !relative_to_dir.contains('/')
        && (relative_to_dir.ends_with(".yaml") || relative_to_dir.ends_with(".yml"))
}

/// Parses and checks everything, reporting every problem found.
pub fn load(files: &RepoFiles) -> Result<Repository, Diagnostics> {
    let mut problems: Vec<Diagnostic> = files.links.iter().map(|path| link_problem(path)).collect();
    let units = match units::load(files.units.iter().map(|(p, b)| (p.as_str(), b.as_slice()))) {
        Ok(u) => u,
        Err(mut e) => {
            problems.append(&mut e);
            // Keep checking environments against the unit names that exist.
            let mut set = UnitSet::default();
            for path in files.units.keys() {
                if let Ok(units::UnitPath::Unit(n) | units::UnitPath::DropIn(n, _)) =
                    units::classify(path)
                {
                    set.units
                        .entry(n.to_owned())
                        .or_insert_with(|| units::UnitFile {
                            name: n.to_owned(),
                            contents: None,
                            sections: Vec::new(),
                            dropins: Vec::new(),
                        });
                }
            }
            set
        }
    };
    let names = units.names();
    let mut environments = BTreeMap::new();
    for loaded in load_environments(&files.environments, &names) {
        match loaded {
            Ok(env) => {
                environments.insert(env.name.clone(), env);
            }
            Err(mut e) => problems.append(&mut e),
        }
    }
    if problems.is_empty() {
        Ok(Repository {
            environments,
            units,
        })
    } else {
        Err(problems.into())
    }
}

/// A symbolic link where strata reads files is refused, never followed.
fn link_problem(path: &str) -> Diagnostic {
    Diagnostic::file(
        path,
        "is a symbolic link; strata reads only regular files inside the repository",
    )
    .with_hint("replace the link with a copy of the file it points to")
}

/// Environment files a thread takes at least: fewer are not worth a thread's start.
const FILES_PER_THREAD: usize = 32;

/// Each environment file loaded, in order, the files shared among the machine's cores:
/// parsing and checking are pure, and take most of the time to load a large
/// repository.
fn load_environments(
    files: &BTreeMap<String, Vec<u8>>,
    unit_names: &BTreeSet<String>,
) -> Vec<Result<Environment, Vec<Diagnostic>>> {
    let files: Vec<(&String, &Vec<u8>)> = files.iter().collect();
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = files.len().div_ceil(FILES_PER_THREAD).clamp(1, cores);
    let per_thread = files.len().div_ceil(threads).max(1);
    let load = |part: &[(&String, &Vec<u8>)]| -> Vec<_> {
        part.iter()
            .map(|(path, bytes)| load_environment(path, bytes, unit_names))
            .collect()
    };
    if threads == 1 {
        return load(&files);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = files
            .chunks(per_thread)
            .map(|part| scope.spawn(move || load(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Parses and checks one environment file from raw bytes.
pub fn load_environment(
    path: &str,
    bytes: &[u8],
    unit_names: &BTreeSet<String>,
) -> Result<Environment, Vec<Diagnostic>> {
    if path.ends_with(".yml") {
        return Err(vec![
            Diagnostic::file(path, "environment files end in .yaml")
                .with_hint("rename it to .yaml"),
        ]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        vec![Diagnostic::file(path, "not UTF-8 text").with_hint("save the file as UTF-8")]
    })?;
    config::load(path, text, unit_names)
}

/// Reads the files strata cares about from a checked-out directory. Symbolic links
/// are recorded in [`RepoFiles::links`] and never followed, so nothing outside the
/// repository can be read through one.
pub fn read_dir(root: &Path) -> std::io::Result<RepoFiles> {
    let mut files = RepoFiles::default();
    let env_dir = root.join(ENVIRONMENTS_DIR);
    match entry_type(&env_dir)? {
        Some(EntryType::Dir) => {
            for entry in std::fs::read_dir(&env_dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = format!("{ENVIRONMENTS_DIR}/{name}");
                let kind = entry.file_type()?;
                if kind.is_symlink() && is_environment_file(&name) {
                    files.links.push(path);
                } else if kind.is_file() && is_environment_file(&name) {
                    files
                        .environments
                        .insert(path, std::fs::read(entry.path())?);
                }
            }
        }
        Some(EntryType::Link) => files.links.push(ENVIRONMENTS_DIR.to_owned()),
        _ => {}
    }
    let units_dir = root.join(UNITS_DIR);
    match entry_type(&units_dir)? {
        Some(EntryType::Dir) => read_units(&units_dir, "", &mut files)?,
        Some(EntryType::Link) => files.links.push(UNITS_DIR.to_owned()),
        _ => {}
    }
    Ok(files)
}

enum EntryType {
    Dir,
    Link,
    Other,
}

/// What is at `path`, without following a link (`None`: nothing).
fn entry_type(path: &Path) -> std::io::Result<Option<EntryType>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(Some(EntryType::Link)),
        Ok(meta) if meta.is_dir() => Ok(Some(EntryType::Dir)),
        Ok(_) => Ok(Some(EntryType::Other)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_units(dir: &Path, prefix: &str, files: &mut RepoFiles) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let relative = format!("{prefix}{name}");
        // `DirEntry::file_type` describes the entry itself: a link is not followed.
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            files.links.push(format!("{UNITS_DIR}/{relative}"));
        } else if kind.is_dir() {
            read_units(&entry.path(), &format!("{relative}/"), files)?;
        } else {
            files.units.insert(relative, std::fs::read(entry.path())?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More files than one thread takes: each loaded (or reported) once, as one by one.
    #[test]
    fn many_environment_files_are_loaded_across_threads_as_one_by_one() {
        let example = std::fs::read("environments/web-prod.yaml").unwrap();
        let mut files = RepoFiles {
            environments: BTreeMap::new(),
            ..read_dir(Path::new(".")).unwrap()
        };
        for i in 0..100 {
            let text = String::from_utf8(example.clone()).unwrap();
            files
                .environments
                .insert(format!("environments/web-{i:03}.yaml"), text.into_bytes());
        }
        files
            .environments
            .insert("environments/web-050b.yaml".into(), b"region: [".to_vec());
        let units = files.units.iter().map(|(p, b)| (p.as_str(), b.as_slice()));
        let names = units::load(units).unwrap().names();
        let together = load_environments(&files.environments, &names);
        assert_eq!(together.len(), 101);
        let one_by_one: Vec<_> = files
            .environments
            .iter()
            .map(|(path, bytes)| load_environment(path, bytes, &names))
            .collect();
        let summary = |loaded: &[Result<Environment, Vec<Diagnostic>>]| -> Vec<String> {
            loaded
                .iter()
                .map(|l| match l {
                    Ok(env) => env.name.to_string(),
                    Err(problems) => format!("{problems:?}"),
                })
                .collect()
        };
        assert_eq!(summary(&together), summary(&one_by_one));
        assert_eq!(together.iter().filter(|l| l.is_err()).count(), 1);
    }
}
