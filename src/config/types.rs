//! Validated newtypes: once parsed, an invalid value cannot exist.
//!
//! Each type is built through `TryFrom<String>` (serde's `try_from`), so a bad value
//! fails during deserialisation with the position of the YAML scalar that holds it.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv4Addr;
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

checked_string!(
    /// An IAM role to assume for an environment in another account:
    /// `arn:aws:iam::<12-digit account>:role/<path/name>`.
    RoleArn,
    pattern = "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
    check = |s| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let ok = matches!(parts.as_slice(), [arn, partition, iam, region, account, role]
            if *arn == "arn"
                && partition.starts_with("aws")
                && *iam == "iam"
                && region.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && role.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.len() <= 512
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c))
                }));
        if ok {
            Ok(())
        } else {
            Err(invalid(
                format!("`{s}` is not an IAM role ARN"),
                "write arn:aws:iam::<12-digit account id>:role/<role name>",
            ))
        }
    }
);

impl RoleArn {
    /// The account the role belongs to.
    pub fn account_id(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

checked_string!(
    /// The external id a role's trust policy asks of whoever assumes it.
    ExternalId,
    pattern = "^[A-Za-z0-9+=,.@:/_-]{2,1224}$",
    check = |s| {
        if (2..=1224).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c)) {
            Ok(())
        } else {
            Err(invalid(
                format!("`{s}` is not an external id"),
                "use 2 to 1224 letters, digits and +=,.@:/_- as the role's trust policy names it",
            ))
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
        let not_a_block = || {
            invalid(
                format!("`{value}` is not an IPv4 CIDR block"),
                "write address/prefix, e.g. 10.66.0.0/16",
            )
        };
        let (address, prefix) = value.split_once('/').ok_or_else(not_a_block)?;
        if let Some(octet) = address.split('.').find(|o| leading_zero(o)) {
            let written: Vec<&str> = address
                .split('.')
                .map(|o| match o.trim_start_matches('0') {
                    "" => "0",
                    trimmed => trimmed,
                })
                .collect();
            return Err(invalid(
                format!("`{value}` has an octet with a leading zero (`{octet}`)"),
                &format!(
                    "write {}/{prefix}; other tools read a leading zero as octal",
                    written.join(".")
                ),
            ));
        }
        let address = parse_ipv4(address).ok_or_else(not_a_block)?;
        let prefix = decimal(prefix)
            .and_then(|p| u8::try_from(p).ok())
            .ok_or_else(not_a_block)?;
        let net = Ipv4Net::new(address, prefix).map_err(|_| not_a_block())?;
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

/// A decimal number as addresses and prefixes write it: 1 to 3 ASCII digits, no
/// sign, space or leading zero.
fn decimal(text: &str) -> Option<u32> {
    let digits = !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    (digits && !leading_zero(text)).then(|| text.parse().ok())?
}

/// `010`: a zero before other digits, which other tools read as octal.
fn leading_zero(octet: &str) -> bool {
    octet.len() > 1 && octet.starts_with('0') && octet.bytes().all(|b| b.is_ascii_digit())
}

/// An IPv4 address read strictly: four decimal octets of 0 to 255, each without a
/// sign, space or leading zero, so that it means what every other tool reads.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(decimal(parts.next()?)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_are_read_strictly() {
        let good = [
            ("10.66.0.0/16", "10.66.0.0/16"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.168.1.0/24", "192.168.1.0/24"),
            ("10.0.0.7/32", "10.0.0.7/32"),
            ("100.64.0.0/10", "100.64.0.0/10"),
        ];
        for (text, shown) in good {
            let cidr = Cidr::try_from(text.to_owned());
            assert_eq!(cidr.map(|c| c.to_string()), Ok(shown.to_owned()), "{text}");
        }
        let bad = [
            ("010.066.0.0/16", "has an octet with a leading zero (`010`)"),
            ("10.66.00.0/16", "has an octet with a leading zero (`00`)"),
            ("10.66.0.0/33", "is not an IPv4 CIDR block"),
            ("10.66.0.0/016", "is not an IPv4 CIDR block"),
            ("10.66.0.0/+16", "is not an IPv4 CIDR block"),
            ("+10.66.0.0/16", "is not an IPv4 CIDR block"),
            (" 10.66.0.0/16", "is not an IPv4 CIDR block"),
            ("10.66.0.0 /16", "is not an IPv4 CIDR block"),
            ("10.66.0.0/ 16", "is not an IPv4 CIDR block"),
            ("10.66.0/16", "is not an IPv4 CIDR block"),
            ("10.66.0.0.0/16", "is not an IPv4 CIDR block"),
            ("10.256.0.0/16", "is not an IPv4 CIDR block"),
            ("10.66.0.0", "is not an IPv4 CIDR block"),
            ("10.66.0.0/", "is not an IPv4 CIDR block"),
            ("10..0.0/16", "is not an IPv4 CIDR block"),
            ("0x0a.66.0.0/16", "is not an IPv4 CIDR block"),
            ("10.66.0.0/16/16", "is not an IPv4 CIDR block"),
            ("١٠.66.0.0/16", "is not an IPv4 CIDR block"),
            ("10.66.1.0/16", "has host bits set"),
        ];
        for (text, message) in bad {
            let error = Cidr::try_from(text.to_owned()).expect_err(text);
            assert!(
                error.starts_with(&format!("`{text}` {message}")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn a_leading_zero_is_refused_with_the_block_meant() {
        let error = Cidr::try_from("010.066.0.0/16".to_owned()).unwrap_err();
        let (_, hint) = error.split_once(HINT_SEPARATOR).unwrap();
        assert_eq!(
            hint,
            "write 10.66.0.0/16; other tools read a leading zero as octal"
        );
    }

    #[test]
    fn addresses_are_read_strictly() {
        let good = ["0.0.0.0", "10.66.0.1", "255.255.255.255", "1.2.3.4"];
        for text in good {
            assert_eq!(
                parse_ipv4(text).map(|a| a.to_string()),
                Some(text.to_owned()),
                "{text}"
            );
        }
        let bad = [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.256",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1. 2.3.4",
            "1.2.3.",
            "1.2.3.0x4",
            "1000.2.3.4",
        ];
        for text in bad {
            assert_eq!(parse_ipv4(text), None, "{text}");
        }
    }
}
