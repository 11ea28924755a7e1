//! The node section's checks: units, etcd and the environment it writes.

use std::collections::BTreeSet;

use super::{Checker, closest};
use crate::config::model::*;

pub(super) fn check_node(c: &mut Checker, node: &Node, cluster: &Cluster) {
    let mut seen = BTreeSet::new();
    for (i, unit) in node.units.iter().enumerate() {
        if !c.units.contains(unit) {
            let hint = match closest(unit, c.units.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`? Units come from the units/ directory"),
                None => format!("add units/{unit}, or fix the name"),
            };
            c.report(
                path!["node", "units", i],
                format!("unit `{unit}` not found in units/"),
                hint,
            );
        } else if !seen.insert(unit) {
            c.report(
                path!["node", "units", i],
                format!("unit `{unit}` is listed twice"),
                "list each unit once",
            );
        }
    }
    if let Some(etcd) = &node.etcd {
        if etcd.bootstrap == EtcdBootstrap::Static && cluster.mode != ClusterMode::Fixed {
            c.report(path!["node", "etcd", "bootstrap"], "static etcd bootstrap needs a fixed cluster", "static members come from fixed node addresses; use `bootstrap: discovery` for an autoscaling cluster");
        }
        match (&etcd.discovery_url, etcd.bootstrap) {
            (Some(_), EtcdBootstrap::Static) => c.report(
                path!["node", "etcd", "discovery_url"],
                "discovery_url applies to `bootstrap: discovery`",
                "remove it, or set `bootstrap: discovery`",
            ),
            (Some(url), EtcdBootstrap::Discovery)
                if !(url.starts_with("https://") || url.starts_with("http://")) =>
            {
                c.report(
                    path!["node", "etcd", "discovery_url"],
                    "discovery_url must be an http(s) URL",
                    "write e.g. https://discovery.etcd.io/new?size={size}",
                );
            }
            _ => {}
        }
    }
    for (key, value) in &node.environment {
        if key.as_str().starts_with("STRATA_") {
            c.report_key(
                path!["node", "environment", key.as_str()],
                format!("`{key}` is reserved"),
                "strata writes the STRATA_* variables itself; choose another name",
            );
        } else if node.etcd.is_some() && key.as_str().starts_with("ETCD_INITIAL_") {
            c.report_key(
                path!["node", "environment", key.as_str()],
                format!("`{key}` is set by the etcd bootstrap"),
                "remove it; strata writes the etcd bootstrap values",
            );
        }
        if value.contains(['\n', '\r', '\0']) {
            c.report(
                path!["node", "environment", key.as_str()],
                format!("the value of `{key}` spans several lines"),
                "environment files take one line per variable",
            );
        }
    }
}
