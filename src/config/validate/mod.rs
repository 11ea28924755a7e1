//! Semantic checks of one environment, all reported at once, by concern: `network`
//! (tags, carving, NAT, security groups), `balancers`, `cluster` (which also yields
//! the cluster's shape) and `node`.
//!
//! Each check speaks in logical paths; [`super::locate`] turns them into positions.

macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(crate::config::PathSeg::from($seg)),*] };
}

mod balancers;
mod cluster;
mod network;
mod node;

use std::collections::BTreeSet;

pub use balancers::listener_target;

use super::locate::Problem;
use super::model::*;
use super::shape::ClusterShape;
use super::types::*;
use crate::config::PathSeg;

struct Checker<'a> {
    env: &'a EnvName,
    spec: &'a EnvironmentSpec,
    units: &'a BTreeSet<String>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, path: Vec<PathSeg>, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem {
            path,
            on_key: false,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }

    fn report_key(
        &mut self,
        path: Vec<PathSeg>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path,
            on_key: true,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }
}

/// Runs every check: the problems found (none when the environment is valid), and the
/// cluster's shape when it has a valid one.
pub(super) fn check(
    env: &EnvName,
    spec: &EnvironmentSpec,
    units: &BTreeSet<String>,
) -> (Vec<Problem>, Option<ClusterShape>) {
    let mut c = Checker {
        env,
        spec,
        units,
        problems: Vec::new(),
    };
    network::check_tags(&mut c);
    let network_ok = network::check_network_numbers(&mut c);
    network::check_security_groups(&mut c);
    balancers::check_load_balancers(&mut c, network_ok);
    let shape = spec
        .cluster
        .as_ref()
        .and_then(|cluster| cluster::check_cluster(&mut c, cluster, network_ok));
    match (&spec.node, &spec.cluster) {
        (Some(node), Some(cluster)) => node::check_node(&mut c, node, cluster),
        (Some(_), None) => c.report_key(
            path!["node"],
            "a node section needs a cluster to run on",
            "add a `cluster:` section, or remove `node:`",
        ),
        (None, _) => {}
    }
    (c.problems, shape)
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let names: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if names.is_empty() {
        "none is defined".to_owned()
    } else {
        names.join(", ")
    }
}

/// True when `written` is close enough to `meant` to be a typo of it.
pub(super) fn is_typo(written: &str, meant: &str) -> bool {
    edit_distance(written, meant) <= 2.max(meant.len() / 4)
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_catalogue_entry() {
        assert_eq!(
            closest(
                "etcd-clinet",
                ["etcd-client", "etcd-server", "ssh"].into_iter()
            ),
            Some("etcd-client")
        );
        assert_eq!(closest("zzz", ["etcd-client", "ssh"].into_iter()), None);
    }
}
