//! The planner's property (ARCHITECTURE: "the plan is the truth"): for many generated
//! single-file changes to the example repository, on an account that matches the base
//! commit, the plan made from the diff (change detection, then the targets a diff
//! picks) holds exactly the actions of a plan of every layer of every environment, in
//! the same layers; and once applied, a plan of every layer has nothing left to do.
//!
//! Pure: live AWS is the base commit's desired state as [`DesiredState::as_live`] has
//! it; change detection reads an in-memory commit pair.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::desired::DesiredState;
use super::testing::{Side, examples};
use crate::changes::{self, CommitDiff, CommitRef, FileChange, ObjectId, Source};
use crate::config::Layer;
use crate::engine;
use crate::repo::RepoFiles;

/// One action as the property compares it: where, what, and each field change.
type Line = (Layer, String, String, String, Vec<String>);

fn blob(bytes: &[u8]) -> ObjectId {
    ObjectId::from_bytes_or_panic(&Sha256::digest(bytes)[..20])
}

/// A commit pair held in memory, as change detection reads it.
struct Commits<'a> {
    base: &'a RepoFiles,
    head: &'a RepoFiles,
}

impl Source for Commits<'_> {
    fn read(&mut self, id: ObjectId) -> Result<Vec<u8>, String> {
        [self.base, self.head]
            .into_iter()
            .flat_map(|f| f.environments.values().chain(f.units.values()))
            .find(|b| blob(b) == id)
            .cloned()
            .ok_or_else(|| format!("no blob {id}"))
    }

    fn head_environments(&mut self) -> Result<BTreeMap<String, ObjectId>, String> {
        Ok(self
            .head
            .environments
            .iter()
            .map(|(p, b)| (p.clone(), blob(b)))
            .collect())
    }

    fn head_unit_names(&mut self) -> Result<BTreeSet<String>, String> {
        let names = self.head.units.keys();
        Ok(names
            .filter_map(|p| crate::units::classify(p).ok())
            .map(|c| c.unit().to_owned())
            .collect())
    }
}

impl Commits<'_> {
    fn diff(&self) -> CommitDiff {
        let changed = |base: &BTreeMap<String, Vec<u8>>, head: &BTreeMap<String, Vec<u8>>| {
            let paths: BTreeSet<&String> = base.keys().chain(head.keys()).collect();
            paths
                .into_iter()
                .filter(|p| base.get(*p) != head.get(*p))
                .map(|p| FileChange {
                    path: p.clone(),
                    old: base.get(p).map(|b| blob(b)),
                    new: head.get(p).map(|b| blob(b)),
                })
                .collect()
        };
        let commit = |id: &str| CommitRef {
            id: id.repeat(40),
            short: id.repeat(7),
        };
        CommitDiff {
            base: commit("b"),
            head: commit("c"),
            environments: changed(&self.base.environments, &self.head.environments),
            unit_files: changed(&self.base.units, &self.head.units),
        }
    }
}

/// The plan of environment `name` with `layers` planned (of which `changed` changed),
/// live AWS holding `live`, as comparable lines.
fn lines(
    name: &str,
    head: &Side,
    live: &DesiredState,
    layers: &BTreeSet<Layer>,
    changed: &BTreeSet<Layer>,
) -> Vec<Line> {
    let planned = head.plan(name, live, layers, changed);
    planned
        .layers
        .iter()
        .flat_map(|l| {
            l.actions.iter().map(|a| {
                let changes = a.changes.iter().map(|c| format!("{c:?}")).collect();
                let kind = a.kind.describe().to_owned();
                (
                    l.layer,
                    kind,
                    a.id.to_string(),
                    a.action.to_string(),
                    changes,
                )
            })
        })
        .collect()
}

/// Checks the property for one change; returns whether the change has any action.
fn check(description: &str, base_files: &RepoFiles, head_files: &RepoFiles) -> Option<bool> {
    let head = Side::load(head_files)?;
    let base = Side::load(base_files).expect("the examples load");
    let mut commits = Commits {
        base: base_files,
        head: head_files,
    };
    let diff = commits.diff();
    let set = changes::detect(&diff, &mut commits)
        .unwrap_or_else(|e| panic!("{description}: change detection failed: {e}"));
    let removed = base.environments.clone();
    let targets = engine::from_changes(&set, &head.environments, &removed, &[]);
    let every: BTreeSet<Layer> = Layer::ALL.into_iter().collect();
    let names: BTreeSet<&String> = base
        .environments
        .keys()
        .chain(head.environments.keys())
        .collect();
    let mut any = false;
    for name in names {
        let (live, _) = base.state(name);
        let whole = lines(name, &head, &live, &every, &every);
        let from_diff = match targets.iter().find(|t| &t.name == name) {
            Some(t) => lines(name, &head, &live, &t.layers, &t.changed),
            None => Vec::new(),
        };
        assert_eq!(
            from_diff, whole,
            "{description}: {name}'s plan from the diff differs from a plan of every layer"
        );
        let (applied, _) = head.state(name);
        let after = lines(name, &head, &applied, &every, &every);
        assert_eq!(
            after,
            Vec::<Line>::new(),
            "{description}: {name} has changes left once applied"
        );
        any |= !whole.is_empty();
    }
    Some(any)
}

/// Each node of a JSON value, by its JSON pointer, with the key that names it.
fn nodes<'a>(
    value: &'a Value,
    pointer: String,
    key: &str,
    out: &mut Vec<(String, String, &'a Value)>,
) {
    out.push((pointer.clone(), key.to_owned(), value));
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                nodes(v, format!("{pointer}/{k}"), k, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nodes(v, format!("{pointer}/{i}"), key, out);
            }
        }
        _ => {}
    }
}

/// Other values a node may take: numbers one up and down, booleans flipped, strings
/// swapped for another of their kind, members and keys removed, map entries added.
fn variants(key: &str, value: &Value, unit_names: &[String]) -> Vec<Value> {
    match value {
        Value::Bool(b) => vec![Value::Bool(!b)],
        Value::Number(n) => {
            let n = n.as_u64().unwrap_or(0);
            let mut out = vec![Value::from(n + 1)];
            if n > 0 {
                out.push(Value::from(n - 1));
            }
            out
        }
        Value::String(s) => {
            let others: Vec<String> = match key {
                "instance_type" => vec!["t3.large".into()],
                "cidr" => vec![s.replacen(".0.0/", ".128.0/", 1).replace("/16", "/17")],
                "channel" => vec!["beta".into()],
                "nat" => ["none", "single", "per_zone"].map(String::from).to_vec(),
                "subnets" => ["private", "public"].map(String::from).to_vec(),
                "type" if s == "application" || s == "network" => {
                    vec!["application".into(), "network".into()]
                }
                "mode" | "region" | "name" => Vec::new(),
                "units" => unit_names.to_vec(),
                _ => vec![format!("{s}2")],
            };
            others
                .into_iter()
                .filter(|o| o != s)
                .map(Value::String)
                .collect()
        }
        Value::Array(items) => (0..items.len())
            .map(|i| {
                let mut fewer = items.clone();
                fewer.remove(i);
                Value::Array(fewer)
            })
            .collect(),
        Value::Object(map) => {
            let mut out: Vec<Value> = map
                .keys()
                .map(|k| {
                    let mut fewer = map.clone();
                    fewer.remove(k);
                    Value::Object(fewer)
                })
                .collect();
            if matches!(key, "tags" | "environment") {
                let mut more = map.clone();
                more.insert("PROBE".into(), Value::from("1"));
                out.push(Value::Object(more));
            }
            out
        }
        Value::Null => Vec::new(),
    }
}

/// `value` without nulls (an absent optional field).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Every single-file change the generator makes: each environment file's nodes
/// changed one at a time (written back as JSON, which is YAML), each unit and drop-in
/// changed in meaning or only in a comment, and a drop-in added to each service.
fn changes(base: &RepoFiles) -> Vec<(String, RepoFiles)> {
    let side = Side::load(base).expect("the examples load");
    let unit_names: Vec<String> = side.units.names().into_iter().collect();
    let mut out = Vec::new();
    for (path, env) in side.environments.values().map(|e| (e.path.clone(), e)) {
        let spec = without_nulls(serde_json::to_value(&env.spec).expect("a spec as JSON"));
        // Written back unchanged, the file means the same.
        let same = serde_json::to_string_pretty(&spec).expect("JSON");
        let mut files = base.clone();
        files.environments.insert(path.clone(), same.into_bytes());
        out.push((format!("{path} rewritten as JSON"), files));
        let mut all = Vec::new();
        nodes(&spec, String::new(), "", &mut all);
        for (pointer, key, value) in all.into_iter().skip(1) {
            for variant in variants(&key, value, &unit_names) {
                let mut changed = spec.clone();
                if let Some(node) = changed.pointer_mut(&pointer) {
                    *node = variant.clone();
                }
                let mut files = base.clone();
                let text = serde_json::to_string_pretty(&changed).expect("JSON");
                files.environments.insert(path.clone(), text.into_bytes());
                out.push((format!("{path}: {pointer} = {variant}"), files));
            }
        }
    }
    for (path, bytes) in &base.units {
        let text = String::from_utf8_lossy(bytes);
        let edits = [
            ("a comment added", format!("{text}\n# reviewed\n")),
            (
                "its description changed",
                match text.contains("Description=") {
                    true => text.replacen("Description=", "Description=(changed) ", 1),
                    false => format!("[Unit]\nDescription=changed\n{text}"),
                },
            ),
        ];
        for (what, edited) in edits {
            let mut files = base.clone();
            files.units.insert(path.clone(), edited.into_bytes());
            out.push((format!("units/{path}: {what}"), files));
        }
        if path.ends_with(".service") {
            let mut files = base.clone();
            let dropin = format!("{path}.d/limits.conf");
            files
                .units
                .insert(dropin, b"[Service]\nLimitNOFILE=65536\n".to_vec());
            out.push((format!("units/{path}: a drop-in added"), files));
        }
    }
    out
}

#[test]
fn a_plan_from_a_diff_holds_what_a_plan_of_every_layer_holds_and_converges() {
    let base = examples();
    let (mut valid, mut with_actions) = (0, 0);
    for (description, head) in changes(&base) {
        if let Some(any) = check(&description, &base, &head) {
            valid += 1;
            with_actions += usize::from(any);
        }
    }
    eprintln!("{valid} valid changes, {with_actions} of them with actions");
    // The generator must keep producing enough real changes to mean something.
    assert!(
        with_actions >= 200,
        "{valid} valid changes, {with_actions} with actions: fewer than 200"
    );
}
