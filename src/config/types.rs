//! Validated newtypes: once parsed, an invalid value cannot exist.
//!
//! Each type is built through `TryFrom<String>` (serde's `try_from`), so a bad value
//! fails during deserialisation with the position of the YAML scalar that holds it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use ipnet::Ipv4Net;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Separates a message from its hint inside a serde error string. serde errors carry
/// only text; the loader splits on this to fill [`crate::diagnostic::Diagnostic::hint`].
pub const HINT_SEPARATOR: char = '\u{1f}';

fn invalid(message: String, hint: &str) -> String {
    format!("{message}{HINT_SEPARATOR}{hint}")
}

fn is_dns_label(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Declares a string newtype with a check, serde through `TryFrom<String>`, and a
/// JSON Schema carrying the pattern and description.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, pattern = $pattern:literal, check = $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map(|()| $name(value))
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern })
            }
        }
    };
}

checked_string!(
    /// An environment's name: the file stem of `environments/<name>.yaml`, `[a-z][a-z0-9-]*`.
    EnvName,
    pattern = "^[a-z][a-z0-9-]*$",
    check = |s| {
        if is_dns_label(s) && s.len() <= 48 {
            Ok(())
        } else {
            Err(invalid(
                format!("`{s}` is not a valid environment name"),
                "use lowercase letters, digits and single hyphens, starting with a letter, at most 48 characters",
            ))
        }
    }
);

checked_string!(
    /// A name given to a security group, load balancer or similar inside one environment.
    LocalName,
    pattern = "^[a-z][a-z0-9-]*$",
    check = |s| {
        if is_dns_label(s) && s.len() <= 64 {
            Ok(())
        } else {
            Err(invalid(
                format!("`{s}` is not a valid name"),
                "use lowercase letters, digits and single hyphens, starting with a letter",
            ))
        }
    }
);

checked_string!(
    /// An AWS region such as `eu-west-1`.
    Region,
    pattern = "^[a-z]{2}(-[a-z]+)+-[0-9]+$",
    check = |s| {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts[0].len() == 2
            && parts[0].chars().all(|c| c.is_ascii_lowercase())
            && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not an AWS region"), "write a region such as eu-west-1 or us-east-2"))
        }
    }
);

checked_string!(
    /// An availability zone name such as `eu-west-1a`.
    Zone,
    pattern = "^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$",
    check = |s| {
        // The last character, not the last byte: a name may end in any character.
        let (region, letter) = s.char_indices().last().map_or(("", ""), |(at, _)| s.split_at(at));
        if letter.chars().all(|c| c.is_ascii_lowercase()) && !letter.is_empty() && Region::try_from(region.to_owned()).is_ok() {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not an availability zone name"), "write a zone such as eu-west-1a, or give a count such as `zones: 3`"))
        }
    }
);

checked_string!(
    /// An EC2 instance type such as `t3.medium` or `m7g.2xlarge`.
    InstanceType,
    pattern = "^[a-z][a-z0-9-]*\\.[a-z0-9]+$",
    check = |s| {
        let ok = match s.split_once('.') {
            Some((family, size)) => {
                family.starts_with(|c: char| c.is_ascii_lowercase())
                    && family.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !size.is_empty()
                    && size.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not an EC2 instance type"), "write family.size, e.g. t3.medium"))
        }
    }
);

checked_string!(
    /// A Secrets Manager secret: a name (`strata/prod/ssh-public-key`) or a full ARN.
    SecretId,
    pattern = "^(arn:aws[a-z-]*:secretsmanager:.+|[A-Za-z0-9/_+=.@-]{1,512})$",
    check = |s| {
        let ok = if s.starts_with("arn:") {
            s.split(':').nth(2) == Some("secretsmanager") && s.split(':').count() >= 7
        } else {
            !s.is_empty() && s.len() <= 512 && s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        };
        if ok {
            Ok(())
        } else {
            Err(invalid(
                format!("`{s}` is not a Secrets Manager secret name or ARN"),
                "use letters, digits and /_+=.@- (at most 512), or an arn:aws:secretsmanager:... ARN",
            ))
        }
    }
);

checked_string!(
    /// A pinned machine image id, `ami-` followed by hex digits.
    AmiId,
    pattern = "^ami-[0-9a-f]{8,17}$",
    check = |s| {
        let ok = s.strip_prefix("ami-").is_some_and(|h| (8..=17).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not an AMI id"), "write ami- followed by 8 or 17 hex digits, or use `os:` to look the image up"))
        }
    }
);

checked_string!(
    /// An ACM certificate ARN for HTTPS or TLS listeners.
    CertificateArn,
    pattern = "^arn:aws[a-z-]*:(acm|iam):.+$",
    check = |s| {
        let service = s.split(':').nth(2);
        if s.starts_with("arn:aws") && matches!(service, Some("acm" | "iam")) {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not a certificate ARN"), "use arn:aws:acm:<region>:<account>:certificate/<id>"))
        }
    }
);

checked_string!(
    /// A key in the node's environment file: `[A-Za-z_][A-Za-z0-9_]*`.
    EnvKey,
    pattern = "^[A-Za-z_][A-Za-z0-9_]*$",
    check = |s| {
        let ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not a valid environment variable name"), "use letters, digits and underscores, not starting with a digit"))
        }
    }
);

checked_string!(
    /// A login name on the node, e.g. `core`.
    UserName,
    pattern = "^[a-z_][a-z0-9_-]{0,31}$",
    check = |s| {
        let ok = s.len() <= 32 && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("`{s}` is not a valid user name"), "use lowercase letters, digits, _ and -, at most 32 characters"))
        }
    }
);

checked_string!(
    /// A tag key from the file's `tags:`; the `aws:` and `strata:` prefixes are reserved.
    TagKey,
    pattern = "^.{1,128}$",
    check = |s| {
        if s.is_empty() || s.len() > 128 {
            Err(invalid(format!("tag key `{s}` must be 1 to 128 characters"), "shorten the tag key"))
        } else if s.starts_with("aws:") || s.starts_with("strata:") || s == "Name" {
            Err(invalid(format!("tag key `{s}` is reserved"), "strata sets Name and strata:* itself and AWS owns aws:*; choose another key"))
        } else {
            Ok(())
        }
    }
);

/// An IPv4 CIDR block whose address is the network address (`10.66.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(Ipv4Net);

impl Cidr {
    /// The network.
    pub fn net(&self) -> Ipv4Net {
        self.0
    }
}

impl From<Ipv4Net> for Cidr {
    fn from(value: Ipv4Net) -> Self {
        Cidr(value)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let net: Ipv4Net = value.parse().map_err(|_| {
            invalid(
                format!("`{value}` is not an IPv4 CIDR block"),
                "write address/prefix, e.g. 10.66.0.0/16",
            )
        })?;
        if net.network() != net.addr() {
            return Err(invalid(
                format!("`{value}` has host bits set"),
                &format!(
                    "the block starts at {}; write {}",
                    net.network(),
                    net.trunc()
                ),
            ));
        }
        Ok(Cidr(net))
    }
}

impl From<Cidr> for String {
    fn from(value: Cidr) -> String {
        value.0.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$",
            "description": "An IPv4 CIDR block, e.g. 10.66.0.0/16"
        })
    }
}
