//! The semantic digest of an environment's plan: what a reviewer approved, so that an
//! apply can tell whether it is about to do the same thing.
//!
//! The digest covers each action's layer, kind, logical id, action, field changes and
//! detail lines, sorted, with AWS ids (which differ between a plan and a re-plan, or
//! are unknown until creation) replaced by a placeholder. Notes, timestamps, the
//! commit and ordering do not count: the same intended change always gives the same
//! digest, and any difference in what would be done gives another.

use sha2::{Digest, Sha256};

use super::EnvironmentPlan;

/// `sha256:<hex>` of the environment's actions, normalised.
pub fn environment(plan: &EnvironmentPlan) -> String {
    let mut lines: Vec<String> = Vec::new();
    for layer in &plan.layers {
        for action in &layer.actions {
            let mut changes: Vec<String> = action
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{}\u{1f}{}\u{1f}{}",
                        c.field,
                        c.from.as_deref().map(without_aws_ids).unwrap_or_default(),
                        c.to.as_deref().map(without_aws_ids).unwrap_or_default()
                    )
                })
                .collect();
            changes.sort();
            let detail: Vec<String> = action.detail.iter().map(|d| without_aws_ids(d)).collect();
            lines.push(format!(
                "{}\u{1e}{}\u{1e}{}\u{1e}{}\u{1e}{}\u{1e}{}",
                layer.layer,
                action.kind.describe(),
                action.id,
                action.action,
                changes.join("\u{1d}"),
                detail.join("\u{1d}")
            ));
        }
    }
    lines.sort();
    let mut hash = Sha256::new();
    hash.update(format!("strata plan digest 1\n{}\n", plan.name));
    for line in &lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Prefixes of the EC2 ids that name a resource of this account (not an image: a
/// different image is a different plan).
const ID_PREFIXES: [&str; 12] = [
    "vpc", "subnet", "igw", "nat", "eipalloc", "eni", "rtb", "sg", "i", "vol", "lt", "rtbassoc",
];

/// `text` with every EC2 resource id (`subnet-0abc…`) and ELBv2 ARN replaced by `<id>`.
pub fn without_aws_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let token_end = rest
            .find(|c: char| c.is_whitespace() || ",()[]\"'".contains(c))
            .unwrap_or(rest.len());
        // A delimiter is taken on its own, whole (it may be a multi-byte space).
        let token_end = match token_end {
            0 => rest.chars().next().map_or(1, char::len_utf8),
            n => n,
        };
        let (token, tail) = rest.split_at(token_end);
        if is_aws_id(token) {
            out.push_str("<id>");
        } else {
            out.push_str(token);
        }
        rest = tail;
    }
    out
}

fn is_aws_id(token: &str) -> bool {
    if token.starts_with("arn:aws:elasticloadbalancing:") {
        return true;
    }
    let Some((prefix, hex)) = token.rsplit_once('-') else {
        return false;
    };
    ID_PREFIXES.contains(&prefix)
        && (hex.len() == 8 || hex.len() == 17)
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layer;
    use crate::plan::{Action, ActionKind, FieldChange, Kind, LayerPlan, Summary};

    fn action(id: &str, aws_id: Option<&str>, to: &str) -> Action {
        Action {
            refresh: None,
            origin: None,
            action: ActionKind::Update,
            kind: Kind::SecurityGroup,
            id: id.into(),
            aws_id: aws_id.map(str::to_owned),
            changes: vec![FieldChange {
                origin: None,
                field: "ingress".to_owned(),
                from: None,
                to: Some(to.to_owned()),
            }],
            forced_by: None,
            detail: Vec::new(),
            desired: None,
            observed: None,
        }
    }

    fn env(actions: Vec<Action>, notes: Vec<String>) -> EnvironmentPlan {
        EnvironmentPlan {
            account: None,
            resources: Vec::new(),
            data_volumes: Vec::new(),
            trust: Vec::new(),
            name: "web".to_owned(),
            region: "eu-west-1".to_owned(),
            removed: false,
            summary: Summary::of(&actions),
            layers: vec![LayerPlan {
                layer: Layer::Network,
                forced_by: None,
                summary: Summary::of(&actions),
                actions,
                notes,
            }],
        }
    }

    #[test]
    fn aws_ids_order_and_notes_do_not_change_the_digest() {
        let a = env(
            vec![
                action("sg/web", Some("sg-0123456789abcdef0"), "tcp 80 from sg/lb"),
                action(
                    "sg/lb",
                    Some("sg-0aaaaaaaaaaaaaaaa"),
                    "tcp 443 from 10.0.0.0/8",
                ),
            ],
            vec!["image flatcar 4081.2.0".to_owned()],
        );
        let b = env(
            vec![
                action(
                    "sg/lb",
                    Some("sg-0bbbbbbbbbbbbbbbb"),
                    "tcp 443 from 10.0.0.0/8",
                ),
                action("sg/web", Some("sg-0fedcba9876543210"), "tcp 80 from sg/lb"),
            ],
            Vec::new(),
        );
        assert_eq!(environment(&a), environment(&b));
    }

    #[test]
    fn a_different_change_gives_a_different_digest() {
        let a = env(
            vec![action("sg/web", None, "tcp 80 from sg/lb")],
            Vec::new(),
        );
        let b = env(
            vec![action("sg/web", None, "tcp 81 from sg/lb")],
            Vec::new(),
        );
        let none = env(Vec::new(), Vec::new());
        assert_ne!(environment(&a), environment(&b));
        assert_ne!(environment(&a), environment(&none));
    }

    #[test]
    fn ids_inside_values_are_normalised_but_images_are_not() {
        assert_eq!(
            without_aws_ids("subnets: subnet-0123456789abcdef0, subnet-01234567"),
            "subnets: <id>, <id>"
        );
        assert_eq!(
            without_aws_ids("image ami-0123456789abcdef0"),
            "image ami-0123456789abcdef0"
        );
        assert_eq!(without_aws_ids("i-am-not-an-id"), "i-am-not-an-id");
        assert_eq!(
            without_aws_ids("forward to arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/y"),
            "forward to <id>"
        );
    }
}
