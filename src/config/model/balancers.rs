//! Load balancers: listeners, endpoints and health checks.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::*;
use crate::config::types::*;

/// A load balancer in front of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    /// application (HTTP/HTTPS, layer 7) or network (TCP/TLS/UDP, layer 4).
    #[serde(rename = "type")]
    pub kind: LoadBalancerKind,
    /// True for a load balancer reachable only inside the VPC.
    #[serde(default)]
    pub internal: bool,
    /// The kind of subnet it is placed in.
    pub subnets: SubnetKind,
    /// Security groups of an application load balancer.
    #[serde(default)]
    pub security_groups: Vec<LocalName>,
    /// Listeners: what the load balancer accepts and where it forwards.
    pub listeners: Vec<Listener>,
    /// Health check of the target groups; defaults to the target port (TCP) or `/` (HTTP).
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

/// application | network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerKind {
    /// An Application Load Balancer.
    Application,
    /// A Network Load Balancer.
    Network,
}

impl LoadBalancerKind {
    /// ELBv2's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancerKind::Application => "application",
            LoadBalancerKind::Network => "network",
        }
    }
}

/// One listener: accept on `front`, forward to `back` (or redirect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// A protocol from `catalogue/protocols.yaml` (http, https, etcd, ...) or a port.
    pub front: Endpoint,
    /// Where traffic goes on the instances: a protocol name or a port.
    #[serde(default)]
    pub back: Option<Endpoint>,
    /// Redirect instead of forwarding (an application load balancer's HTTP → HTTPS).
    #[serde(default)]
    pub redirect: Option<Endpoint>,
    /// Certificate for an HTTPS or TLS front.
    #[serde(default)]
    pub certificate: Option<CertificateArn>,
}

/// A catalogue protocol name or a bare port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Endpoint {
    /// A named protocol from the catalogue.
    Named(String),
    /// A port; the protocol follows the load balancer type (HTTP or TCP).
    Port(u16),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Named(n) => f.write_str(n),
            Endpoint::Port(p) => p.fmt(f),
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;
        impl Visitor<'_> for EndpointVisitor {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a protocol name or a port")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Endpoint, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(Endpoint::Port)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "{v} is not a port{HINT_SEPARATOR}ports are 1 to 65535"
                        ))
                    })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Endpoint, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
                match v.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Ok(Endpoint::Named(v.to_owned())),
                }
            }
        }
        deserializer.deserialize_any(EndpointVisitor)
    }
}

impl JsonSchema for Endpoint {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A protocol name from the catalogue (http, https, etcd, amqp, ...) or a port",
            "oneOf": [ { "type": "string" }, { "type": "integer", "minimum": 1, "maximum": 65535 } ]
        })
    }
}

/// Target-group health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path for HTTP(S) target groups, e.g. `/health`.
    #[serde(default)]
    pub path: Option<String>,
    /// Port to check when it differs from the traffic port.
    #[serde(default)]
    pub port: Option<u16>,
}
