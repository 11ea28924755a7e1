//! The load balancers' checks: listeners, their endpoints and certificates, subnets,
//! groups and health checks.

use std::collections::BTreeMap;

use super::{Checker, list};
use crate::config::PathSeg;
use crate::config::catalogue::{self, LbProtocol};
use crate::config::model::*;
use crate::config::names;

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

pub(super) fn check_load_balancers(c: &mut Checker, network_ok: bool) {
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
