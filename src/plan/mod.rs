//! Plans: desired state (from the model) against observed state (from AWS), as
//! ordered actions with field-level changes. Pure: no I/O here.

pub mod cluster;
pub mod comment;
mod diff;
pub mod digest;
pub mod model;
pub mod model_only;
pub mod network;
pub mod node_diff;
pub mod render;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use diff::plan_resources;
pub use model::*;

/// Tag naming the environment a resource belongs to.
pub const TAG_ENVIRONMENT: &str = "strata:environment";
/// Tag naming the layer (`network`, `cluster`, `node`).
pub const TAG_LAYER: &str = "strata:layer";
/// Tag holding the logical id (`subnet/private/0`).
pub const TAG_ID: &str = "strata:id";
/// Tag on a layer's root resource: the commit last applied to the layer.
pub const TAG_COMMIT: &str = "strata:commit";
/// Tag on an instance of a fixed-size cluster: the digest of the config it booted with.
pub const TAG_CONFIG: &str = "strata:config";
/// Tag on an instance of a fixed-size cluster: the digest of the template settings it
/// keeps for life (root volume, data volume, instance profile).
pub const TAG_SETTINGS: &str = "strata:settings";

/// A resource strata wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Resource type.
    pub kind: Kind,
    /// Logical id, unique within the environment.
    pub id: String,
    /// Its properties.
    pub spec: Spec,
}

/// A resource found in AWS by its strata tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Resource type.
    pub kind: Kind,
    /// Logical id from the `strata:id` tag.
    pub id: String,
    /// The AWS id or ARN.
    pub aws_id: String,
    /// Its properties as AWS reports them, references mapped to logical ids.
    pub spec: Spec,
    /// All its tags.
    pub tags: BTreeMap<String, String>,
    /// Adapter bookkeeping not compared by plans (e.g. route-table association ids).
    pub extra: BTreeMap<String, String>,
}

/// A security-group rule: protocol, ports and the peer on the other side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `all`.
    pub protocol: String,
    /// First port (`None` for all ports).
    pub from_port: Option<u16>,
    /// Last port.
    pub to_port: Option<u16>,
    /// The other side.
    pub peer: RulePeer,
}

/// The other side of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RulePeer {
    /// An IPv4 block.
    Cidr(String),
    /// A security group: logical id (`sg/web`) or, when not strata's, its AWS id.
    Group(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.protocol)?;
        match (self.from_port, self.to_port) {
            (Some(a), Some(b)) if a == b => write!(f, " {a}")?,
            (Some(a), Some(b)) => write!(f, " {a}-{b}")?,
            _ => {}
        }
        match &self.peer {
            RulePeer::Cidr(c) | RulePeer::Group(c) => write!(f, " {c}"),
        }
    }
}

/// A route: destination block to a target (logical id: `igw`, `nat/0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination CIDR.
    pub destination: String,
    /// Target logical id (or AWS id when not strata's).
    pub target: String,
}

/// Where a listener sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerAction {
    /// Forward to a target group (logical id).
    Forward(String),
    /// Redirect (HTTP 301) to another protocol and port.
    Redirect {
        /// `HTTPS`.
        protocol: String,
        /// Port.
        port: u16,
    },
}

impl fmt::Display for ListenerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerAction::Forward(tg) => write!(f, "forward to {tg}"),
            ListenerAction::Redirect { protocol, port } => {
                write!(f, "redirect to {protocol}:{port}")
            }
        }
    }
}

/// Properties of a resource, typed per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A VPC with DNS support and hostnames.
    Vpc {
        /// CIDR block.
        cidr: String,
    },
    /// A subnet.
    Subnet {
        /// CIDR block.
        cidr: String,
        /// Availability zone name.
        zone: String,
        /// Public subnets give instances public addresses.
        public: bool,
    },
    /// The internet gateway, attached to the environment's VPC.
    InternetGateway {
        /// Attached VPC (logical id), `None` when detached.
        attached: Option<String>,
    },
    /// An elastic IP for a NAT gateway.
    ElasticIp,
    /// A NAT gateway.
    NatGateway {
        /// Its public subnet (logical id).
        subnet: String,
        /// Its elastic IP (logical id).
        eip: String,
    },
    /// A route table.
    RouteTable {
        /// Routes besides the VPC-local one.
        routes: BTreeSet<Route>,
        /// Associated subnets (logical ids).
        subnets: BTreeSet<String>,
    },
    /// A security group.
    SecurityGroup {
        /// AWS group name.
        name: String,
        /// Description (fixed at creation by AWS).
        description: String,
        /// Inbound rules.
        ingress: BTreeSet<Rule>,
        /// Outbound rules.
        egress: BTreeSet<Rule>,
    },
    /// A target group.
    TargetGroup {
        /// AWS name.
        name: String,
        /// HTTP, HTTPS, TCP, TLS or UDP.
        protocol: String,
        /// Port on the instances.
        port: u16,
        /// Health-check path (HTTP/HTTPS) when set.
        health_check_path: Option<String>,
        /// Health-check port when it differs from the traffic port.
        health_check_port: Option<u16>,
    },
    /// A load balancer.
    LoadBalancer {
        /// AWS name.
        name: String,
        /// `application` or `network`.
        kind: String,
        /// `internal` or `internet-facing`.
        scheme: String,
        /// Subnets (logical ids).
        subnets: BTreeSet<String>,
        /// Security groups (logical ids), application load balancers only.
        security_groups: BTreeSet<String>,
    },
    /// A listener.
    Listener {
        /// Its load balancer (logical id).
        load_balancer: String,
        /// Front protocol.
        protocol: String,
        /// Front port.
        port: u16,
        /// Certificate ARN for HTTPS/TLS.
        certificate: Option<String>,
        /// Default action.
        action: ListenerAction,
    },
    /// The launch template: what every instance starts from.
    LaunchTemplate {
        /// AWS name.
        name: String,
        /// Image id.
        image: String,
        /// Instance type.
        instance_type: String,
        /// Security groups (logical ids).
        security_groups: BTreeSet<String>,
        /// Root volume, e.g. `20 GiB gp3`.
        volume: Option<String>,
        /// Data volume, e.g. `200 GiB gp3 at /dev/xvdf` (kept when an instance goes).
        data_volume: Option<String>,
        /// Instance profile name.
        instance_profile: Option<String>,
        /// Base64 user data; compared by the node layer through [`Spec::NodeConfig`].
        user_data: String,
    },
    /// The auto-scaling group.
    AutoScalingGroup {
        /// AWS name.
        name: String,
        /// Smallest size.
        min: u16,
        /// Largest size.
        max: u16,
        /// Wanted size.
        desired: u16,
        /// Subnets (logical ids).
        subnets: BTreeSet<String>,
        /// Target groups (logical ids).
        target_groups: BTreeSet<String>,
        /// Instance refresh: share of the group that stays in service (not compared).
        min_healthy_percent: u8,
        /// Instance refresh: seconds a new instance gets to warm up (not compared).
        warmup_seconds: u32,
    },
    /// The config the instances boot with, by digest (the units it installs listed for
    /// people).
    NodeConfig {
        /// `sha256:` of the full (unwrapped) Ignition JSON.
        digest: String,
    },
    /// A fixed-size cluster node's data volume, in its node's zone, attached to the
    /// node's instance of the moment.
    Volume {
        /// Availability zone.
        zone: String,
        /// Size in GiB.
        size_gb: u32,
        /// EBS type (`gp3`).
        volume_type: String,
        /// `instance/0 at /dev/xvdf`, or `None` when detached.
        attached_to: Option<String>,
    },
    /// An instance of a fixed-size cluster, launched from the template with its own
    /// config and address.
    Instance {
        /// Its subnet (logical id).
        subnet: String,
        /// Its deterministic private address.
        private_ip: String,
        /// Image id.
        image: String,
        /// Instance type.
        instance_type: String,
        /// Security groups (logical ids).
        security_groups: BTreeSet<String>,
        /// Target groups it is registered in (logical ids).
        target_groups: BTreeSet<String>,
        /// `sha256:` of its config as [`crate::ignition::comparable_json`] renders it.
        config: String,
        /// `sha256:` of the settings it keeps for life ([`cluster::lifetime_settings`]).
        settings: String,
        /// Base64 user data it launches with (not compared; desired side only).
        user_data: String,
    },
}

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
        fn set(name: &'static str, values: impl IntoIterator<Item = String>) -> Field {
            Field {
                name,
                value: Value::Set(values.into_iter().collect()),
                forces_replacement: false,
            }
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
        match self {
            Spec::Vpc { cidr } => vec![scalar("cidr", cidr, true)],
            Spec::Subnet { cidr, zone, public } => {
                vec![
                    scalar("cidr", cidr, true),
                    scalar("zone", zone, true),
                    scalar("public", public, false),
                ]
            }
            Spec::InternetGateway { attached } => vec![scalar("attached_to", opt(attached), false)],
            Spec::ElasticIp => Vec::new(),
            Spec::NatGateway { subnet, eip } => vec![
                scalar("subnet", subnet, true),
                scalar("elastic_ip", eip, true),
            ],
            Spec::RouteTable { routes, subnets } => vec![
                set(
                    "routes",
                    routes
                        .iter()
                        .map(|r| format!("{} via {}", r.destination, r.target)),
                ),
                set("subnets", subnets.iter().cloned()),
            ],
            // Name and description are fixed at creation and derived from the logical id,
            // so only the rules are compared.
            Spec::SecurityGroup {
                ingress, egress, ..
            } => vec![
                set(
                    "ingress",
                    ingress
                        .iter()
                        .map(|r| with_direction(&r.to_string(), "from")),
                ),
                set(
                    "egress",
                    egress.iter().map(|r| with_direction(&r.to_string(), "to")),
                ),
            ],
            Spec::TargetGroup {
                name,
                protocol,
                port,
                health_check_path,
                health_check_port,
            } => vec![
                scalar("name", name, true),
                scalar("protocol", protocol, true),
                scalar("port", port, true),
                scalar("health_check_path", opt(health_check_path), false),
                scalar(
                    "health_check_port",
                    health_check_port.map_or("traffic-port".to_owned(), |p| p.to_string()),
                    false,
                ),
            ],
            Spec::LoadBalancer {
                name,
                kind,
                scheme,
                subnets,
                security_groups,
            } => vec![
                scalar("name", name, true),
                scalar("type", kind, true),
                scalar("scheme", scheme, true),
                set("subnets", subnets.iter().cloned()),
                set("security_groups", security_groups.iter().cloned()),
            ],
            Spec::LaunchTemplate {
                image,
                instance_type,
                security_groups,
                volume,
                data_volume,
                instance_profile,
                ..
            } => vec![
                scalar("image", image, false),
                scalar("instance_type", instance_type, false),
                set("security_groups", security_groups.iter().cloned()),
                scalar("volume", opt(volume), false),
                scalar("data_volume", opt(data_volume), false),
                scalar("instance_profile", opt(instance_profile), false),
            ],
            Spec::AutoScalingGroup {
                min,
                max,
                desired,
                subnets,
                target_groups,
                ..
            } => vec![
                scalar("min", min, false),
                scalar("max", max, false),
                scalar("desired", desired, false),
                set("subnets", subnets.iter().cloned()),
                set("target_groups", target_groups.iter().cloned()),
            ],
            Spec::NodeConfig { digest } => vec![scalar("config", digest, false)],
            Spec::Volume {
                zone,
                size_gb,
                volume_type,
                attached_to,
            } => vec![
                scalar("zone", zone, true),
                scalar("size", format!("{size_gb} GiB"), false),
                scalar("type", volume_type, false),
                scalar("attached_to", opt(attached_to), false),
            ],
            Spec::Instance {
                subnet,
                private_ip,
                image,
                instance_type,
                security_groups,
                target_groups,
                config,
                settings,
                ..
            } => vec![
                scalar("subnet", subnet, true),
                scalar("private_ip", private_ip, true),
                scalar("image", image, true),
                scalar("instance_type", instance_type, true),
                scalar("config", config, true),
                scalar("volumes_and_profile", settings, true),
                set("security_groups", security_groups.iter().cloned()),
                set("target_groups", target_groups.iter().cloned()),
            ],
            Spec::Listener {
                load_balancer,
                protocol,
                port,
                certificate,
                action,
            } => vec![
                scalar("load_balancer", load_balancer, true),
                scalar("port", port, true),
                scalar("protocol", protocol, false),
                scalar("certificate", opt(certificate), false),
                scalar("action", action, false),
            ],
        }
    }

    /// Logical ids this resource refers to (for cascading replacements).
    pub fn references(&self) -> Vec<String> {
        let mut refs = vec!["vpc".to_owned()];
        match self {
            Spec::Vpc { .. } => refs.clear(),
            Spec::NatGateway { subnet, eip } => refs.extend([subnet.clone(), eip.clone()]),
            Spec::RouteTable { routes, subnets } => {
                refs.extend(routes.iter().map(|r| r.target.clone()));
                refs.extend(subnets.iter().cloned());
            }
            Spec::SecurityGroup {
                ingress, egress, ..
            } => refs.extend(ingress.iter().chain(egress).filter_map(|r| match &r.peer {
                RulePeer::Group(g) => Some(g.clone()),
                RulePeer::Cidr(_) => None,
            })),
            Spec::LoadBalancer {
                subnets,
                security_groups,
                ..
            } => {
                refs.extend(subnets.iter().cloned());
                refs.extend(security_groups.iter().cloned());
            }
            Spec::Listener {
                load_balancer,
                action,
                ..
            } => {
                refs.push(load_balancer.clone());
                if let ListenerAction::Forward(tg) = action {
                    refs.push(tg.clone());
                }
            }
            Spec::LaunchTemplate {
                security_groups, ..
            } => refs.extend(security_groups.iter().cloned()),
            Spec::AutoScalingGroup {
                subnets,
                target_groups,
                ..
            } => {
                refs.extend(subnets.iter().cloned());
                refs.extend(target_groups.iter().cloned());
                refs.push("launch-template".to_owned());
            }
            Spec::NodeConfig { .. } => refs.push("launch-template".to_owned()),
            Spec::Instance {
                subnet,
                security_groups,
                target_groups,
                ..
            } => {
                refs.push(subnet.clone());
                refs.extend(security_groups.iter().cloned());
                refs.extend(target_groups.iter().cloned());
            }
            // A data volume refers to nothing: it outlives everything around it.
            Spec::Volume { .. } => refs.clear(),
            Spec::Subnet { .. }
            | Spec::InternetGateway { .. }
            | Spec::ElasticIp
            | Spec::TargetGroup { .. } => {}
        }
        refs
    }
}

/// `tcp 22 10.0.0.0/8` → `tcp 22 from 10.0.0.0/8`.
fn with_direction(rule: &str, word: &str) -> String {
    match rule.rsplit_once(' ') {
        Some((head, peer)) => format!("{head} {word} {peer}"),
        None => rule.to_owned(),
    }
}
