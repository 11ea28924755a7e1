//! What systemd would refuse in a parsed unit and its drop-ins: a section of another
//! unit type, a unit without sections, a service without `ExecStart=`, a timer
//! without `On*=`, a mount whose `Where=` does not match its name; each with its line.

use super::{Section, UnitFile, escape_path};
use crate::diagnostic::Diagnostic;

/// The section named after the unit type (`Service` for `.service`), if it has one.
fn type_section(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "service" => "Service",
        "socket" => "Socket",
        "timer" => "Timer",
        "mount" => "Mount",
        "automount" => "Automount",
        "swap" => "Swap",
        "path" => "Path",
        "slice" => "Slice",
        "scope" => "Scope",
        _ => return None,
    })
}

/// The line of the last `key=` in `[section]` (the one systemd uses).
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = None;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name);
        } else if current == Some(section)
            && line.split_once('=').is_some_and(|(k, _)| k.trim() == key)
        {
            found = Some(i + 1);
        }
    }
    found
}

/// Checks what systemd would refuse in a parsed unit and its drop-ins together.
pub(super) fn check_semantics(path: &str, unit: &UnitFile) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let suffix = unit.name.rsplit_once('.').map_or("", |(_, s)| s);
    let own = type_section(suffix);
    let mut check_sections = |file: &str, text: &str, sections: &[Section]| {
        for s in sections {
            let known = s.name == "Unit"
                || s.name == "Install"
                || Some(s.name.as_str()) == own
                || s.name.starts_with("X-");
            if !known {
                let line = text
                    .lines()
                    .position(|l| l.trim() == format!("[{}]", s.name))
                    .map_or(1, |i| i + 1);
                problems.push(
                    Diagnostic::at(
                        file,
                        line,
                        None,
                        format!("section [{}] does not belong in a .{suffix} unit", s.name),
                    )
                    .with_hint(match own {
                        Some(o) => format!(
                            "use [Unit], [{o}] or [Install]; systemd ignores other sections"
                        ),
                        None => {
                            "use [Unit] or [Install]; systemd ignores other sections".to_owned()
                        }
                    }),
                );
            }
        }
    };
    if let Some(text) = &unit.contents {
        check_sections(path, text, &unit.sections);
    }
    let dir = format!("{path}.d");
    for d in &unit.dropins {
        check_sections(&format!("{dir}/{}", d.name), &d.contents, &d.sections);
    }
    // Settings from the unit and all drop-ins, as systemd merges them.
    let all = || {
        unit.sections
            .iter()
            .chain(unit.dropins.iter().flat_map(|d| d.sections.iter()))
    };
    let has = |section: &str, pred: &dyn Fn(&str) -> bool| {
        all()
            .filter(|s| s.name == section)
            .flat_map(|s| s.entries.iter())
            .any(|(k, v)| pred(k) && !v.is_empty())
    };
    let Some(text) = &unit.contents else {
        return problems;
    };
    if unit.sections.is_empty() {
        problems.push(
            Diagnostic::at(path, 1, None, "the unit file has no sections")
                .with_hint("a unit needs at least a [Unit] section"),
        );
        return problems;
    }
    match suffix {
        "service"
            if !has("Service", &|k| {
                matches!(k, "ExecStart" | "ExecStop" | "SuccessAction")
            }) =>
        {
            let line = text
                .lines()
                .position(|l| l.trim() == "[Service]")
                .map_or(1, |i| i + 1);
            problems.push(
                Diagnostic::at(
                    path,
                    line,
                    None,
                    "service has no ExecStart=, so systemd refuses to load it",
                )
                .with_hint("add ExecStart=/absolute/path/to/program"),
            );
        }
        "timer" if !has("Timer", &|k| k.starts_with("On")) => {
            problems.push(
                Diagnostic::at(
                    path,
                    1,
                    None,
                    "timer has no OnCalendar= or On*Sec= setting, so systemd refuses to load it",
                )
                .with_hint("add e.g. OnCalendar=daily"),
            );
        }
        "mount" | "automount" => {
            let stem = unit.name.rsplit_once('.').map_or("", |(s, _)| s);
            // The last Where= wins, whether in the unit or a drop-in; report it where it is.
            let section = if suffix == "mount" {
                "Mount"
            } else {
                "Automount"
            };
            let dir = format!("{path}.d");
            let files = std::iter::once((path.to_owned(), text.as_str(), unit.sections.as_slice()))
                .chain(unit.dropins.iter().map(|d| {
                    (
                        format!("{dir}/{}", d.name),
                        d.contents.as_str(),
                        d.sections.as_slice(),
                    )
                }));
            let mut where_ = None;
            for (file, file_text, sections) in files {
                let value = sections
                    .iter()
                    .filter(|s| s.name == section)
                    .flat_map(|s| &s.entries)
                    .rfind(|(k, _)| k == "Where");
                if let Some((_, w)) = value {
                    where_ = Some((file, line_of(file_text, section, "Where").unwrap_or(1), w));
                }
            }
            match where_ {
                Some((file, line, w)) if escape_path(w) != stem => {
                    problems.push(
                        Diagnostic::at(
                            file,
                            line,
                            None,
                            format!("Where={w} does not match the unit name; systemd refuses it"),
                        )
                        .with_hint(format!(
                            "name the unit {}.{suffix}, or set Where= to the path the name encodes",
                            escape_path(w)
                        )),
                    );
                }
                None if suffix == "mount" => problems.push(
                    Diagnostic::at(path, 1, None, "mount unit has no Where=")
                        .with_hint("add Where=/the/mount/point under [Mount]"),
                ),
                _ => {}
            }
            if suffix == "mount" && !has("Mount", &|k| k == "What") {
                problems.push(
                    Diagnostic::at(path, 1, None, "mount unit has no What=")
                        .with_hint("add What=/dev/... under [Mount]"),
                );
            }
        }
        _ => {}
    }
    problems
}
