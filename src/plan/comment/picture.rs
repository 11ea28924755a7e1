//! A picture of one environment as a Mermaid flowchart: the VPC, its subnets by zone,
//! the load balancers, their target groups and the machines, each part the plan
//! touches marked by what happens to it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::super::spec::{AutoScalingGroup, Instance, LoadBalancer, Subnet, TargetGroup, Vpc};
use super::super::{ActionKind, EnvironmentPlan, LogicalId, Resource, Spec};

/// What happens to a part of the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Create,
    Update,
    Replace,
    Roll,
    Delete,
}

impl Mark {
    fn class(self) -> &'static str {
        match self {
            Mark::Create => "create",
            Mark::Update => "update",
            Mark::Replace => "replace",
            Mark::Roll => "roll",
            Mark::Delete => "delete",
        }
    }
}

/// The legend under every picture.
pub const LEGEND: &str =
    "<sub>🟩 created · 🟨 updated · 🟧 replaced · 🟦 rolled · 🟥 deleted</sub>";

/// The environment's picture as a fenced Mermaid block, or `None` when it has no
/// network to draw.
pub fn picture(env: &EnvironmentPlan) -> Option<String> {
    let mut marks: BTreeMap<LogicalId, Mark> = BTreeMap::new();
    let mut resources: BTreeMap<LogicalId, Spec> = env
        .resources
        .iter()
        .map(|r: &Resource| (r.id.clone(), r.spec.clone()))
        .collect();
    for a in env.layers.iter().flat_map(|l| &l.actions) {
        let mark = match a.action {
            ActionKind::Create => Mark::Create,
            ActionKind::Update => Mark::Update,
            ActionKind::Replace if a.needs_consent() => Mark::Replace,
            ActionKind::Replace => Mark::Roll,
            ActionKind::Delete => Mark::Delete,
        };
        marks.insert(a.id.clone(), mark);
        if let (ActionKind::Delete, Some(o)) = (a.action, &a.observed) {
            resources
                .entry(o.id.clone())
                .or_insert_with(|| o.spec.clone());
        }
    }
    let vpc = resources.iter().find_map(|(_, s)| match s {
        Spec::Vpc(Vpc { cidr, .. }) => Some(cidr.to_string()),
        _ => None,
    })?;
    let mut out = String::from("```mermaid\nflowchart TB\n");
    let mut drawn: BTreeSet<String> = BTreeSet::new();
    let mut node = |out: &mut String, id: &LogicalId, label: &str| {
        drawn.insert(key(id));
        let _ = writeln!(out, "  {}[\"{label}\"]", key(id));
    };
    node(&mut out, &LogicalId::Vpc, &format!("VPC<br/>{vpc}"));
    // Subnets by zone, with the fixed-size cluster's instances in their subnet's zone.
    let mut zones: BTreeMap<String, Vec<(LogicalId, String)>> = BTreeMap::new();
    let mut subnet_zone: BTreeMap<LogicalId, String> = BTreeMap::new();
    for (id, spec) in &resources {
        if let Spec::Subnet(Subnet { cidr, zone, public }) = spec {
            let kind = if *public { "public" } else { "private" };
            let label = format!("{}<br/>{cidr} · {kind}", short(id));
            zones
                .entry(zone.to_string())
                .or_default()
                .push((id.clone(), label));
            subnet_zone.insert(id.clone(), zone.to_string());
        }
    }
    for (id, spec) in &resources {
        if let Spec::Instance(Instance {
            subnet, private_ip, ..
        }) = spec
            && let Some(zone) = subnet_zone.get(subnet)
        {
            let label = format!("{}<br/>{private_ip}", short(id));
            zones
                .entry(zone.clone())
                .or_default()
                .push((id.clone(), label));
        }
    }
    for (zone, members) in &zones {
        let _ = writeln!(out, "  subgraph {}[\"{zone}\"]", zone_key(zone));
        for (id, label) in members {
            let _ = write!(out, "  ");
            node(&mut out, id, label);
        }
        let _ = writeln!(out, "  end");
        let _ = writeln!(out, "  {} --> {}", key(&LogicalId::Vpc), zone_key(zone));
    }
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, spec) in &resources {
        match spec {
            Spec::LoadBalancer(LoadBalancer {
                kind,
                scheme,
                subnets,
                ..
            }) => {
                node(
                    &mut out,
                    id,
                    &format!("{}<br/>{} · {}", short(id), kind.as_str(), scheme.as_str()),
                );
                for s in subnets {
                    edges.insert((key(s), key(id)));
                }
            }
            Spec::TargetGroup(TargetGroup { protocol, port, .. }) => {
                node(
                    &mut out,
                    id,
                    &format!("{}<br/>{} {port}", short(id), protocol.as_str()),
                );
                if let LogicalId::TargetGroup(lb, _) = id {
                    edges.insert((key(&LogicalId::LoadBalancer(lb.clone())), key(id)));
                }
            }
            Spec::AutoScalingGroup(AutoScalingGroup {
                desired,
                subnets,
                target_groups,
                ..
            }) => {
                let machines = format!("{desired} machine{}", if *desired == 1 { "" } else { "s" });
                node(&mut out, id, &format!("auto-scaling group<br/>{machines}"));
                for s in subnets {
                    edges.insert((key(s), key(id)));
                }
                for t in target_groups {
                    edges.insert((key(t), key(id)));
                }
            }
            Spec::Instance(Instance {
                subnet,
                target_groups,
                ..
            }) => {
                edges.insert((key(subnet), key(id)));
                for t in target_groups {
                    edges.insert((key(t), key(id)));
                }
            }
            _ => {}
        }
    }
    for (from, to) in &edges {
        if drawn.contains(from) && drawn.contains(to) {
            let _ = writeln!(out, "  {from} --> {to}");
        }
    }
    let _ = writeln!(
        out,
        "  classDef create fill:#dafbe1,stroke:#1a7f37,color:#1f2328\n  \
         classDef update fill:#fff8c5,stroke:#9a6700,color:#1f2328\n  \
         classDef replace fill:#fff1e5,stroke:#bc4c00,color:#1f2328\n  \
         classDef roll fill:#ddf4ff,stroke:#0969da,color:#1f2328\n  \
         classDef delete fill:#ffebe9,stroke:#cf222e,color:#1f2328,stroke-dasharray:4 3"
    );
    for (id, mark) in &marks {
        if drawn.contains(&key(id)) {
            let _ = writeln!(out, "  class {} {}", key(id), mark.class());
        }
    }
    out.push_str("```");
    Some(out)
}

/// A Mermaid node id for a logical id: letters, digits and underscores.
fn key(id: &LogicalId) -> String {
    let text: String = id
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("n_{text}")
}

fn zone_key(zone: &str) -> String {
    let text: String = zone
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("z_{text}")
}

/// A logical id without its kind's prefix where the label says the kind: `private/0`.
fn short(id: &LogicalId) -> String {
    match id {
        LogicalId::Subnet(kind, i) => format!("{}/{i}", kind.as_str()),
        LogicalId::LoadBalancer(l) => format!("load balancer {l}"),
        LogicalId::TargetGroup(l, p) => format!("target group {l}/{p}"),
        other => other.to_string(),
    }
}
