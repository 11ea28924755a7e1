//! The network layer's desired resources, derived from an environment (pure).

use std::collections::BTreeSet;

use super::spec::{
    InternetGateway, Listener, LoadBalancer, NatGateway, RouteTable, Scheme, SecurityGroup, Subnet,
    TargetGroup, Vpc,
};
use super::{Kind, ListenerAction, LogicalId, Resource, Route, Rule, RulePeer, Spec};
use crate::config::addressing;
use crate::config::catalogue::{self, LbProtocol};
use crate::config::{
    Cidr, Endpoint, Environment, ExplicitRule, IpProtocol, LoadBalancerKind, NatMode, Peer,
    RuleSpec, SubnetKind, Zone, names,
};

/// Everything the network layer of `env` consists of, in creation order. `zones` are
/// the availability-zone names, one per zone index (resolved by the caller when the
/// file gives a count).
pub fn desired(env: &Environment, zones: &[Zone]) -> Vec<Resource> {
    let name = env.name.as_str();
    let network = &env.spec.network;
    let mut out = Vec::new();
    let mut push = |kind, id: LogicalId, spec| out.push(Resource { kind, id, spec });

    push(
        Kind::Vpc,
        LogicalId::Vpc,
        Spec::Vpc(Vpc {
            cidr: network.cidr,
            dns: true,
        }),
    );
    let subnets = addressing::subnets(network);
    for s in &subnets {
        // Callers give a name for every zone index.
        let Some(zone) = zones.get(s.zone) else {
            continue;
        };
        push(
            Kind::Subnet,
            LogicalId::subnet(s),
            Spec::Subnet(Subnet {
                cidr: Cidr::from(s.block),
                zone: zone.clone(),
                public: s.kind == SubnetKind::Public,
            }),
        );
    }
    let has_public = network.public_subnets > 0;
    if has_public {
        push(
            Kind::InternetGateway,
            LogicalId::InternetGateway,
            Spec::InternetGateway(InternetGateway {
                attached: Some(LogicalId::Vpc),
            }),
        );
    }
    let zone_count = network.zones.len().max(1);
    let nat_zones: Vec<usize> = match network.nat {
        NatMode::None => Vec::new(),
        NatMode::Single if has_public => vec![0],
        NatMode::PerZone if has_public => {
            (0..zone_count.min(usize::from(network.public_subnets))).collect()
        }
        _ => Vec::new(),
    };
    for &z in &nat_zones {
        push(Kind::ElasticIp, LogicalId::NatAddress(z), Spec::ElasticIp);
    }
    for &z in &nat_zones {
        // Public subnet z sits in zone z (subnets of a kind round-robin over zones).
        push(
            Kind::NatGateway,
            LogicalId::NatGateway(z),
            Spec::NatGateway(NatGateway {
                subnet: LogicalId::Subnet(SubnetKind::Public, z),
                eip: LogicalId::NatAddress(z),
            }),
        );
    }
    if has_public {
        let members = subnets
            .iter()
            .filter(|s| s.kind == SubnetKind::Public)
            .map(LogicalId::subnet)
            .collect();
        let routes = BTreeSet::from([Route {
            destination: "0.0.0.0/0".into(),
            target: LogicalId::InternetGateway,
        }]);
        push(
            Kind::RouteTable,
            LogicalId::PublicRoutes,
            Spec::RouteTable(RouteTable {
                routes,
                subnets: members,
            }),
        );
    }
    for z in 0..zone_count {
        let members: BTreeSet<LogicalId> = subnets
            .iter()
            .filter(|s| s.kind == SubnetKind::Private && s.zone == z)
            .map(LogicalId::subnet)
            .collect();
        if members.is_empty() {
            continue;
        }
        let nat = match network.nat {
            NatMode::Single if !nat_zones.is_empty() => Some(LogicalId::NatGateway(0)),
            NatMode::PerZone if nat_zones.contains(&z) => Some(LogicalId::NatGateway(z)),
            _ => None,
        };
        let routes = nat
            .into_iter()
            .map(|target| Route {
                destination: "0.0.0.0/0".into(),
                target,
            })
            .collect();
        push(
            Kind::RouteTable,
            LogicalId::PrivateRoutes(z),
            Spec::RouteTable(RouteTable {
                routes,
                subnets: members,
            }),
        );
    }

    for (group, sg) in &network.security_groups {
        let id = LogicalId::SecurityGroup(group.to_string());
        let ingress_sources: Vec<String> = if sg.ingress_cidrs.is_empty() {
            vec![network.cidr.to_string()]
        } else {
            sg.ingress_cidrs.iter().map(|c| c.to_string()).collect()
        };
        let egress_targets: Vec<String> = if sg.egress_cidrs.is_empty() {
            vec!["0.0.0.0/0".to_owned()]
        } else {
            sg.egress_cidrs.iter().map(|c| c.to_string()).collect()
        };
        let ingress = rules(&sg.ingress, &ingress_sources, &id);
        // No egress rules given: keep AWS's default of everything to anywhere.
        let egress = if sg.egress.is_empty() {
            BTreeSet::from([Rule {
                protocol: "all".into(),
                from_port: None,
                to_port: None,
                peer: RulePeer::Cidr("0.0.0.0/0".into()),
            }])
        } else {
            rules(&sg.egress, &egress_targets, &id)
        };
        push(
            Kind::SecurityGroup,
            id,
            Spec::SecurityGroup(SecurityGroup {
                name: names::resource(name, group.as_str()),
                description: sg
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("strata {name} {group}")),
                ingress,
                egress,
            }),
        );
    }

    for (lb_name, lb) in &network.load_balancers {
        let lb_id = LogicalId::LoadBalancer(lb_name.to_string());
        for (protocol, port) in target_groups(lb) {
            let http = matches!(protocol, LbProtocol::Http | LbProtocol::Https);
            let check = lb.health_check.as_ref();
            push(
                Kind::TargetGroup,
                LogicalId::TargetGroup(lb_name.to_string(), port),
                Spec::TargetGroup(TargetGroup {
                    name: names::target_group(name, lb_name.as_str(), port),
                    protocol,
                    port,
                    health_check_path: if http {
                        Some(
                            check
                                .and_then(|c| c.path.clone())
                                .unwrap_or_else(|| "/".to_owned()),
                        )
                    } else {
                        None
                    },
                    health_check_port: check.and_then(|c| c.port),
                }),
            );
        }
        let subnet_ids = subnets
            .iter()
            .filter(|s| s.kind == lb.subnets)
            .map(LogicalId::subnet)
            .collect();
        push(
            Kind::LoadBalancer,
            lb_id.clone(),
            Spec::LoadBalancer(LoadBalancer {
                name: names::load_balancer(name, lb_name.as_str()),
                kind: lb.kind,
                scheme: if lb.internal {
                    Scheme::Internal
                } else {
                    Scheme::InternetFacing
                },
                subnets: subnet_ids,
                security_groups: lb
                    .security_groups
                    .iter()
                    .map(|g| LogicalId::SecurityGroup(g.to_string()))
                    .collect(),
            }),
        );
        for listener in &lb.listeners {
            let Some((protocol, port)) = resolve(lb.kind, &listener.front) else {
                continue;
            };
            let action = match (&listener.back, &listener.redirect) {
                (Some(back), _) => match resolve(lb.kind, back) {
                    Some((_, back_port)) => ListenerAction::Forward(LogicalId::TargetGroup(
                        lb_name.to_string(),
                        back_port,
                    )),
                    None => continue,
                },
                (None, Some(redirect)) => match resolve(lb.kind, redirect) {
                    Some((p, port)) => ListenerAction::Redirect {
                        protocol: p.as_str().to_owned(),
                        port,
                    },
                    None => continue,
                },
                (None, None) => continue,
            };
            push(
                Kind::Listener,
                LogicalId::Listener(lb_name.to_string(), port),
                Spec::Listener(Listener {
                    load_balancer: lb_id.clone(),
                    protocol,
                    port,
                    certificate: listener.certificate.as_ref().map(|c| c.to_string()),
                    action,
                }),
            );
        }
    }
    out
}

/// A load balancer's target groups: one per instance port its listeners forward to,
/// with the protocol of the first listener that names it.
pub fn target_groups(lb: &crate::config::LoadBalancer) -> Vec<(LbProtocol, u16)> {
    let mut ports = BTreeSet::new();
    lb.listeners
        .iter()
        .filter_map(|l| resolve(lb.kind, l.back.as_ref()?))
        .filter(|(_, port)| ports.insert(*port))
        .collect()
}

fn resolve(kind: LoadBalancerKind, endpoint: &Endpoint) -> Option<(LbProtocol, u16)> {
    crate::config::listener_target(kind, endpoint)
}

/// Expands rule specs: named rules open to/from `cidrs`, explicit rules to their peers.
fn rules(specs: &[RuleSpec], cidrs: &[String], own_id: &LogicalId) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for spec in specs {
        match spec {
            RuleSpec::Named(name) => {
                let Some(entry) = catalogue::rules().get(name) else {
                    continue;
                };
                for cidr in cidrs {
                    out.insert(rule(
                        entry.protocol,
                        entry.ports,
                        RulePeer::Cidr(cidr.clone()),
                    ));
                }
            }
            RuleSpec::Explicit(ExplicitRule {
                protocol,
                ports,
                from,
                ..
            }) => {
                for peer in &from.0 {
                    let peer = match peer {
                        Peer::SelfGroup => RulePeer::Group(own_id.clone()),
                        Peer::Cidr(c) => RulePeer::Cidr(c.to_string()),
                        Peer::Group(g) => RulePeer::Group(LogicalId::SecurityGroup(g.to_string())),
                    };
                    out.insert(rule(*protocol, *ports, peer));
                }
            }
        }
    }
    out
}

fn rule(protocol: IpProtocol, ports: Option<crate::config::PortRange>, peer: RulePeer) -> Rule {
    let protocol = match protocol {
        IpProtocol::Tcp => "tcp",
        IpProtocol::Udp => "udp",
        IpProtocol::Icmp => "icmp",
        IpProtocol::All => "all",
    };
    let (from_port, to_port) = match protocol {
        "tcp" | "udp" => (ports.map(|p| p.from), ports.map(|p| p.to)),
        _ => (None, None),
    };
    Rule {
        protocol: protocol.to_owned(),
        from_port,
        to_port,
        peer,
    }
}
