//! The network's checks: tags, the CIDR and how it is carved, NAT, security groups and
//! their rules.

use std::collections::{BTreeMap, BTreeSet};

use super::{Checker, closest, list};
use crate::config::PathSeg;
use crate::config::catalogue;
use crate::config::model::*;
use crate::config::types::*;

/// Most tags an EC2 resource takes, less the five strata sets itself.
const MAX_USER_TAGS: usize = 50 - 5;

pub(super) fn check_tags(c: &mut Checker) {
    let tags = &c.spec.tags;
    if tags.len() > MAX_USER_TAGS {
        c.report(
            path!["tags"],
            format!("{} tags is too many", tags.len()),
            format!(
                "AWS allows 50 tags per resource and strata uses 5; keep at most {MAX_USER_TAGS}"
            ),
        );
    }
    for (key, value) in tags {
        if value.len() > 256 {
            c.report(
                path!["tags", key.as_str()],
                format!("the value of tag `{key}` is longer than 256 characters"),
                "shorten it",
            );
        }
    }
}

/// Checks CIDR, zones, subnet counts and NAT. Returns false when subnets cannot be
/// carved, so later checks that need them stay quiet instead of piling on.
pub(super) fn check_network_numbers(c: &mut Checker) -> bool {
    let n = &c.spec.network;
    let mut ok = true;
    let prefix = n.cidr.net().prefix_len();
    if !(16..=28).contains(&prefix) {
        c.report(
            path!["network", "cidr"],
            format!("a VPC block must be between /16 and /28, not /{prefix}"),
            "choose a block such as 10.66.0.0/16",
        );
        ok = false;
    }
    match &n.zones {
        Zones::Count(count) if !(1..=6).contains(count) => {
            c.report(
                path!["network", "zones"],
                format!("{count} zones is out of range"),
                "use 1 to 6 zones",
            );
        }
        Zones::Names(names) => {
            if !(1..=6).contains(&names.len()) {
                c.report(
                    path!["network", "zones"],
                    format!("{} zones is out of range", names.len()),
                    "list 1 to 6 zones",
                );
            }
            let mut seen = BTreeSet::new();
            for (i, zone) in names.iter().enumerate() {
                if !zone.as_str().starts_with(c.spec.region.as_str())
                    || zone.as_str().len() != c.spec.region.as_str().len() + 1
                {
                    c.report(
                        path!["network", "zones", i],
                        format!("zone `{zone}` is not in region {}", c.spec.region),
                        format!("use zones of {} such as {}a", c.spec.region, c.spec.region),
                    );
                }
                if !seen.insert(zone) {
                    c.report(
                        path!["network", "zones", i],
                        format!("zone `{zone}` is listed twice"),
                        "list each zone once",
                    );
                }
            }
        }
        Zones::Count(_) => {}
    }
    if n.subnet_bits == 0 {
        c.report(
            path!["network", "subnet_bits"],
            "subnet_bits must be at least 1",
            "4 splits a /16 into sixteen /20 blocks",
        );
        return false;
    }
    let subnet_prefix = u32::from(prefix) + u32::from(n.subnet_bits);
    if subnet_prefix > 28 {
        c.report(
            path!["network", "subnet_bits"],
            format!("subnets would be /{subnet_prefix}, smaller than the /28 AWS allows"),
            format!(
                "with a /{prefix} VPC use subnet_bits of at most {}",
                28u32.saturating_sub(u32::from(prefix))
            ),
        );
        return false;
    }
    let blocks = 1u32 << n.subnet_bits;
    let wanted = u32::from(n.private_subnets) + u32::from(n.public_subnets);
    if wanted > blocks {
        c.report(
            path!["network", "public_subnets"],
            format!(
                "{wanted} subnets do not fit: subnet_bits {} carves {blocks} blocks",
                n.subnet_bits
            ),
            "raise subnet_bits or ask for fewer subnets",
        );
        ok = false;
    }
    let zones = n.zones.len();
    match n.nat {
        NatMode::None => {}
        NatMode::Single if n.public_subnets == 0 => {
            c.report(
                path!["network", "nat"],
                "NAT needs a public subnet to live in",
                "set public_subnets to at least 1, or nat: none",
            );
        }
        NatMode::PerZone if usize::from(n.public_subnets) < zones => {
            c.report(
                path!["network", "nat"],
                format!(
                    "per_zone NAT needs a public subnet in each of the {zones} zones, found {}",
                    n.public_subnets
                ),
                format!("set public_subnets to at least {zones}, or use nat: single"),
            );
        }
        _ => {}
    }
    ok
}

pub(super) fn check_security_groups(c: &mut Checker) {
    let groups = &c.spec.network.security_groups;
    let rules = catalogue::rules();
    for (name, group) in groups {
        for (direction, specs) in [("ingress", &group.ingress), ("egress", &group.egress)] {
            for (i, rule) in specs.iter().enumerate() {
                let at = || path!["network", "security_groups", name.as_str(), direction, i];
                match rule {
                    RuleSpec::Named(rule_name) if !rules.contains_key(rule_name) => {
                        let suggestion = closest(rule_name, rules.keys().map(String::as_str));
                        c.report(
                            at(),
                            format!("unknown rule `{rule_name}`"),
                            match suggestion {
                                Some(s) => format!("did you mean `{s}`? Named rules come from catalogue/rules.yaml; or write {{protocol, ports, from}}"),
                                None => "name a rule from catalogue/rules.yaml (ssh, https, etcd-client, ...) or write {protocol, ports, from}".to_owned(),
                            },
                        );
                    }
                    RuleSpec::Named(_) => {}
                    RuleSpec::Explicit(rule) => check_explicit_rule(c, rule, at(), groups),
                }
            }
        }
        if group.description.as_ref().is_some_and(|d| d.len() > 255) {
            c.report(
                path!["network", "security_groups", name.as_str(), "description"],
                "description is longer than 255 characters",
                "shorten it",
            );
        }
    }
}

fn check_explicit_rule(
    c: &mut Checker,
    rule: &ExplicitRule,
    at: Vec<PathSeg>,
    groups: &BTreeMap<LocalName, SecurityGroup>,
) {
    let with = |seg: &str| {
        let mut p = at.clone();
        p.push(PathSeg::from(seg));
        p
    };
    // `to` is accepted for `from` (it reads better in egress rules).
    let with_peer = || {
        let mut p = at.clone();
        p.push(PathSeg::AnyKey(&["from", "to"]));
        p
    };
    match (rule.protocol, rule.ports) {
        (IpProtocol::Tcp | IpProtocol::Udp, None) => {
            c.report(
                with("protocol"),
                "a tcp or udp rule needs `ports`",
                "add e.g. `ports: 443` or `ports: 8000-8080`",
            );
        }
        (IpProtocol::All | IpProtocol::Icmp, Some(_)) => {
            c.report(
                with("ports"),
                "ports do not apply to this protocol",
                "remove `ports`, or use tcp/udp",
            );
        }
        _ => {}
    }
    if rule.from.0.is_empty() {
        c.report(
            with_peer(),
            "a rule needs at least one peer",
            "write a CIDR block, `self` or a security group name",
        );
    }
    for (j, peer) in rule.from.0.iter().enumerate() {
        if let Peer::Group(g) = peer
            && !groups.contains_key(g.as_str())
        {
            let mut p = with_peer();
            p.push(PathSeg::Index(j));
            c.report(p, format!("unknown security group `{g}`"), format!("use a CIDR block, `self`, or a group defined under network.security_groups ({})", list(groups.keys())));
        }
    }
}
