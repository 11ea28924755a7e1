//! From a logical path (`network.security_groups.etcd.ingress[2]`) to `line:col`, using
//! the spans the YAML parser kept. Checks speak in paths; only this module knows YAML.

use marked_yaml::{Marker, Node};

use crate::diagnostic::Diagnostic;

/// One step of a path into the YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// The first of these keys that is present (a key and its aliases).
    AnyKey(&'static [&'static str]),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(value: &str) -> Self {
        PathSeg::Key(value.to_owned())
    }
}

impl From<&String> for PathSeg {
    fn from(value: &String) -> Self {
        PathSeg::Key(value.clone())
    }
}

impl From<usize> for PathSeg {
    fn from(value: usize) -> Self {
        PathSeg::Index(value)
    }
}

/// A problem found by a semantic check, located by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: the value at this path (or the key itself, see `on_key`).
    pub path: Vec<PathSeg>,
    /// Point at the last key rather than at its value (for names that are keys).
    pub on_key: bool,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

/// Where a node starts as a reader sees it. A block mapping's own span starts at the
/// first key's colon, so a mapping is placed at its first key instead.
pub fn start_of(node: &Node) -> Option<Marker> {
    if let Node::Mapping(map) = node
        && let Some((key, _)) = map.iter().next()
        && let Some(start) = key.span().start()
        && node
            .span()
            .start()
            .is_none_or(|m| (m.line(), m.column()) >= (start.line(), start.column()))
    {
        return Some(*start);
    }
    node.span().start().copied()
}

/// Moves a marker that the parser placed on a block mapping's first colon to the
/// mapping's first key.
pub fn refine(tree: &Node, mark: Marker) -> Marker {
    fn find(node: &Node, mark: &Marker) -> Option<Marker> {
        if node.span().start() == Some(mark) {
            return start_of(node);
        }
        match node {
            Node::Mapping(map) => map.iter().find_map(|(_, v)| find(v, mark)),
            Node::Sequence(seq) => seq.iter().find_map(|v| find(v, mark)),
            Node::Scalar(_) => None,
        }
    }
    find(tree, &mark).unwrap_or(mark)
}

impl Problem {
    /// Resolves the path against the tree. A path that runs past the tree (a key
    /// that is absent) points at the deepest node that exists.
    pub fn locate(self, file: &str, tree: &Node) -> Diagnostic {
        let mut node = tree;
        let mut mark = start_of(node);
        let last = self.path.len().saturating_sub(1);
        for (i, seg) in self.path.iter().enumerate() {
            let next = match (seg, node) {
                (PathSeg::Key(_) | PathSeg::AnyKey(_), Node::Mapping(map)) => {
                    let wanted = |k: &str| match seg {
                        PathSeg::Key(key) => key == k,
                        PathSeg::AnyKey(keys) => keys.contains(&k),
                        PathSeg::Index(_) => false,
                    };
                    match map.iter().find(|(key, _)| wanted(key.as_str())) {
                        Some((key, _)) if self.on_key && i == last => {
                            mark = key.span().start().copied().or(mark);
                            None
                        }
                        Some((key, value)) => {
                            // An empty value has no useful span of its own; its key does.
                            mark = start_of(value).or(key.span().start().copied()).or(mark);
                            Some(value)
                        }
                        None => None,
                    }
                }
                (PathSeg::Index(ix), Node::Sequence(seq)) => seq.get(*ix).inspect(|v| {
                    mark = start_of(v).or(mark);
                }),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        let (line, column) = mark.map_or((1, 1), |m| (m.line(), m.column()));
        let d = Diagnostic::at(file, line, Some(column), self.message);
        match self.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}
