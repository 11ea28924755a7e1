//! Reading one environment file with every problem it holds, at once: the text (a
//! byte-order mark, control characters, a second document), the YAML syntax, then
//! every unknown key and every value that does not deserialize, each at
//! `path:line:col`.
//!
//! serde stops at the first error, so the file is read in rounds: each round's error
//! is reported and the key or value that caused it is set aside, and the next round
//! reads what is left. serde reads a mapping's keys in file order and looks for
//! missing keys only after the last one, so when a struct then fails only because its
//! bad value was set aside, every other key in it has been read: the struct is set
//! aside in turn, without a word, and its siblings are read on.

use std::collections::BTreeSet;

use marked_yaml::{LoadError, LoaderOptions, Marker, Node as YamlNode};
use serde::de::IntoDeserializer;
use serde_path_to_error::Segment;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

use super::locate;
use super::model::EnvironmentSpec;
use super::types::HINT_SEPARATOR;
use crate::diagnostic::{self, Diagnostic};

/// How many rounds a file gets. Each reports a problem or sets a failed struct aside,
/// so this is far past any real file, and it bounds the work a pathological one makes.
const MAX_ROUNDS: usize = 200;

/// The top-level keys of an environment file, in the order later ones depend on
/// earlier ones (a cluster is placed in the network, a node runs on the cluster).
const SECTIONS: [&str; 5] = ["tags", "region", "network", "cluster", "node"];

/// What reading one environment file found.
pub(super) struct Reading {
    path: String,
    /// The file as far as it deserialized (bad keys and values left out), when enough
    /// of it did to make an `EnvironmentSpec`.
    pub spec: Option<EnvironmentSpec>,
    /// The YAML tree, for the positions of later checks.
    pub tree: Option<YamlNode>,
    /// Every problem found.
    problems: Vec<Diagnostic>,
    /// Top-level sections from which something was left out: semantic checks of them,
    /// or of what depends on them, would be guesses.
    incomplete: BTreeSet<String>,
    /// A byte-order mark was taken off: columns on line 1 are one further right.
    bom: bool,
}

/// Reads one environment file, finding every problem of its text, syntax and types.
pub(super) fn read(path: &str, text: &str) -> Reading {
    let mut reading = Reading {
        path: path.to_owned(),
        spec: None,
        tree: None,
        problems: Vec::new(),
        incomplete: BTreeSet::new(),
        bom: false,
    };
    if let Some(problem) = diagnostic::too_large(path, text, "an environment file") {
        reading.problems.push(problem);
        return reading;
    }
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            reading.bom = true;
            rest
        }
        None => text,
    };
    let controls = diagnostic::control_characters(
        path,
        text,
        "YAML allows no control characters but tab and line breaks (a parser may stop reading at one)",
    );
    if !controls.is_empty() {
        reading.problems = controls;
        return reading;
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let tree = match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(tree) => tree,
        Err(e) => {
            reading.problems.push(load_error(path, e));
            return reading;
        }
    };
    reading.problems.extend(second_document(path, text));
    reading.deserialize(&tree);
    reading.tree = Some(tree);
    reading
}

impl Reading {
    /// True when the semantic problem at `path` rests only on sections read whole.
    pub fn trusts(&self, path: &[locate::PathSeg]) -> bool {
        let needs: &[&str] = match path.first() {
            Some(locate::PathSeg::Key(section)) => match section.as_str() {
                "tags" => &SECTIONS[..1],
                "region" => &SECTIONS[1..2],
                "network" => &SECTIONS[1..3],
                "cluster" => &SECTIONS[1..4],
                _ => &SECTIONS,
            },
            _ => &SECTIONS,
        };
        needs.iter().all(|s| !self.incomplete.contains(*s))
    }

    /// The spec, if one was read, and every problem: those found here and `later`
    /// (the semantic checks', already located).
    pub fn finish(self, later: Vec<Diagnostic>) -> (Option<EnvironmentSpec>, Vec<Diagnostic>) {
        let mut problems = self.problems;
        problems.extend(later);
        if self.bom {
            for p in &mut problems {
                if let (Some(1), Some(column)) = (p.line, p.column.as_mut()) {
                    *column += 1;
                }
            }
            problems.push(diagnostic::byte_order_mark(&self.path));
        }
        (self.spec, problems)
    }

    /// Deserializes the tree in rounds, each setting aside what failed in the last.
    fn deserialize(&mut self, tree: &YamlNode) {
        let mut work = tree.clone();
        // (mapping, key) pairs set aside here: the "missing key" that follows is no news.
        let mut set_aside: BTreeSet<((usize, usize), String)> = BTreeSet::new();
        // Unknown keys by mapping: a missing key they misspell is said by them.
        let mut unknown: Vec<((usize, usize), String)> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let deserializer = (&work).into_deserializer();
            let error = match serde_path_to_error::deserialize::<_, EnvironmentSpec>(deserializer) {
                Ok(spec) => {
                    self.spec = Some(spec);
                    return;
                }
                Err(e) => e,
            };
            let mut segments: Vec<Segment> = error.path().iter().cloned().collect();
            let error = error.into_inner();
            // An unknown key's path may end at its value or at its mapping; make it
            // the mapping's, with the key.
            let mut bad_key = match &error {
                marked_yaml::Error::UnknownFieldError(field, ..) => {
                    if matches!(segments.last(), Some(Segment::Map { key }) if key == field) {
                        segments.pop();
                    }
                    Some(field.clone())
                }
                _ => None,
            };
            let (node, whole) = node_at(&work, &segments);
            let at = position(node);
            let key_of_node = |wanted: &dyn Fn(&marked_yaml::types::MarkedScalarNode) -> bool| {
                node.as_mapping()
                    .and_then(|m| m.keys().find(|k| wanted(k)))
                    .map(|k| (k.as_str().to_owned(), k.span().start().copied()))
            };
            let mut mark = error.start_mark();
            if let Some(field) = &bad_key {
                if let Some((_, start)) = key_of_node(&|k| k.as_str() == field) {
                    mark = start.or(mark);
                }
                unknown.push((at, field.clone()));
            } else if let Some(start) = mark {
                // A map key that is not a valid name goes with its value.
                bad_key = key_of_node(&|k| k.span().start() == Some(&start)).map(|(k, _)| k);
            }
            let mark = mark.or_else(|| node.span().start().copied());
            let reported = match missing_key(&error) {
                Some(key) => {
                    !set_aside.contains(&(at, key.clone()))
                        && !unknown
                            .iter()
                            .any(|(m, u)| *m == at && super::validate::is_typo(u, &key))
                }
                None => true,
            };
            if reported {
                self.problems
                    .push(serde_error(&self.path, tree, &error, mark));
            }
            if !whole {
                return;
            }
            if let Some(key) = bad_key {
                self.note_incomplete(&segments, Some(&key));
                if !remove_key(&mut work, &segments, &key) {
                    return;
                }
                continue;
            }
            // Otherwise the value at the path goes; at the top there is none to drop,
            // and every key has been read.
            let Some((last, parent)) = segments.split_last() else {
                return;
            };
            if let Segment::Map { key } = last {
                set_aside.insert((position(node_at(&work, parent).0), key.clone()));
            }
            self.note_incomplete(&segments, None);
            if !remove_at(&mut work, &segments) {
                return;
            }
        }
        self.problems.push(
            Diagnostic::file(
                &self.path,
                format!("strata stopped reading after {MAX_ROUNDS} problems in this file"),
            )
            .with_hint("fix these and validate again"),
        );
    }

    /// Records that the section holding `segments` (or `key` at the top) lost a part.
    fn note_incomplete(&mut self, segments: &[Segment], key: Option<&str>) {
        match segments.first() {
            Some(Segment::Map { key }) => {
                self.incomplete.insert(key.clone());
            }
            // An unknown key at the top may be a section misspelt: trust none.
            _ => self.incomplete.extend(
                SECTIONS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .chain(key.map(str::to_owned)),
            ),
        }
    }
}

/// The deepest node `segments` reach in `tree`, and whether they reach it all the way.
fn node_at<'a>(tree: &'a YamlNode, segments: &[Segment]) -> (&'a YamlNode, bool) {
    let mut node = tree;
    for segment in segments {
        let next = match segment {
            Segment::Map { key } => node.as_mapping().and_then(|m| m.get(key.as_str())),
            Segment::Seq { index } => node.as_sequence().and_then(|s| s.get(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match next {
            Some(n) => node = n,
            None => return (node, false),
        }
    }
    (node, true)
}

fn node_at_mut<'a>(tree: &'a mut YamlNode, segments: &[Segment]) -> Option<&'a mut YamlNode> {
    let mut node = tree;
    for segment in segments {
        node = match segment {
            Segment::Map { key } => node.as_mapping_mut()?.get_mut(key.as_str())?,
            Segment::Seq { index } => node.as_sequence_mut()?.get_mut(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(node)
}

/// Takes the node at `segments` out of its mapping or sequence.
fn remove_at(tree: &mut YamlNode, segments: &[Segment]) -> bool {
    let Some((last, parent)) = segments.split_last() else {
        return false;
    };
    let Some(parent) = node_at_mut(tree, parent) else {
        return false;
    };
    match last {
        Segment::Map { key } => parent
            .as_mapping_mut()
            .is_some_and(|m| m.remove(key.as_str()).is_some()),
        Segment::Seq { index } => parent.as_sequence_mut().is_some_and(|s| {
            let present = *index < s.len();
            if present {
                s.remove(*index);
            }
            present
        }),
        Segment::Enum { .. } | Segment::Unknown => false,
    }
}

/// Takes `key` and its value out of the mapping at `segments`.
fn remove_key(tree: &mut YamlNode, segments: &[Segment], key: &str) -> bool {
    node_at_mut(tree, segments)
        .and_then(YamlNode::as_mapping_mut)
        .is_some_and(|m| m.remove(key).is_some())
}

/// Where a node starts, as a key for the sets above.
fn position(node: &YamlNode) -> (usize, usize) {
    node.span()
        .start()
        .map_or((0, 0), |m| (m.line(), m.column()))
}

/// The key a "missing field" error names.
fn missing_key(error: &marked_yaml::Error) -> Option<String> {
    match error {
        marked_yaml::Error::Other(message, _) => message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .map(str::to_owned),
        _ => None,
    }
}

/// A second document after the first, which marked-yaml would silently leave unread.
fn second_document(path: &str, text: &str) -> Option<Diagnostic> {
    struct Starts(Vec<usize>);
    impl MarkedEventReceiver for Starts {
        fn on_event(&mut self, event: Event, mark: yaml_rust2::scanner::Marker) {
            if event == Event::DocumentStart {
                self.0.push(mark.line());
            }
        }
    }
    let mut starts = Starts(Vec::new());
    // A syntax error in a later document still comes after its start was seen.
    let _ = Parser::new_from_str(text).load(&mut starts, true);
    // A document starts at the start of its line (`---`, or what follows `...`).
    let &line = starts.0.get(1)?;
    Some(
        Diagnostic::at(
            path,
            line,
            Some(1),
            "a second YAML document starts here; an environment file holds one document",
        )
        .with_hint(
            "remove it (this line and what follows), or move it to an environment file of its own",
        ),
    )
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

fn serde_error(
    path: &str,
    tree: &YamlNode,
    error: &marked_yaml::Error,
    mark: Option<Marker>,
) -> Diagnostic {
    use marked_yaml::Error;
    let mark = mark
        .map(|m| locate::refine(tree, m))
        .or_else(|| locate::start_of(tree));
    let (line, column) = mark.map_or((1, Some(1)), |m| (m.line(), Some(m.column())));
    let (message, hint) = match error {
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
        Error::Other(message, _) => super::split_hint(&humanise_serde(message)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each problem as `line:col: message`.
    fn problems(text: &str) -> Vec<String> {
        let (_, problems) = read("environments/t.yaml", text).finish(Vec::new());
        problems
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {}",
                    d.line.unwrap_or(0),
                    d.column.unwrap_or(0),
                    d.message
                )
            })
            .collect()
    }

    const GOOD: &str = "region: eu-west-1\nnetwork:\n  cidr: 10.66.0.0/16\n  zones: 2\n";

    #[test]
    fn a_valid_file_has_no_problem_and_one_document_may_be_marked() {
        assert_eq!(problems(GOOD), Vec::<String>::new());
        assert_eq!(problems(&format!("---\n{GOOD}")), Vec::<String>::new());
        assert_eq!(
            problems(&format!("{GOOD}...\n# the end\n")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_bad_key_and_value_is_reported_in_one_read() {
        let text = "region: eu-west-1\nnetwork:\n  cidr: 10.66.0.0/33\n  zones: 2\n  natt: single\ncluster:\n  mode: fixed\n  instance_typ: t3.small\n  size: many\n";
        assert_eq!(
            problems(text),
            [
                "3:9: `10.66.0.0/33` is not an IPv4 CIDR block",
                "5:3: unknown key `natt`",
                "8:3: unknown key `instance_typ`",
                "9:9: expected a whole number in range",
            ]
        );
    }

    #[test]
    fn a_missing_key_is_reported_unless_a_bad_value_or_a_typo_explains_it() {
        let missing = "region: eu-west-1\nnetwork:\n  zones: 2\n";
        assert_eq!(problems(missing), ["3:3: missing required key `cidr`"]);
        let typo = "region: eu-west-1\nnetwork:\n  cidrr: 10.66.0.0/16\n  zones: 2\n";
        assert_eq!(problems(typo), ["3:3: unknown key `cidrr`"]);
    }

    #[test]
    fn sections_that_lost_a_part_are_not_trusted_nor_what_depends_on_them() {
        let text =
            format!("{GOOD}cluster:\n  mode: fixed\n  sizee: 2\n  instance_type: t3.small\n");
        let reading = read("environments/t.yaml", &text);
        let trusted = |section: &str| reading.trusts(&[locate::PathSeg::from(section)]);
        assert!(trusted("network") && trusted("tags"));
        assert!(!trusted("cluster") && !trusted("node"));
    }

    #[test]
    fn text_problems_are_refused_where_they_are() {
        assert_eq!(
            problems(&format!("{GOOD}---\nregion: eu-west-2\n")),
            ["5:1: a second YAML document starts here; an environment file holds one document"]
        );
        assert_eq!(
            problems(&format!("{GOOD}--- # nothing\n")),
            ["5:1: a second YAML document starts here; an environment file holds one document"]
        );
        assert_eq!(
            problems("region: eu-west-1\n\0network: {}\n"),
            ["2:1: the file holds a NUL byte"]
        );
        assert_eq!(
            problems("region: eu-west-1\x7f\n"),
            ["1:18: the file holds the control character U+007F"]
        );
        assert_eq!(
            problems(&format!("\u{feff}regio: eu-west-1\n{}", &GOOD[18..])),
            [
                "1:2: unknown key `regio`",
                "1:1: the file starts with a byte-order mark",
            ]
        );
    }
}
