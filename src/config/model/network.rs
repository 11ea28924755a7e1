//! The network section: the VPC, zones, carving, NAT, security groups and their rules.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::*;
use crate::config::types::*;

/// Layer 1: the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The VPC's CIDR block; subnets are carved from it.
    pub cidr: Cidr,
    /// How many availability zones to spread subnets over (1..6), or their names.
    pub zones: Zones,
    /// Number of private subnets: blocks 0..n of size /(prefix + subnet_bits).
    #[serde(default)]
    pub private_subnets: u8,
    /// Number of public subnets: the blocks that follow the private ones.
    #[serde(default)]
    pub public_subnets: u8,
    /// Bits added to the VPC prefix for each subnet (4 turns a /16 into /20s).
    #[serde(default = "default_subnet_bits")]
    pub subnet_bits: u8,
    /// NAT gateways for private subnets: none, one shared, or one per zone.
    #[serde(default)]
    pub nat: NatMode,
    /// Security groups by name.
    #[serde(default)]
    pub security_groups: BTreeMap<LocalName, SecurityGroup>,
    /// Load balancers by name.
    #[serde(default)]
    pub load_balancers: BTreeMap<LocalName, LoadBalancer>,
}

fn default_subnet_bits() -> u8 {
    4
}

/// Availability zones: a count (the region's first N zones) or explicit names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Zones {
    /// The first N zones of the region, in name order.
    Count(u8),
    /// These zones, in this order.
    Names(Vec<Zone>),
}

impl Zones {
    /// How many zones subnets are spread over.
    pub fn len(&self) -> usize {
        match self {
            Zones::Count(n) => usize::from(*n),
            Zones::Names(names) => names.len(),
        }
    }

    /// True when no zone is configured (always an error).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'de> Deserialize<'de> for Zones {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ZonesVisitor;
        impl<'de> Visitor<'de> for ZonesVisitor {
            type Value = Zones;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a zone count (1 to 6) or a list of zone names")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Zones, E> {
                u8::try_from(v)
                    .map(Zones::Count)
                    .map_err(|_| E::custom(format!("{v} zones is too many; the maximum is 6")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Zones, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("zones must be positive"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Zones, E> {
                match v.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "expected a zone count or a list of zone names, found `{v}`{HINT_SEPARATOR}write `zones: 3` or `zones: [eu-west-1a, eu-west-1b]`"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Zones, A::Error> {
                let mut names = Vec::new();
                while let Some(zone) = seq.next_element::<Zone>()? {
                    names.push(zone);
                }
                Ok(Zones::Names(names))
            }
        }
        deserializer.deserialize_any(ZonesVisitor)
    }
}

impl JsonSchema for Zones {
    fn schema_name() -> Cow<'static, str> {
        "Zones".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let zone = generator.subschema_for::<Zone>();
        json_schema!({
            "description": "A zone count (1..6) or a list of zone names",
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 6 },
                { "type": "array", "items": zone, "minItems": 1, "maxItems": 6 }
            ]
        })
    }
}

/// NAT gateways for the private subnets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    /// Private subnets have no route to the internet.
    #[default]
    None,
    /// One NAT gateway in the first public subnet, shared by all zones.
    Single,
    /// One NAT gateway per zone, so a zone outage does not cut the others off.
    PerZone,
}

/// Which kind of subnet a cluster or load balancer is placed in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SubnetKind {
    /// Subnets routed through NAT (if any); instances get no public address.
    Private,
    /// Subnets routed through the internet gateway.
    Public,
}

impl SubnetKind {
    /// The word used in logical ids (`subnet/private/0`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubnetKind::Private => "private",
            SubnetKind::Public => "public",
        }
    }
}

/// A security group: named catalogue rules and explicit rules, in and out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// Shown in the AWS console.
    #[serde(default)]
    pub description: Option<String>,
    /// Inbound rules: catalogue names (opened from `ingress_cidrs`) or explicit rules.
    #[serde(default)]
    pub ingress: Vec<RuleSpec>,
    /// Sources for named ingress rules; defaults to the VPC's own CIDR.
    #[serde(default)]
    pub ingress_cidrs: Vec<Cidr>,
    /// Outbound rules: catalogue names (to `egress_cidrs`) or explicit rules.
    #[serde(default)]
    pub egress: Vec<RuleSpec>,
    /// Destinations for named egress rules; defaults to 0.0.0.0/0.
    #[serde(default)]
    pub egress_cidrs: Vec<Cidr>,
}

/// One rule: a name from `catalogue/rules.yaml` or an explicit rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RuleSpec {
    /// A catalogue entry such as `ssh` or `etcd-client`.
    Named(String),
    /// `{protocol, ports, from}`.
    Explicit(ExplicitRule),
}

impl<'de> Deserialize<'de> for RuleSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;
        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = RuleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule name from the catalogue or {protocol, ports, from}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleSpec, E> {
                Ok(RuleSpec::Named(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RuleSpec, A::Error> {
                ExplicitRule::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RuleSpec::Explicit)
            }
        }
        deserializer.deserialize_any(RuleVisitor)
    }
}

impl JsonSchema for RuleSpec {
    fn schema_name() -> Cow<'static, str> {
        "RuleSpec".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let explicit = generator.subschema_for::<ExplicitRule>();
        json_schema!({
            "description": "A catalogue rule name (ssh, https, etcd-client, ...) or an explicit rule",
            "oneOf": [ { "type": "string" }, explicit ]
        })
    }
}

/// An explicit security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplicitRule {
    /// tcp, udp, icmp or all.
    pub protocol: IpProtocol,
    /// A port (`22`) or a range (`8000-8080`); omitted for `all` and `icmp`.
    #[serde(default)]
    pub ports: Option<PortRange>,
    /// Peers: CIDR blocks, `self`, or other security groups of this environment.
    /// In an egress rule this is the destination (`to` is accepted as a synonym).
    #[serde(alias = "to")]
    pub from: Peers,
    /// Shown in the AWS console next to the rule.
    #[serde(default)]
    pub description: Option<String>,
}

/// IP protocol of a rule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IpProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (all types).
    Icmp,
    /// Every protocol and port.
    All,
}

/// An inclusive port range; a single port has `from == to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("`{s}` is not a port or port range{HINT_SEPARATOR}write a port such as 443 or a range such as 8000-8080")
            })
        };
        let (from, to) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(s)?, port(s)?),
        };
        if from > to {
            return Err(format!(
                "port range `{s}` is reversed{HINT_SEPARATOR}write the lower port first: {to}-{from}"
            ));
        }
        Ok(PortRange { from, to })
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.from == self.to {
            serializer.serialize_u16(self.from)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortsVisitor;
        impl Visitor<'_> for PortsVisitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port or a range such as 8000-8080")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(PortsVisitor)
    }
}

impl JsonSchema for PortRange {
    fn schema_name() -> Cow<'static, str> {
        "PortRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": "^[0-9]{1,5}-[0-9]{1,5}$" }
            ]
        })
    }
}

/// The other side of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub enum Peer {
    /// The group itself (members talk to each other).
    SelfGroup,
    /// An address block.
    Cidr(Cidr),
    /// Another security group of the same environment, by name.
    Group(String),
}

impl From<Peer> for String {
    fn from(value: Peer) -> String {
        value.to_string()
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::SelfGroup => f.write_str("self"),
            Peer::Cidr(c) => c.fmt(f),
            Peer::Group(g) => f.write_str(g),
        }
    }
}

impl Peer {
    fn parse(s: &str) -> Result<Peer, String> {
        if s == "self" {
            Ok(Peer::SelfGroup)
        } else if s.starts_with(|c: char| c.is_ascii_digit()) {
            Cidr::try_from(s.to_owned()).map(Peer::Cidr)
        } else {
            Ok(Peer::Group(s.to_owned()))
        }
    }
}

/// One peer or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Peers(pub Vec<Peer>);

impl<'de> Deserialize<'de> for Peers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PeersVisitor;
        impl<'de> Visitor<'de> for PeersVisitor {
            type Value = Peers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CIDR block, `self`, a security group name, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Peers, E> {
                Peer::parse(v).map(|p| Peers(vec![p])).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Peers, A::Error> {
                let mut peers = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    peers.push(Peer::parse(&s).map_err(de::Error::custom)?);
                }
                Ok(Peers(peers))
            }
        }
        deserializer.deserialize_any(PeersVisitor)
    }
}

impl JsonSchema for Peers {
    fn schema_name() -> Cow<'static, str> {
        "Peers".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A CIDR block, `self`, a security group name, or a list of them",
            "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
        })
    }
}
