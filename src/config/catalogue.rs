//! The named catalogues: security-group rules and listener protocols.
//!
//! They are data (`catalogue/*.yaml` at the repository root), compiled into the binary
//! so that every run agrees on them; extending one is a data change, not a code change.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::model::{IpProtocol, PortRange};

/// A named security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Protocol.
    pub protocol: IpProtocol,
    /// Ports, absent for `all` and `icmp`.
    #[serde(default)]
    pub ports: Option<PortRange>,
}

/// A named listener protocol.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolEntry {
    /// Default port.
    pub port: u16,
    /// What an Application Load Balancer speaks for it, if it can.
    #[serde(default)]
    pub application: Option<LbProtocol>,
    /// What a Network Load Balancer speaks for it, if it can.
    #[serde(default)]
    pub network: Option<LbProtocol>,
}

/// Load-balancer protocols as the ELBv2 API names them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum LbProtocol {
    /// HTTP (application).
    Http,
    /// HTTPS (application, needs a certificate).
    Https,
    /// TCP (network).
    Tcp,
    /// TLS (network, needs a certificate).
    Tls,
    /// UDP (network).
    Udp,
}

impl LbProtocol {
    /// True for protocols that terminate TLS and need a certificate.
    pub fn needs_certificate(self) -> bool {
        matches!(self, LbProtocol::Https | LbProtocol::Tls)
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LbProtocol::Http => "HTTP",
            LbProtocol::Https => "HTTPS",
            LbProtocol::Tcp => "TCP",
            LbProtocol::Tls => "TLS",
            LbProtocol::Udp => "UDP",
        }
    }
}

static RULES: LazyLock<BTreeMap<String, RuleEntry>> = LazyLock::new(|| {
    // The file is part of the binary and parsed by a unit test, so failure here is a
    // build defect, not a user error.
    marked_yaml::from_yaml(0, include_str!("../../catalogue/rules.yaml"))
        .expect("catalogue/rules.yaml parses")
});

static PROTOCOLS: LazyLock<BTreeMap<String, ProtocolEntry>> = LazyLock::new(|| {
    marked_yaml::from_yaml(0, include_str!("../../catalogue/protocols.yaml"))
        .expect("catalogue/protocols.yaml parses")
});

/// The named security-group rules.
pub fn rules() -> &'static BTreeMap<String, RuleEntry> {
    &RULES
}

/// The named listener protocols.
pub fn protocols() -> &'static BTreeMap<String, ProtocolEntry> {
    &PROTOCOLS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_parse_and_hold_the_usual_entries() {
        for name in [
            "ssh",
            "http",
            "https",
            "all-traffic",
            "etcd-client",
            "etcd-server",
            "amqp",
            "epmd",
            "rmq-admin",
            "jenkins",
            "fluentd",
        ] {
            assert!(rules().contains_key(name), "rule {name}");
        }
        assert_eq!(
            rules()["etcd-server"].ports,
            Some(PortRange {
                from: 2380,
                to: 2380
            })
        );
        assert_eq!(rules()["all-traffic"].protocol, IpProtocol::All);
        for name in ["http", "https", "etcd", "amqp", "rabbitmq"] {
            assert!(protocols().contains_key(name), "protocol {name}");
        }
        assert_eq!(protocols()["https"].application, Some(LbProtocol::Https));
        assert_eq!(protocols()["amqp"].application, None);
    }
}
