//! What plans compare of a [`Spec`] ([`Spec::fields`]) and what a replacement
//! cascades along ([`Spec::references`]).

use std::fmt;

use super::{
    AutoScalingGroup, Instance, InternetGateway, LaunchTemplate, Listener, ListenerAction,
    LoadBalancer, NatGateway, NodeConfig, RouteTable, Rule, RulePeer, SecurityGroup, Spec, Subnet,
    TargetGroup, Volume, Vpc,
};
use crate::plan::{Field, LogicalId, Value};

impl Spec {
    /// The comparable fields.
    pub fn fields(&self) -> Vec<Field> {
        fn scalar(name: &'static str, value: impl ToString, forces_replacement: bool) -> Field {
            Field {
                name,
                value: Value::Scalar(value.to_string()),
                forces_replacement,
            }
        }
        fn set<T: ToString>(name: &'static str, values: impl IntoIterator<Item = T>) -> Field {
            Field {
                name,
                value: Value::Set(values.into_iter().map(|v| v.to_string()).collect()),
                forces_replacement: false,
            }
        }
        fn opt(value: &Option<impl fmt::Display>) -> String {
            value
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string)
        }
        match self {
            Spec::Vpc(Vpc { cidr, dns }) => {
                vec![scalar("cidr", cidr, true), scalar("dns", dns, false)]
            }
            Spec::Subnet(Subnet { cidr, zone, public }) => {
                vec![
                    scalar("cidr", cidr, true),
                    scalar("zone", zone, true),
                    scalar("public", public, false),
                ]
            }
            Spec::InternetGateway(InternetGateway { attached }) => {
                vec![scalar("attached_to", opt(attached), false)]
            }
            Spec::ElasticIp => Vec::new(),
            Spec::NatGateway(NatGateway { subnet, eip }) => vec![
                scalar("subnet", subnet, true),
                scalar("elastic_ip", eip, true),
            ],
            Spec::RouteTable(RouteTable { routes, subnets }) => vec![
                set(
                    "routes",
                    routes
                        .iter()
                        .map(|r| format!("{} via {}", r.destination, r.target)),
                ),
                set("subnets", subnets),
            ],
            // Name and description are fixed at creation and derived from the logical id,
            // so only the rules are compared.
            Spec::SecurityGroup(SecurityGroup {
                ingress, egress, ..
            }) => vec![
                set("ingress", ingress.iter().map(Rule::inbound)),
                set("egress", egress.iter().map(Rule::outbound)),
            ],
            Spec::TargetGroup(TargetGroup {
                name,
                protocol,
                port,
                health_check_path,
                health_check_port,
            }) => vec![
                scalar("name", name, true),
                scalar("protocol", protocol.as_str(), true),
                scalar("port", port, true),
                scalar("health_check_path", opt(health_check_path), false),
                scalar(
                    "health_check_port",
                    health_check_port.map_or("traffic-port".to_owned(), |p| p.to_string()),
                    false,
                ),
            ],
            Spec::LoadBalancer(LoadBalancer {
                name,
                kind,
                scheme,
                subnets,
                security_groups,
            }) => vec![
                scalar("name", name, true),
                scalar("type", kind.as_str(), true),
                scalar("scheme", scheme.as_str(), true),
                set("subnets", subnets),
                set("security_groups", security_groups),
            ],
            Spec::LaunchTemplate(LaunchTemplate {
                image,
                instance_type,
                security_groups,
                volume,
                data_volume,
                instance_profile,
                ..
            }) => vec![
                scalar("image", image, false),
                scalar("instance_type", instance_type, false),
                set("security_groups", security_groups),
                scalar("volume", opt(volume), false),
                scalar("data_volume", opt(data_volume), false),
                scalar("instance_profile", opt(instance_profile), false),
            ],
            Spec::AutoScalingGroup(AutoScalingGroup {
                min,
                max,
                desired,
                subnets,
                target_groups,
                ..
            }) => vec![
                scalar("min", min, false),
                scalar("max", max, false),
                scalar("desired", desired, false),
                set("subnets", subnets),
                set("target_groups", target_groups),
            ],
            Spec::NodeConfig(NodeConfig { digest }) => vec![scalar("config", digest, false)],
            Spec::Volume(Volume {
                zone,
                size_gb,
                volume_type,
                attached_to,
            }) => vec![
                scalar("zone", zone, true),
                scalar("size", format!("{size_gb} GiB"), false),
                scalar("type", volume_type, false),
                scalar("attached_to", opt(attached_to), false),
            ],
            Spec::Instance(Instance {
                subnet,
                private_ip,
                image,
                instance_type,
                security_groups,
                target_groups,
                config,
                settings,
                ..
            }) => vec![
                scalar("subnet", subnet, true),
                scalar("private_ip", private_ip, true),
                scalar("image", image, true),
                scalar("instance_type", instance_type, true),
                scalar("config", config, true),
                scalar("volumes_and_profile", settings, true),
                set("security_groups", security_groups),
                set("target_groups", target_groups),
            ],
            Spec::Listener(Listener {
                load_balancer,
                protocol,
                port,
                certificate,
                action,
            }) => vec![
                scalar("load_balancer", load_balancer, true),
                scalar("port", port, true),
                scalar("protocol", protocol.as_str(), false),
                scalar("certificate", opt(certificate), false),
                scalar("action", action, false),
            ],
        }
    }

    /// Logical ids this resource refers to (for cascading replacements).
    pub fn references(&self) -> Vec<LogicalId> {
        let mut refs = vec![LogicalId::Vpc];
        match self {
            Spec::Vpc(_) => refs.clear(),
            Spec::NatGateway(NatGateway { subnet, eip }) => {
                refs.extend([subnet.clone(), eip.clone()])
            }
            Spec::RouteTable(RouteTable { routes, subnets }) => {
                refs.extend(routes.iter().map(|r| r.target.clone()));
                refs.extend(subnets.iter().cloned());
            }
            Spec::SecurityGroup(SecurityGroup {
                ingress, egress, ..
            }) => refs.extend(ingress.iter().chain(egress).filter_map(|r| match &r.peer {
                RulePeer::Group(g) => Some(g.clone()),
                RulePeer::Cidr(_) => None,
            })),
            Spec::LoadBalancer(LoadBalancer {
                subnets,
                security_groups,
                ..
            }) => {
                refs.extend(subnets.iter().cloned());
                refs.extend(security_groups.iter().cloned());
            }
            Spec::Listener(Listener {
                load_balancer,
                action,
                ..
            }) => {
                refs.push(load_balancer.clone());
                if let ListenerAction::Forward(tg) = action {
                    refs.push(tg.clone());
                }
            }
            Spec::LaunchTemplate(LaunchTemplate {
                security_groups, ..
            }) => refs.extend(security_groups.iter().cloned()),
            Spec::AutoScalingGroup(AutoScalingGroup {
                subnets,
                target_groups,
                ..
            }) => {
                refs.extend(subnets.iter().cloned());
                refs.extend(target_groups.iter().cloned());
                refs.push(LogicalId::LaunchTemplate);
            }
            Spec::NodeConfig(_) => refs.push(LogicalId::LaunchTemplate),
            Spec::Instance(Instance {
                subnet,
                security_groups,
                target_groups,
                ..
            }) => {
                refs.push(subnet.clone());
                refs.extend(security_groups.iter().cloned());
                refs.extend(target_groups.iter().cloned());
            }
            // A data volume refers to nothing: it outlives everything around it.
            Spec::Volume(_) => refs.clear(),
            Spec::Subnet(_) | Spec::InternetGateway(_) | Spec::ElasticIp | Spec::TargetGroup(_) => {
            }
        }
        refs
    }
}
