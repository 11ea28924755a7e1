//! The typed properties of every resource kind ([`Spec`]), the values they are made
//! of (rules, routes, listener actions), and what plans compare of them
//! ([`Spec::fields`]) and what replacements cascade along ([`Spec::references`]).

mod compare;

use std::collections::BTreeSet;
use std::fmt;

use super::LogicalId;
use crate::config::catalogue::LbProtocol;
use crate::config::{Cidr, LoadBalancerKind, Zone};

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
    Group(LogicalId),
}

impl Rule {
    /// The rule as an inbound one reads: `tcp 22 from 10.0.0.0/8`.
    pub fn inbound(&self) -> String {
        self.with_direction(" from")
    }

    /// The rule as an outbound one reads: `all to 0.0.0.0/0`.
    pub fn outbound(&self) -> String {
        self.with_direction(" to")
    }

    fn with_direction(&self, word: &str) -> String {
        let mut out = self.protocol.clone();
        match (self.from_port, self.to_port) {
            (Some(a), Some(b)) if a == b => out.push_str(&format!(" {a}")),
            (Some(a), Some(b)) => out.push_str(&format!(" {a}-{b}")),
            _ => {}
        }
        let peer = match &self.peer {
            RulePeer::Cidr(c) => c.clone(),
            RulePeer::Group(g) => g.to_string(),
        };
        format!("{out}{word} {peer}")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_direction(""))
    }
}

impl RulePeer {
    /// True for a block that is the whole internet (`0.0.0.0/0`, `::/0`).
    pub fn is_anywhere(&self) -> bool {
        matches!(self, RulePeer::Cidr(c) if c == "0.0.0.0/0" || c == "::/0")
    }
}

/// A route: destination block to a target (logical id: `igw`, `nat/0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination CIDR.
    pub destination: String,
    /// Target logical id (or AWS id when not strata's).
    pub target: LogicalId,
}

/// Where a listener sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerAction {
    /// Forward to a target group (logical id).
    Forward(LogicalId),
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

/// Properties of a resource, typed per kind: each variant carries the struct of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A VPC with DNS support and hostnames.
    Vpc(Vpc),
    /// A subnet.
    Subnet(Subnet),
    /// The internet gateway, attached to the environment's VPC.
    InternetGateway(InternetGateway),
    /// An elastic IP for a NAT gateway.
    ElasticIp,
    /// A NAT gateway.
    NatGateway(NatGateway),
    /// A route table.
    RouteTable(RouteTable),
    /// A security group.
    SecurityGroup(SecurityGroup),
    /// A target group.
    TargetGroup(TargetGroup),
    /// A load balancer.
    LoadBalancer(LoadBalancer),
    /// A listener.
    Listener(Listener),
    /// The launch template: what every instance starts from.
    LaunchTemplate(LaunchTemplate),
    /// The auto-scaling group.
    AutoScalingGroup(AutoScalingGroup),
    /// The config the instances boot with, by digest (the units it installs listed for
    /// people).
    NodeConfig(NodeConfig),
    /// A fixed-size cluster node's data volume, in its node's zone, attached to the
    /// node's instance of the moment.
    Volume(Volume),
    /// An instance of a fixed-size cluster, launched from the template with its own
    /// config and address.
    Instance(Instance),
}

/// A VPC with DNS support and hostnames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// CIDR block.
    pub cidr: Cidr,
    /// DNS resolution and DNS hostnames, both on: instances need names. Each is a call
    /// of its own after the VPC is made, so an apply stopped in between leaves a VPC
    /// that a later plan must still see as unfinished.
    pub dns: bool,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// CIDR block.
    pub cidr: Cidr,
    /// Availability zone name.
    pub zone: Zone,
    /// Public subnets give instances public addresses.
    pub public: bool,
}

/// The internet gateway, attached to the environment's VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetGateway {
    /// Attached VPC (logical id), `None` when detached.
    pub attached: Option<LogicalId>,
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatGateway {
    /// Its public subnet (logical id).
    pub subnet: LogicalId,
    /// Its elastic IP (logical id).
    pub eip: LogicalId,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    /// Routes besides the VPC-local one.
    pub routes: BTreeSet<Route>,
    /// Associated subnets (logical ids).
    pub subnets: BTreeSet<LogicalId>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// AWS group name.
    pub name: String,
    /// Description (fixed at creation by AWS).
    pub description: String,
    /// Inbound rules.
    pub ingress: BTreeSet<Rule>,
    /// Outbound rules.
    pub egress: BTreeSet<Rule>,
}

/// A target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// AWS name.
    pub name: String,
    /// HTTP, HTTPS, TCP, TLS or UDP.
    pub protocol: LbProtocol,
    /// Port on the instances.
    pub port: u16,
    /// Health-check path (HTTP/HTTPS) when set.
    pub health_check_path: Option<String>,
    /// Health-check port when it differs from the traffic port.
    pub health_check_port: Option<u16>,
}

/// A load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    /// AWS name.
    pub name: String,
    /// `application` or `network`.
    pub kind: LoadBalancerKind,
    /// `internal` or `internet-facing`.
    pub scheme: Scheme,
    /// Subnets (logical ids).
    pub subnets: BTreeSet<LogicalId>,
    /// Security groups (logical ids), application load balancers only.
    pub security_groups: BTreeSet<LogicalId>,
}

/// Whether a load balancer answers on the internet or inside the VPC only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Inside the VPC only.
    Internal,
    /// With public addresses.
    InternetFacing,
}

impl Scheme {
    /// ELBv2's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Internal => "internal",
            Scheme::InternetFacing => "internet-facing",
        }
    }
}

/// A listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its load balancer (logical id).
    pub load_balancer: LogicalId,
    /// Front protocol.
    pub protocol: LbProtocol,
    /// Front port.
    pub port: u16,
    /// Certificate ARN for HTTPS/TLS.
    pub certificate: Option<String>,
    /// Default action.
    pub action: ListenerAction,
}

/// The launch template: what every instance starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplate {
    /// AWS name.
    pub name: String,
    /// Image id.
    pub image: String,
    /// Instance type.
    pub instance_type: String,
    /// Security groups (logical ids).
    pub security_groups: BTreeSet<LogicalId>,
    /// Root volume.
    pub volume: Option<Disk>,
    /// Data volume (kept when an instance goes).
    pub data_volume: Option<DataDisk>,
    /// Instance profile name.
    pub instance_profile: Option<String>,
    /// Base64 user data; compared by the node layer through [`Spec::NodeConfig`].
    pub user_data: String,
}

/// The auto-scaling group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoScalingGroup {
    /// AWS name.
    pub name: String,
    /// Smallest size.
    pub min: u16,
    /// Largest size.
    pub max: u16,
    /// Wanted size.
    pub desired: u16,
    /// Subnets (logical ids).
    pub subnets: BTreeSet<LogicalId>,
    /// Target groups (logical ids).
    pub target_groups: BTreeSet<LogicalId>,
    /// Instance refresh: share of the group that stays in service (not compared).
    pub min_healthy_percent: u8,
    /// Instance refresh: seconds a new instance gets to warm up (not compared).
    pub warmup_seconds: u32,
}

/// The config the instances boot with, by digest (the units it installs listed for
/// people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `sha256:` of the full (unwrapped) Ignition JSON.
    pub digest: String,
}

/// A fixed-size cluster node's data volume, in its node's zone, attached to the
/// node's instance of the moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Availability zone.
    pub zone: Zone,
    /// Size in GiB.
    pub size_gb: u32,
    /// EBS type (`gp3`).
    pub volume_type: String,
    /// Where it is attached; `None` when detached.
    pub attached_to: Option<Attachment>,
}

/// An EBS volume's size and type, shown as `20 GiB gp3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Size in GiB.
    pub size_gb: u32,
    /// EBS type (`gp3`).
    pub volume_type: String,
}

impl fmt::Display for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} GiB {}", self.size_gb, self.volume_type)
    }
}

/// A template's data volume: a disk at a device, shown as `200 GiB gp3 at /dev/xvdf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDisk {
    /// Its size and type.
    pub disk: Disk,
    /// The device it is attached at.
    pub device: String,
}

impl fmt::Display for DataDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.disk, self.device)
    }
}

/// Where a data volume is attached, shown as `instance/0 at /dev/xvdf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The instance: its logical id, or its AWS id when it is not strata's.
    pub instance: LogicalId,
    /// The device.
    pub device: String,
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.instance, self.device)
    }
}

/// An instance of a fixed-size cluster, launched from the template with its own
/// config and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its subnet (logical id).
    pub subnet: LogicalId,
    /// Its deterministic private address.
    pub private_ip: String,
    /// Image id.
    pub image: String,
    /// Instance type.
    pub instance_type: String,
    /// Security groups (logical ids).
    pub security_groups: BTreeSet<LogicalId>,
    /// Target groups it is registered in (logical ids).
    pub target_groups: BTreeSet<LogicalId>,
    /// `sha256:` of its config as [`crate::ignition::comparable_json`] renders it.
    pub config: String,
    /// `sha256:` of the settings it keeps for life ([`cluster::lifetime_settings`]).
    pub settings: String,
    /// Base64 user data it launches with (not compared; desired side only).
    pub user_data: String,
}
