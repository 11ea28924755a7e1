//! Semantic checks of one environment, all reported at once.
//!
//! Each check speaks in logical paths; [`super::locate`] turns them into positions.

use std::collections::{BTreeMap, BTreeSet};

use super::catalogue::{self, LbProtocol};
use super::locate::{PathSeg, Problem};
use super::model::*;
use super::names;
use super::types::*;
use crate::addressing;

/// Most tags an EC2 resource takes, less the five strata sets itself.
const MAX_USER_TAGS: usize = 50 - 5;

macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(PathSeg::from($seg)),*] };
}

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

/// Runs every check; an empty result means the environment is valid.
pub(super) fn check(
    env: &EnvName,
    spec: &EnvironmentSpec,
    units: &BTreeSet<String>,
) -> Vec<Problem> {
    let mut c = Checker {
        env,
        spec,
        units,
        problems: Vec::new(),
    };
    check_tags(&mut c);
    let network_ok = check_network_numbers(&mut c);
    check_security_groups(&mut c);
    check_load_balancers(&mut c, network_ok);
    if let Some(cluster) = &spec.cluster {
        check_cluster(&mut c, cluster, network_ok);
    }
    match (&spec.node, &spec.cluster) {
        (Some(node), Some(cluster)) => check_node(&mut c, node, cluster),
        (Some(_), None) => c.report_key(
            path!["node"],
            "a node section needs a cluster to run on",
            "add a `cluster:` section, or remove `node:`",
        ),
        (None, _) => {}
    }
    c.problems
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

fn check_tags(c: &mut Checker) {
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
fn check_network_numbers(c: &mut Checker) -> bool {
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

fn check_security_groups(c: &mut Checker) {
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

/// Resolves a listener endpoint to (protocol, port) for a load balancer type.
fn resolve_endpoint(
    kind: LoadBalancerKind,
    endpoint: &Endpoint,
) -> Result<(LbProtocol, u16), String> {
    match endpoint {
        Endpoint::Port(port) => Ok((
            match kind {
                LoadBalancerKind::Application => LbProtocol::Http,
                LoadBalancerKind::Network => LbProtocol::Tcp,
            },
            *port,
        )),
        Endpoint::Named(name) => {
            let Some(entry) = catalogue::protocols().get(name) else {
                return Err(format!("unknown protocol `{name}`"));
            };
            let protocol = match kind {
                LoadBalancerKind::Application => entry.application,
                LoadBalancerKind::Network => entry.network,
            };
            protocol.map(|p| (p, entry.port)).ok_or_else(|| {
                format!(
                    "protocol `{name}` cannot be used with a{} load balancer",
                    if kind == LoadBalancerKind::Application {
                        "n application"
                    } else {
                        " network"
                    }
                )
            })
        }
    }
}

/// The listener endpoint resolved the way the AWS adapter will create it.
pub fn listener_target(kind: LoadBalancerKind, endpoint: &Endpoint) -> Option<(LbProtocol, u16)> {
    resolve_endpoint(kind, endpoint).ok()
}

fn check_load_balancers(c: &mut Checker, network_ok: bool) {
    let n = &c.spec.network;
    for (name, lb) in &n.load_balancers {
        let at = |rest: &[PathSeg]| {
            let mut p = path!["network", "load_balancers", name.as_str()];
            p.extend_from_slice(rest);
            p
        };
        let lb_name = names::load_balancer(c.env.as_str(), name.as_str());
        if lb_name.len() > names::ELB_NAME_MAX {
            c.report_key(
                at(&[]),
                format!(
                    "load balancer name `{lb_name}` is {} characters; AWS allows {}",
                    lb_name.len(),
                    names::ELB_NAME_MAX
                ),
                "shorten the environment or load balancer name",
            );
        }
        let count = match lb.subnets {
            SubnetKind::Private => n.private_subnets,
            SubnetKind::Public => n.public_subnets,
        };
        if network_ok && count == 0 {
            c.report(
                at(&["subnets".into()]),
                format!("the network has no {} subnets", lb.subnets.as_str()),
                format!(
                    "set network.{}_subnets, or place the load balancer in the other kind",
                    lb.subnets.as_str()
                ),
            );
        } else if network_ok
            && lb.kind == LoadBalancerKind::Application
            && usize::from(count).min(n.zones.len()) < 2
        {
            c.report(
                at(&["subnets".into()]),
                "an application load balancer needs subnets in at least two zones",
                format!(
                    "give the network at least 2 zones and 2 {} subnets, or use type: network",
                    lb.subnets.as_str()
                ),
            );
        }
        if !lb.internal && lb.subnets == SubnetKind::Private {
            c.report(
                at(&["subnets".into()]),
                "an internet-facing load balancer cannot live in private subnets",
                "use `subnets: public`, or set `internal: true`",
            );
        }
        if lb.kind == LoadBalancerKind::Network && !lb.security_groups.is_empty() {
            c.report(
                at(&["security_groups".into()]),
                "security groups apply to application load balancers only",
                "remove them, or use type: application",
            );
        }
        for (i, g) in lb.security_groups.iter().enumerate() {
            if !n.security_groups.contains_key(g) {
                c.report(
                    at(&["security_groups".into(), i.into()]),
                    format!("unknown security group `{g}`"),
                    format!(
                        "define it under network.security_groups ({})",
                        list(n.security_groups.keys())
                    ),
                );
            }
        }
        if lb.listeners.is_empty() {
            c.report(
                at(&["listeners".into()]),
                "a load balancer needs at least one listener",
                "add e.g. `{ front: http, back: 8080 }`",
            );
        }
        let mut fronts = BTreeMap::new();
        for (i, listener) in lb.listeners.iter().enumerate() {
            let l = |field: &str| at(&["listeners".into(), i.into(), field.into()]);
            match resolve_endpoint(lb.kind, &listener.front) {
                Err(e) => c.report(l("front"), e, protocol_hint(lb.kind)),
                Ok((protocol, port)) => {
                    if let Some(previous) = fronts.insert(port, i) {
                        c.report(
                            l("front"),
                            format!("port {port} already has a listener (listener {previous})"),
                            "give each listener its own front port",
                        );
                    }
                    match (&listener.certificate, protocol.needs_certificate()) {
                        (None, true) => c.report(
                            l("front"),
                            format!(
                                "{} listener needs a certificate",
                                with_article(protocol.as_str())
                            ),
                            "add `certificate: arn:aws:acm:...`",
                        ),
                        (Some(_), false) => c.report(
                            l("certificate"),
                            format!(
                                "a certificate does not apply to {} listener",
                                with_article(protocol.as_str())
                            ),
                            "remove it, or use an https/tls front",
                        ),
                        _ => {}
                    }
                }
            }
            match (&listener.back, &listener.redirect) {
                (Some(back), None) => {
                    if let Err(e) = resolve_endpoint(lb.kind, back) {
                        c.report(l("back"), e, protocol_hint(lb.kind));
                    } else if let Some((_, port)) = listener_target(lb.kind, back) {
                        let tg = names::target_group(c.env.as_str(), name.as_str(), port);
                        if tg.len() > names::ELB_NAME_MAX {
                            c.report(
                                l("back"),
                                format!(
                                    "target group name `{tg}` is {} characters; AWS allows {}",
                                    tg.len(),
                                    names::ELB_NAME_MAX
                                ),
                                "shorten the environment or load balancer name",
                            );
                        }
                    }
                }
                (None, Some(redirect)) => {
                    if lb.kind == LoadBalancerKind::Network {
                        c.report(
                            l("redirect"),
                            "only application load balancers can redirect",
                            "use `back:` to forward instead",
                        );
                    } else if let Err(e) = resolve_endpoint(lb.kind, redirect) {
                        c.report(l("redirect"), e, protocol_hint(lb.kind));
                    }
                }
                (Some(_), Some(_)) => c.report(
                    l("redirect"),
                    "a listener either forwards (`back`) or redirects (`redirect`), not both",
                    "remove one of them",
                ),
                (None, None) => c.report(
                    at(&["listeners".into(), i.into()]),
                    "a listener needs `back` (where to forward) or `redirect`",
                    "add e.g. `back: 8080`",
                ),
            }
        }
    }
}

/// "an HTTP", "a TCP": the article as the acronym is spoken.
fn with_article(acronym: &str) -> String {
    let vowel_sound =
        acronym.starts_with(['A', 'E', 'F', 'H', 'I', 'L', 'M', 'N', 'O', 'R', 'S', 'X']);
    format!("{} {acronym}", if vowel_sound { "an" } else { "a" })
}

fn protocol_hint(kind: LoadBalancerKind) -> String {
    let names: Vec<&str> = catalogue::protocols()
        .iter()
        .filter(|(_, e)| match kind {
            LoadBalancerKind::Application => e.application.is_some(),
            LoadBalancerKind::Network => e.network.is_some(),
        })
        .map(|(n, _)| n.as_str())
        .collect();
    format!(
        "use a port or one of {} (catalogue/protocols.yaml)",
        names.join(", ")
    )
}

fn check_cluster(c: &mut Checker, cluster: &Cluster, network_ok: bool) {
    let n = &c.spec.network;
    match cluster.mode {
        ClusterMode::Fixed => {
            for (field, value) in [
                ("min", cluster.min),
                ("max", cluster.max),
                ("desired", cluster.desired),
            ] {
                if value.is_some() {
                    c.report(
                        path!["cluster", field],
                        format!("`{field}` applies to autoscaling clusters"),
                        "a fixed cluster uses `size`; remove it or set `mode: autoscaling`",
                    );
                }
            }
            match cluster.size {
                None => c.report(
                    path!["cluster", "mode"],
                    "a fixed cluster needs `size`",
                    "add e.g. `size: 3`",
                ),
                Some(0) => c.report(
                    path!["cluster", "size"],
                    "size must be at least 1",
                    "set size to the number of nodes",
                ),
                Some(size) if network_ok => check_fixed_capacity(c, cluster, size),
                Some(_) => {}
            }
        }
        ClusterMode::Autoscaling => {
            if cluster.size.is_some() {
                c.report(
                    path!["cluster", "size"],
                    "`size` applies to fixed clusters",
                    "an autoscaling cluster uses min, max and desired",
                );
            }
            match (cluster.min, cluster.max) {
                (Some(min), Some(max)) => {
                    let desired = cluster.desired.unwrap_or(min);
                    if max == 0 {
                        c.report(
                            path!["cluster", "max"],
                            "max must be at least 1",
                            "raise max",
                        );
                    } else if min > max {
                        c.report(
                            path!["cluster", "min"],
                            format!("min {min} is larger than max {max}"),
                            "keep min ≤ desired ≤ max",
                        );
                    } else if !(min..=max).contains(&desired) {
                        c.report(
                            path!["cluster", "desired"],
                            format!("desired {desired} is outside min {min} .. max {max}"),
                            "keep min ≤ desired ≤ max",
                        );
                    }
                }
                (None, _) => c.report(
                    path!["cluster", "mode"],
                    "an autoscaling cluster needs `min` and `max`",
                    "add e.g. `min: 1` and `max: 3`",
                ),
                (_, None) => c.report(
                    path!["cluster", "mode"],
                    "an autoscaling cluster needs `max`",
                    "add e.g. `max: 3`",
                ),
            }
        }
    }
    match (&cluster.os, &cluster.ami) {
        (Some(_), Some(_)) => c.report(
            path!["cluster", "ami"],
            "give either `os` or `ami`, not both",
            "`os` looks the image up at run time; `ami` pins one",
        ),
        (None, None) => c.report_key(
            path!["cluster"],
            "the cluster needs an image: `os` or `ami`",
            "add e.g. `os: { name: flatcar, channel: stable }`",
        ),
        (Some(os), None) => {
            if !os.name.channels().contains(&os.channel.as_str()) {
                c.report(
                    path!["cluster", "os", "channel"],
                    format!("unknown channel `{}`", os.channel),
                    format!("use one of {}", os.name.channels().join(", ")),
                );
            }
            if let Some(url) = &os.feed_url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                c.report(
                    path!["cluster", "os", "feed_url"],
                    "feed_url must be an http(s) URL",
                    "write e.g. https://mirror.example.com/flatcar/",
                );
            }
            if let Some(owners) = &os.owners {
                for (i, o) in owners.iter().enumerate() {
                    if o.len() != 12 || !o.chars().all(|ch| ch.is_ascii_digit()) {
                        c.report(
                            path!["cluster", "os", "owners", i],
                            format!("`{o}` is not an AWS account id"),
                            "write the 12-digit account id that owns the images",
                        );
                    }
                }
            }
        }
        (None, Some(_)) => {}
    }
    let count = match cluster.subnets {
        SubnetKind::Private => n.private_subnets,
        SubnetKind::Public => n.public_subnets,
    };
    if network_ok && count == 0 {
        c.report(
            path!["cluster", "subnets"],
            format!("the network has no {} subnets", cluster.subnets.as_str()),
            format!(
                "set network.{}_subnets, or use the other kind",
                cluster.subnets.as_str()
            ),
        );
    }
    check_references(
        c,
        &cluster.security_groups,
        "security_groups",
        n.security_groups.keys().collect(),
        "network.security_groups",
    );
    check_references(
        c,
        &cluster.load_balancers,
        "load_balancers",
        n.load_balancers.keys().collect(),
        "network.load_balancers",
    );
    if let Some(volume) = &cluster.volume
        && !(1..=16384).contains(&volume.size_gb)
    {
        c.report(
            path!["cluster", "volume", "size_gb"],
            format!("{} GiB is out of range", volume.size_gb),
            "EBS volumes are 1 to 16384 GiB",
        );
    }
    if let Some(data) = &cluster.data_volume {
        if !(1..=16384).contains(&data.size_gb) {
            c.report(
                path!["cluster", "data_volume", "size_gb"],
                format!("{} GiB is out of range", data.size_gb),
                "EBS volumes are 1 to 16384 GiB",
            );
        }
        if !data.device.starts_with("/dev/") {
            c.report(
                path!["cluster", "data_volume", "device"],
                format!("`{}` is not a device path", data.device),
                "write e.g. /dev/xvdf",
            );
        }
        let max = match data.format {
            FsFormat::Xfs => 12,
            FsFormat::Ext4 => 16,
        };
        if data.label.is_empty()
            || data.label.len() > max
            || !data
                .label
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.report(
                path!["cluster", "data_volume", "label"],
                format!("`{}` is not a usable filesystem label", data.label),
                format!("use 1 to {max} letters, digits, - or _"),
            );
        }
    }
    if cluster.rollout.min_healthy_percent > 100 {
        c.report(
            path!["cluster", "rollout", "min_healthy_percent"],
            "a percentage is at most 100",
            "use 0 to 100",
        );
    }
    if let Some(profile) = &cluster.instance_profile
        && (profile.is_empty()
            || profile.len() > 128
            || !profile
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch)))
    {
        c.report(
            path!["cluster", "instance_profile"],
            format!("`{profile}` is not an instance profile name"),
            "use the profile's name (not its ARN): letters, digits and +=,.@_-",
        );
    }
}

fn check_fixed_capacity(c: &mut Checker, cluster: &Cluster, size: u16) {
    let n = &c.spec.network;
    let subnets = addressing::subnets_of(n, cluster.subnets);
    if subnets.is_empty() {
        return;
    }
    let capacity: u32 = subnets.iter().map(|s| s.node_capacity()).sum();
    if addressing::node_placement(n, cluster.subnets, size - 1).is_none() {
        c.report(
            path!["cluster", "size"],
            format!(
                "{size} nodes do not fit in the {} {} subnets (room for {capacity})",
                subnets.len(),
                cluster.subnets.as_str()
            ),
            "lower subnet_bits for larger subnets, add subnets, or shrink the cluster",
        );
    }
}

fn check_references(
    c: &mut Checker,
    refs: &[LocalName],
    field: &str,
    defined: BTreeSet<&LocalName>,
    section: &str,
) {
    let mut seen = BTreeSet::new();
    for (i, r) in refs.iter().enumerate() {
        if !defined.contains(r) {
            let what = if field == "security_groups" {
                "security group"
            } else {
                "load balancer"
            };
            c.report(
                path!["cluster", field, i],
                format!("unknown {what} `{r}`"),
                format!("define it under {section} ({})", list(defined.iter())),
            );
        } else if !seen.insert(r) {
            c.report(
                path!["cluster", field, i],
                format!("`{r}` is listed twice"),
                "list it once",
            );
        }
    }
}

fn check_node(c: &mut Checker, node: &Node, cluster: &Cluster) {
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
