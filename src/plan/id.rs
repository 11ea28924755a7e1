//! Logical ids: what a resource is called within its environment, stable across runs
//! and kept in its `strata:id` tag. Made by the variants, read back from a tag by
//! [`LogicalId::parse`], shown (and tagged) as text like `subnet/private/0`; this is
//! the one place that text is written or read.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

use crate::config::SubnetKind;

/// A resource's logical id, or (as [`LogicalId::Foreign`]) the AWS id of something
/// strata does not manage that a resource refers to.
///
/// Two ids are equal when their texts are: each variant's text starts its own way, and
/// no foreign id reads like one of strata's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalId {
    /// `vpc`.
    Vpc,
    /// `subnet/<kind>/<index>`: the index among subnets of its kind.
    Subnet(SubnetKind, usize),
    /// `igw`.
    InternetGateway,
    /// `eip/nat/<zone>`: the elastic IP of a zone's NAT gateway.
    NatAddress(usize),
    /// `nat/<zone>`.
    NatGateway(usize),
    /// `rtb/public`: the public subnets' route table.
    PublicRoutes,
    /// `rtb/private/<zone>`: a zone's private subnets' route table.
    PrivateRoutes(usize),
    /// `sg/<name>`.
    SecurityGroup(String),
    /// `lb/<name>`.
    LoadBalancer(String),
    /// `tg/<load balancer>/<port>`: a load balancer's target group by instance port.
    TargetGroup(String, u16),
    /// `listener/<load balancer>/<port>`: a load balancer's listener by front port.
    Listener(String, u16),
    /// `launch-template`.
    LaunchTemplate,
    /// `asg`.
    AutoScalingGroup,
    /// `node/config`: the config in the template's latest version.
    NodeConfig,
    /// `instance/<node>`: a fixed-size cluster's instance at its node index.
    Instance(u16),
    /// `volume/<node>`: a fixed-size cluster node's data volume.
    Volume(u16),
    /// `instance`: what instances and volumes launched from the template are tagged
    /// with until strata tags them as nodes (an auto-scaling group's instances).
    Launched,
    /// `etcd-discovery`: the secret holding an environment's etcd discovery token.
    EtcdDiscovery,
    /// Not strata's: an AWS id (`sg-0abc`) a reference points at, or a `strata:id`
    /// strata does not know.
    Foreign(Foreign),
}

/// The text of a [`LogicalId::Foreign`]; made only by [`LogicalId::parse`], so no
/// foreign id reads like one of strata's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Foreign(String);

impl Foreign {
    /// The text as found.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl LogicalId {
    /// Reads an id back from its text: one of strata's, or else a foreign one.
    pub fn parse(text: &str) -> LogicalId {
        Self::known(text).unwrap_or_else(|| LogicalId::Foreign(Foreign(text.to_owned())))
    }

    fn known(text: &str) -> Option<LogicalId> {
        let index = |s: &str| -> Option<usize> {
            // Canonical numbers only, so the text reads back as it was written.
            (s == "0" || !s.starts_with('0')).then(|| s.parse().ok())?
        };
        let node = |s: &str| index(s).and_then(|i| u16::try_from(i).ok());
        let name = |s: &str| (!s.is_empty() && !s.contains('/')).then(|| s.to_owned());
        let parts: Vec<&str> = text.split('/').collect();
        Some(match parts.as_slice() {
            ["vpc"] => LogicalId::Vpc,
            ["subnet", "public", i] => LogicalId::Subnet(SubnetKind::Public, index(i)?),
            ["subnet", "private", i] => LogicalId::Subnet(SubnetKind::Private, index(i)?),
            ["igw"] => LogicalId::InternetGateway,
            ["eip", "nat", z] => LogicalId::NatAddress(index(z)?),
            ["nat", z] => LogicalId::NatGateway(index(z)?),
            ["rtb", "public"] => LogicalId::PublicRoutes,
            ["rtb", "private", z] => LogicalId::PrivateRoutes(index(z)?),
            ["sg", g] => LogicalId::SecurityGroup(name(g)?),
            ["lb", l] => LogicalId::LoadBalancer(name(l)?),
            ["tg", l, p] => LogicalId::TargetGroup(name(l)?, node(p)?),
            ["listener", l, p] => LogicalId::Listener(name(l)?, node(p)?),
            ["launch-template"] => LogicalId::LaunchTemplate,
            ["asg"] => LogicalId::AutoScalingGroup,
            ["node", "config"] => LogicalId::NodeConfig,
            ["instance", n] => LogicalId::Instance(node(n)?),
            ["volume", n] => LogicalId::Volume(node(n)?),
            ["instance"] => LogicalId::Launched,
            ["etcd-discovery"] => LogicalId::EtcdDiscovery,
            _ => return None,
        })
    }

    /// A carved subnet's id.
    pub fn subnet(subnet: &crate::config::addressing::Subnet) -> LogicalId {
        LogicalId::Subnet(subnet.kind, subnet.index)
    }

    /// A fixed-size cluster node's index, for its instance and its data volume.
    pub fn node(&self) -> Option<u16> {
        match self {
            LogicalId::Instance(n) | LogicalId::Volume(n) => Some(*n),
            _ => None,
        }
    }

    /// The load balancer a target group or listener belongs to.
    pub fn load_balancer(&self) -> Option<&str> {
        match self {
            LogicalId::TargetGroup(lb, _) | LogicalId::Listener(lb, _) => Some(lb),
            _ => None,
        }
    }

    /// True for an id strata did not make.
    pub fn is_foreign(&self) -> bool {
        matches!(self, LogicalId::Foreign(_))
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogicalId::Vpc => f.write_str("vpc"),
            LogicalId::Subnet(kind, i) => write!(f, "subnet/{}/{i}", kind.as_str()),
            LogicalId::InternetGateway => f.write_str("igw"),
            LogicalId::NatAddress(z) => write!(f, "eip/nat/{z}"),
            LogicalId::NatGateway(z) => write!(f, "nat/{z}"),
            LogicalId::PublicRoutes => f.write_str("rtb/public"),
            LogicalId::PrivateRoutes(z) => write!(f, "rtb/private/{z}"),
            LogicalId::SecurityGroup(g) => write!(f, "sg/{g}"),
            LogicalId::LoadBalancer(l) => write!(f, "lb/{l}"),
            LogicalId::TargetGroup(l, p) => write!(f, "tg/{l}/{p}"),
            LogicalId::Listener(l, p) => write!(f, "listener/{l}/{p}"),
            LogicalId::LaunchTemplate => f.write_str("launch-template"),
            LogicalId::AutoScalingGroup => f.write_str("asg"),
            LogicalId::NodeConfig => f.write_str("node/config"),
            LogicalId::Instance(n) => write!(f, "instance/{n}"),
            LogicalId::Volume(n) => write!(f, "volume/{n}"),
            LogicalId::Launched => f.write_str("instance"),
            LogicalId::EtcdDiscovery => f.write_str("etcd-discovery"),
            LogicalId::Foreign(text) => f.write_str(&text.0),
        }
    }
}

// Ids sort and hash as their text: plans list resources in the order people read them
// (`subnet/private/10` before `subnet/private/2`, as before ids were typed), and the
// text is what identifies a resource across runs. Plans compare ids all the time, so
// the text is written to the stack, not to a new string each time.
impl PartialOrd for LogicalId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogicalId {
    fn cmp(&self, other: &Self) -> Ordering {
        if self == other {
            return Ordering::Equal;
        }
        self.with_text(|a| other.with_text(|b| a.cmp(b)))
    }
}

impl Hash for LogicalId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.with_text(|text| text.hash(state));
    }
}

impl LogicalId {
    /// Calls `f` with the id's text, written on the stack when it fits.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        if let LogicalId::Foreign(text) = self {
            return f(&text.0);
        }
        let mut text = StackText::default();
        match fmt::Write::write_fmt(&mut text, format_args!("{self}")) {
            Ok(()) => f(text.as_str()),
            Err(_) => f(&self.to_string()),
        }
    }
}

/// Text up to 80 bytes without a heap allocation; longer text is refused.
struct StackText {
    bytes: [u8; 80],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            bytes: [0; 80],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in.
        std::str::from_utf8(&self.bytes[..self.len]).expect("whole strings were written")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl schemars::JsonSchema for LogicalId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LogicalId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A resource's logical id, as its `strata:id` tag holds it: `vpc`, `subnet/private/0`, `sg/web`, `lb/web`, `tg/web/80`, `listener/web/443`, `launch-template`, `asg`, `node/config`, `instance/2`, `volume/2`",
            "type": "string"
        })
    }
}

impl Serialize for LogicalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Tests write ids as text.
#[cfg(test)]
impl From<&str> for LogicalId {
    fn from(text: &str) -> LogicalId {
        LogicalId::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_reads_back_as_it_was_written() {
        let ids = [
            LogicalId::Vpc,
            LogicalId::Subnet(SubnetKind::Public, 0),
            LogicalId::Subnet(SubnetKind::Private, 12),
            LogicalId::InternetGateway,
            LogicalId::NatAddress(1),
            LogicalId::NatGateway(2),
            LogicalId::PublicRoutes,
            LogicalId::PrivateRoutes(0),
            LogicalId::SecurityGroup("web".into()),
            LogicalId::LoadBalancer("api".into()),
            LogicalId::TargetGroup("api".into(), 8080),
            LogicalId::Listener("api".into(), 443),
            LogicalId::LaunchTemplate,
            LogicalId::AutoScalingGroup,
            LogicalId::NodeConfig,
            LogicalId::Instance(4),
            LogicalId::Volume(4),
            LogicalId::Launched,
            LogicalId::EtcdDiscovery,
        ];
        for id in ids {
            let text = id.to_string();
            let back = LogicalId::parse(&text);
            assert!(!back.is_foreign(), "{text}");
            assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn anything_else_is_foreign_and_kept_as_found() {
        for text in [
            "sg-0abc",
            "subnet/public/01",
            "subnet/dmz/0",
            "instance/x",
            "tg/api",
            "tg/api/99999",
            "sg/",
            "",
        ] {
            let id = LogicalId::parse(text);
            assert!(id.is_foreign(), "{text}");
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn ids_sort_as_their_text() {
        let mut ids = [
            LogicalId::Subnet(SubnetKind::Public, 0),
            LogicalId::Subnet(SubnetKind::Private, 10),
            LogicalId::Subnet(SubnetKind::Private, 2),
        ];
        ids.sort();
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["subnet/private/10", "subnet/private/2", "subnet/public/0"]
        );
    }

    #[test]
    fn ids_longer_than_the_stack_text_compare_and_hash_as_their_text() {
        use std::hash::BuildHasher;
        let long = "a".repeat(100);
        let ids = [
            LogicalId::SecurityGroup(long.clone()),
            LogicalId::SecurityGroup(format!("{long}b")),
            LogicalId::Subnet(SubnetKind::Public, 0),
            LogicalId::parse(&format!("sg-{long}")),
            LogicalId::Listener(long.clone(), 443),
            LogicalId::Vpc,
        ];
        let hasher = std::collections::hash_map::RandomState::new();
        for a in &ids {
            assert_eq!(hasher.hash_one(a), hasher.hash_one(a.to_string()), "{a}");
            for b in &ids {
                assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()), "{a} and {b}");
                assert_eq!(a == b, a.to_string() == b.to_string(), "{a} and {b}");
            }
        }
    }
}
