//! Security-group rules: made exactly the desired ones from what was observed, and
//! released before groups that name each other are deleted.

use std::collections::BTreeSet;

use aws_sdk_ec2::types as ec2;

use super::Result;
use crate::aws::executor::{Executor, sent};
use crate::plan::LogicalId;
use crate::plan::spec::SecurityGroup;
use crate::plan::{Observed, Rule, RulePeer, Spec};

/// The four calls that change a group's rules.
#[derive(Debug, Clone, Copy)]
enum RuleChange {
    RevokeIngress,
    RevokeEgress,
    AuthorizeIngress,
    AuthorizeEgress,
}

/// The rule AWS gives every new group: all traffic out to anywhere.
fn all_traffic() -> Rule {
    Rule {
        protocol: "all".into(),
        from_port: None,
        to_port: None,
        peer: RulePeer::Cidr("0.0.0.0/0".into()),
    }
}

impl Executor<'_> {
    /// Makes group `id`'s rules exactly `group`'s: authorizes what is missing, revokes
    /// what is extra, nothing else. `was` is the group as observed; `None` for a group
    /// made in this run, which has AWS's default egress rule.
    pub async fn sync_rules(
        &mut self,
        id: &LogicalId,
        group: &SecurityGroup,
        was: Option<&SecurityGroup>,
    ) -> Result<()> {
        let aws_group = self.id(id);
        let (old_in, old_out) = match was {
            Some(was) => (was.ingress.clone(), was.egress.clone()),
            None => (BTreeSet::new(), BTreeSet::from([all_traffic()])),
        };
        // Compare in AWS terms, so a peer group that was replaced counts as a change.
        let key = |r: &Rule| (r.clone(), self.peer_id(&r.peer));
        let keyed = |rules: &BTreeSet<Rule>| -> BTreeSet<(Rule, String)> {
            rules.iter().map(key).collect()
        };
        let (old_in, old_out) = (keyed(&old_in), keyed(&old_out));
        let (new_in, new_out) = (keyed(&group.ingress), keyed(&group.egress));
        let missing = |from: &BTreeSet<(Rule, String)>, of: &BTreeSet<(Rule, String)>| {
            from.difference(of)
                .map(|(rule, peer)| self.permission(rule, peer))
                .collect::<Vec<_>>()
        };
        let changes = [
            (RuleChange::RevokeIngress, missing(&old_in, &new_in)),
            (RuleChange::RevokeEgress, missing(&old_out, &new_out)),
            (RuleChange::AuthorizeIngress, missing(&new_in, &old_in)),
            (RuleChange::AuthorizeEgress, missing(&new_out, &old_out)),
        ];
        let what = format!("updating rules of security group {id} ({aws_group})");
        for (change, permissions) in changes {
            self.change_rules(&aws_group, change, permissions, &what)
                .await?;
        }
        Ok(())
    }

    /// Before groups are deleted: revokes their rules that name other groups, which
    /// would otherwise keep those groups in use. Other kinds hold no rules.
    pub async fn release_group_references(&mut self, observed: &Observed) -> Result<()> {
        let Spec::SecurityGroup(group) = &observed.spec else {
            return Ok(());
        };
        let referencing = |rules: &BTreeSet<Rule>| -> Vec<ec2::IpPermission> {
            rules
                .iter()
                .filter(|r| matches!(r.peer, RulePeer::Group(_)))
                .map(|r| self.permission(r, &self.peer_id(&r.peer)))
                .collect()
        };
        let (inbound, outbound) = (referencing(&group.ingress), referencing(&group.egress));
        let what = format!(
            "releasing rules of security group {} ({})",
            observed.id, observed.aws_id
        );
        let aws_id = &observed.aws_id;
        self.change_rules(aws_id, RuleChange::RevokeIngress, inbound, &what)
            .await?;
        self.change_rules(aws_id, RuleChange::RevokeEgress, outbound, &what)
            .await
    }

    /// One rules call on a group; nothing is sent for an empty list.
    async fn change_rules(
        &self,
        group: &str,
        change: RuleChange,
        permissions: Vec<ec2::IpPermission>,
        what: &str,
    ) -> Result<()> {
        if permissions.is_empty() {
            return Ok(());
        }
        let (ec2c, permissions) = (&self.aws.ec2, Some(permissions));
        // The four calls take the same arguments and answer alike; their builders are
        // four types.
        macro_rules! send {
            ($call:ident) => {
                sent(
                    what,
                    ec2c.$call()
                        .group_id(group)
                        .set_ip_permissions(permissions)
                        .send(),
                )
                .await
                .map(drop)
            };
        }
        match change {
            RuleChange::RevokeIngress => send!(revoke_security_group_ingress),
            RuleChange::RevokeEgress => send!(revoke_security_group_egress),
            RuleChange::AuthorizeIngress => send!(authorize_security_group_ingress),
            RuleChange::AuthorizeEgress => send!(authorize_security_group_egress),
        }
    }

    /// A rule's peer in AWS terms: the block, or the peer group's id now.
    fn peer_id(&self, peer: &RulePeer) -> String {
        match peer {
            RulePeer::Cidr(c) => c.clone(),
            RulePeer::Group(g) => self.id(g),
        }
    }

    fn permission(&self, rule: &Rule, peer: &str) -> ec2::IpPermission {
        let protocol = if rule.protocol == "all" {
            "-1"
        } else {
            rule.protocol.as_str()
        };
        let mut p = ec2::IpPermission::builder().ip_protocol(protocol);
        match rule.protocol.as_str() {
            "tcp" | "udp" => {
                p = p
                    .set_from_port(rule.from_port.map(i32::from))
                    .set_to_port(rule.to_port.map(i32::from))
            }
            "icmp" => p = p.from_port(-1).to_port(-1),
            _ => {}
        }
        match &rule.peer {
            RulePeer::Cidr(c) => p = p.ip_ranges(ec2::IpRange::builder().cidr_ip(c).build()),
            RulePeer::Group(_) => {
                p = p.user_id_group_pairs(ec2::UserIdGroupPair::builder().group_id(peer).build())
            }
        }
        p.build()
    }
}
