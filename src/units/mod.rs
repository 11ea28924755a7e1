//! systemd unit files and their drop-ins, read from `units/`.
//!
//! The parser is deliberately small: sections, `Key=Value` entries, `#`/`;` comments,
//! backslash continuations and empty values. It rejects what systemd or Ignition
//! would reject, with `units/<name>:LINE: message`, and keeps the parsed form so that
//! change detection can ignore comments and formatting.

mod check;

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;

/// Unit types strata can install, by file suffix.
pub const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "timer",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "slice",
    "scope",
    "device",
];

/// One `[Section]` with its entries in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// `(key, value)` pairs; continuation lines are joined, values trimmed.
    pub entries: Vec<(String, String)>,
}

/// A drop-in `units/<unit>.d/<name>.conf`.
#[derive(Debug, Clone)]
pub struct DropIn {
    /// File name, e.g. `10-tuning.conf`.
    pub name: String,
    /// The file as written, installed verbatim.
    pub contents: String,
    /// Parsed form, compared for change detection.
    pub sections: Vec<Section>,
}

/// One unit: its file (optional: a drop-in may extend a unit the OS ships) and drop-ins.
#[derive(Debug, Clone)]
pub struct UnitFile {
    /// Unit name, e.g. `etcd.service`.
    pub name: String,
    /// The unit file as written, installed verbatim; `None` for drop-in-only units.
    pub contents: Option<String>,
    /// Parsed form of `contents`.
    pub sections: Vec<Section>,
    /// Drop-ins in name order (the order systemd applies them).
    pub dropins: Vec<DropIn>,
}

impl UnitFile {
    /// Units with an `[Install]` section are enabled (templates excepted: they need an
    /// instance name to be enabled).
    pub fn enabled(&self) -> bool {
        !self.is_template() && self.sections.iter().any(|s| s.name == "Install")
    }

    /// `foo@.service`.
    pub fn is_template(&self) -> bool {
        self.name.contains("@.")
    }
}

/// Every unit of a repository, by name.
#[derive(Debug, Clone, Default)]
pub struct UnitSet {
    /// Units by name.
    pub units: BTreeMap<String, UnitFile>,
}

impl UnitSet {
    /// Looks a unit up by name.
    pub fn get(&self, name: &str) -> Option<&UnitFile> {
        self.units.get(name)
    }

    /// The names, for reference checks.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.units.keys().cloned().collect()
    }
}

/// Where a path under `units/` belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitPath<'a> {
    /// `units/<unit>`.
    Unit(&'a str),
    /// `units/<unit>.d/<dropin>`.
    DropIn(&'a str, &'a str),
}

impl<'a> UnitPath<'a> {
    /// The unit the file belongs to.
    pub fn unit(&self) -> &'a str {
        match self {
            UnitPath::Unit(n) | UnitPath::DropIn(n, _) => n,
        }
    }
}

/// Classifies a path relative to `units/` (`etcd.service`, `etcd.service.d/10.conf`).
pub fn classify(relative: &str) -> Result<UnitPath<'_>, String> {
    match relative.split_once('/') {
        None => Ok(UnitPath::Unit(relative)),
        Some((dir, file)) => match dir.strip_suffix(".d") {
            Some(unit) if !file.contains('/') => Ok(UnitPath::DropIn(unit, file)),
            _ => Err("unexpected directory: units/ holds unit files and <unit>.d/ drop-in directories only".to_owned()),
        },
    }
}

/// Checks a unit name: a known suffix, allowed characters, at most 255 bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return Err(format!(
            "`{name}` has no unit type suffix (.service, .timer, ...)"
        ));
    };
    if !UNIT_SUFFIXES.contains(&suffix) {
        return Err(format!(
            "`.{suffix}` is not a unit type; use one of .{}",
            UNIT_SUFFIXES.join(", .")
        ));
    }
    if stem.is_empty() || name.len() > 255 {
        return Err(format!("`{name}` is not a valid unit name length"));
    }
    if let Some(bad) = stem
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":_.\\@-".contains(*c)))
    {
        return Err(format!(
            "`{name}` contains `{bad}`; unit names take letters, digits and :_.\\@- only"
        ));
    }
    if stem.matches('@').count() > 1 || stem.starts_with('@') {
        return Err(format!("`{name}` is not a valid template or instance name"));
    }
    Ok(())
}

/// Parses unit-file syntax. `path` is used in messages only.
pub fn parse(path: &str, text: &str) -> Result<Vec<Section>, Vec<Diagnostic>> {
    if let Some(problem) = crate::diagnostic::too_large(path, text, "a unit file") {
        return Err(vec![problem]);
    }
    let mut problems = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((ix, raw)) = lines.next() {
        let line_no = ix + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(name) if !name.is_empty() && !name.contains(['[', ']']) => {
                    sections.push(Section {
                        name: name.to_owned(),
                        entries: Vec::new(),
                    });
                }
                _ => problems.push(
                    Diagnostic::at(
                        path,
                        line_no,
                        None,
                        format!("malformed section header `{line}`"),
                    )
                    .with_hint("write a section as [Name] alone on its line"),
                ),
            }
            continue;
        }
        // Join continuation lines: a trailing backslash continues on the next line;
        // comment lines inside a continuation are skipped, as systemd does.
        let mut value_line = line.to_owned();
        while value_line.ends_with('\\') {
            value_line.pop();
            // systemd replaces the backslash with a space; runs of blanks around the
            // join are layout, so they collapse to one.
            value_line.truncate(value_line.trim_end().len());
            value_line.push(' ');
            loop {
                match lines.next() {
                    Some((_, next)) => {
                        let next = next.strip_suffix('\r').unwrap_or(next).trim();
                        if next.starts_with('#') || next.starts_with(';') {
                            continue;
                        }
                        value_line.push_str(next);
                        break;
                    }
                    None => {
                        problems.push(
                            Diagnostic::at(
                                path,
                                line_no,
                                None,
                                "line continues past the end of the file",
                            )
                            .with_hint("remove the trailing backslash"),
                        );
                        break;
                    }
                }
            }
        }
        let Some((key, value)) = value_line.split_once('=') else {
            problems.push(
                Diagnostic::at(
                    path,
                    line_no,
                    None,
                    format!("expected Key=Value, found `{line}`"),
                )
                .with_hint("settings are Key=Value; comments start with # or ;"),
            );
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            problems.push(
                Diagnostic::at(
                    path,
                    line_no,
                    None,
                    format!("`{key}` is not a valid setting name"),
                )
                .with_hint("setting names are letters, digits, - and _"),
            );
            continue;
        }
        match sections.last_mut() {
            Some(section) => section
                .entries
                .push((key.to_owned(), value.trim().to_owned())),
            None => problems.push(
                Diagnostic::at(
                    path,
                    line_no,
                    None,
                    format!("`{key}=` appears before any section"),
                )
                .with_hint("start the file with a section such as [Unit]"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(sections)
    } else {
        Err(problems)
    }
}

/// systemd's path escaping for mount unit names: `/var/lib/jenkins` → `var-lib-jenkins`.
pub fn escape_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-".to_owned();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' => {
                out.push(char::from(b))
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Builds the unit set from `(path relative to units/, bytes)` pairs.
///
/// Drop-ins may extend a unit without a file of its own (a unit the OS ships, such as
/// `docker.service`); such a unit is installed as drop-ins only.
pub fn load<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<UnitSet, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut set = UnitSet::default();
    let mut lowercase_dropins: BTreeMap<(String, String), String> = BTreeMap::new();
    for (relative, bytes) in files {
        let path = format!("units/{relative}");
        let class = match classify(relative) {
            Ok(c) => c,
            Err(e) => {
                problems.push(Diagnostic::file(&path, e).with_hint("move the file, or remove it"));
                continue;
            }
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            problems.push(
                Diagnostic::file(&path, "not UTF-8 text").with_hint("save the file as UTF-8"),
            );
            continue;
        };
        if text.starts_with('\u{feff}') {
            problems.push(crate::diagnostic::byte_order_mark(&path));
            continue;
        }
        let controls = crate::diagnostic::control_characters(
            &path,
            text,
            "a unit file is text, systemd does not read control characters as written, and a review cannot see them",
        );
        if !controls.is_empty() {
            problems.extend(controls);
            continue;
        }
        let (unit_name, dropin) = match class {
            UnitPath::Unit(name) => (name, None),
            UnitPath::DropIn(unit, file) => (unit, Some(file)),
        };
        if let Err(e) = check_name(unit_name) {
            problems.push(
                Diagnostic::file(&path, e)
                    .with_hint("units/ holds systemd units only; rename or move this file"),
            );
            continue;
        }
        let sections = match parse(&path, text) {
            Ok(s) => s,
            Err(mut e) => {
                problems.append(&mut e);
                continue;
            }
        };
        let unit = set
            .units
            .entry(unit_name.to_owned())
            .or_insert_with(|| UnitFile {
                name: unit_name.to_owned(),
                contents: None,
                sections: Vec::new(),
                dropins: Vec::new(),
            });
        match dropin {
            None => {
                unit.contents = Some(text.to_owned());
                unit.sections = sections;
            }
            Some(file) => {
                if !file.ends_with(".conf") {
                    problems.push(
                        Diagnostic::file(&path, "drop-ins must end in .conf")
                            .with_hint("systemd reads only *.conf from a .d directory; rename it"),
                    );
                    continue;
                }
                if let Some(previous) = lowercase_dropins
                    .insert((unit_name.to_owned(), file.to_lowercase()), file.to_owned())
                {
                    problems.push(
                        Diagnostic::file(&path, format!("drop-in duplicates `{previous}` (names differ only in case)"))
                            .with_hint("merge the two files; on case-insensitive checkouts one would overwrite the other"),
                    );
                    continue;
                }
                unit.dropins.push(DropIn {
                    name: file.to_owned(),
                    contents: text.to_owned(),
                    sections,
                });
            }
        }
    }
    for unit in set.units.values_mut() {
        unit.dropins.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for unit in set.units.values() {
        problems.extend(check::check_semantics(
            &format!("units/{}", unit.name),
            unit,
        ));
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, text: &str) -> Result<UnitSet, Vec<String>> {
        load([(name, text.as_bytes())]).map_err(|e| e.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn continuations_comments_and_empty_values_parse() {
        let text = "# c\n[Unit]\nDescription=x\n\n[Service]\nEnvironment=\nExecStart=/bin/a \\\n  # skipped\n  --flag\n; c2\n";
        let sections = parse("u", text).unwrap();
        assert_eq!(
            sections[1].entries,
            [
                ("Environment".into(), "".into()),
                ("ExecStart".into(), "/bin/a --flag".into())
            ]
        );
    }

    #[test]
    fn mount_names_must_encode_where() {
        assert_eq!(escape_path("/var/lib/jenkins"), "var-lib-jenkins");
        assert_eq!(escape_path("/srv/my data"), "srv-my\\x20data");
        let err = one(
            "var-lib-data.mount",
            "[Mount]\nWhat=/dev/xvdf\nWhere=/var/lib/other\n",
        )
        .unwrap_err();
        assert!(
            err[0].contains("Where=/var/lib/other does not match"),
            "{err:?}"
        );
    }

    #[test]
    fn install_section_enables_except_templates() {
        let set = one(
            "a.service",
            "[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        assert!(set.units["a.service"].enabled());
        let set = one(
            "a@.service",
            "[Service]\nExecStart=/x\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        assert!(!set.units["a@.service"].enabled());
    }
}
