//! A user's repository: `environments/*.yaml` and `units/`, read from a directory or
//! from a git tree, then parsed and checked as a whole.

use std::collections::BTreeMap;
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
    let mut problems: Vec<Diagnostic> = Vec::new();
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
    for (path, bytes) in &files.environments {
        match load_environment(path, bytes, &names) {
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

/// Parses and checks one environment file from raw bytes.
pub fn load_environment(
    path: &str,
    bytes: &[u8],
    unit_names: &std::collections::BTreeSet<String>,
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

/// Reads the files strata cares about from a checked-out directory.
pub fn read_dir(root: &Path) -> std::io::Result<RepoFiles> {
    let mut files = RepoFiles::default();
    let env_dir = root.join(ENVIRONMENTS_DIR);
    if env_dir.is_dir() {
        for entry in std::fs::read_dir(&env_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && is_environment_file(&name) {
                files.environments.insert(
                    format!("{ENVIRONMENTS_DIR}/{name}"),
                    std::fs::read(entry.path())?,
                );
            }
        }
    }
    let units_dir = root.join(UNITS_DIR);
    if units_dir.is_dir() {
        read_units(&units_dir, "", &mut files.units)?;
    }
    Ok(files)
}

fn read_units(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let relative = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            read_units(&entry.path(), &format!("{relative}/"), out)?;
        } else {
            out.insert(relative, std::fs::read(entry.path())?);
        }
    }
    Ok(())
}
