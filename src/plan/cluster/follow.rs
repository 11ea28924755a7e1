//! How the cluster layer follows a network change: machines cannot stay in a subnet
//! the network replaces or deletes (AWS refuses to delete a subnet that still holds
//! network interfaces), so a fixed-size cluster's instances there are replaced with
//! it and an auto-scaling group leaves it first.

use std::collections::BTreeSet;

use crate::plan::spec::Instance;
use crate::plan::{Action, ActionKind, FieldChange, Kind, LogicalId, Observed, Resource, Spec};

/// The network layer's subnets a set of actions replaces (logical ids): what a
/// fixed-size cluster's nodes must leave first.
pub fn replaced_subnets(network_actions: &[Action]) -> BTreeSet<LogicalId> {
    network_actions
        .iter()
        .filter(|a| a.kind == Kind::Subnet && a.action == ActionKind::Replace)
        .map(|a| a.id.clone())
        .collect()
}

/// The subnets the network layer replaces or deletes. AWS refuses to delete a subnet
/// that still holds network interfaces, so an auto-scaling group leaves these before
/// the network step.
pub fn leaving_subnets(network_actions: &[Action]) -> BTreeSet<LogicalId> {
    use ActionKind::{Delete, Replace};
    network_actions
        .iter()
        .filter(|a| a.kind == Kind::Subnet && matches!(a.action, Replace | Delete))
        .map(|a| a.id.clone())
        .collect()
}

/// An auto-scaling group in subnets the network replaces must follow them onto the
/// new ones: its update, forced by the subnet when nothing else changes it, runs after
/// the network step. Returns the notes that say how the group leaves the subnets
/// first (its instances there are replaced in the kept subnets, or, with none kept,
/// the group is emptied and filled again).
pub fn follow_group_off_subnets(
    actions: &mut Vec<Action>,
    desired: &[Resource],
    observed: &[Observed],
    leaving: &BTreeSet<LogicalId>,
    replaced: &BTreeSet<LogicalId>,
) -> Vec<String> {
    let mut notes = Vec::new();
    for o in observed {
        let Spec::AutoScalingGroup(group) = &o.spec else {
            continue;
        };
        let gone: Vec<&LogicalId> = group.subnets.intersection(leaving).collect();
        if gone.is_empty() {
            continue;
        }
        let existing = actions
            .iter()
            .position(|a| a.kind == Kind::AutoScalingGroup && a.id == o.id);
        if existing.is_some_and(|i| actions[i].action == ActionKind::Delete) {
            continue;
        }
        let list = gone
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let kept = group.subnets.len() - gone.len();
        notes.push(if kept == 0 {
            format!(
                "auto-scaling group {}: every subnet it uses ({list}) goes; before the network changes, the group is emptied (its {} instances terminated), and after, it is filled again in the new subnets: a gap in service",
                group.name, group.desired
            )
        } else {
            format!(
                "auto-scaling group {}: before the network changes, it leaves {list}, and its instances there are replaced in the {kept} subnet{} it keeps; after, it spreads over its subnets again",
                group.name,
                if kept == 1 { "" } else { "s" }
            )
        });
        let replaced_here: Vec<&LogicalId> =
            gone.into_iter().filter(|s| replaced.contains(*s)).collect();
        if existing.is_some() || replaced_here.is_empty() {
            continue;
        }
        let Some(r) = desired.iter().find(|r| r.id == o.id) else {
            continue;
        };
        let changes = replaced_here
            .iter()
            .map(|s| FieldChange {
                origin: None,
                field: "subnets".into(),
                from: Some(s.to_string()),
                to: Some(format!("{s} (new)")),
            })
            .collect();
        actions.push(Action {
            refresh: None,
            origin: None,
            action: ActionKind::Update,
            kind: Kind::AutoScalingGroup,
            id: o.id.clone(),
            aws_id: Some(o.aws_id.clone()),
            changes,
            forced_by: Some(format!(
                "{} replaced",
                replaced_here
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            detail: Vec::new(),
            desired: Some(r.clone()),
            observed: Some(o.clone()),
        });
    }
    notes
}

/// A fixed-size cluster's instances in a subnet the network layer replaces must go
/// with it (AWS refuses to delete a subnet that still holds network interfaces): each
/// becomes a replacement, forced by the subnet, unless it is replaced or deleted
/// already. `replaced_subnets` are the network's replaced subnets (logical ids).
pub fn follow_replaced_subnets(
    actions: &mut Vec<Action>,
    desired: &[Resource],
    observed: &[Observed],
    replaced_subnets: &BTreeSet<LogicalId>,
) {
    for o in observed {
        let Spec::Instance(Instance { subnet, .. }) = &o.spec else {
            continue;
        };
        if !replaced_subnets.contains(subnet) {
            continue;
        }
        let reason = format!("{subnet} is replaced");
        match actions
            .iter_mut()
            .find(|a| a.kind == Kind::Instance && a.id == o.id)
        {
            Some(a) if matches!(a.action, ActionKind::Replace | ActionKind::Delete) => {}
            Some(a) => {
                a.action = ActionKind::Replace;
                a.forced_by = Some(reason);
            }
            None => {
                let Some(r) = desired.iter().find(|r| r.id == o.id) else {
                    continue;
                };
                actions.push(Action {
                    refresh: None,
                    origin: None,
                    action: ActionKind::Replace,
                    kind: Kind::Instance,
                    id: o.id.clone(),
                    aws_id: Some(o.aws_id.clone()),
                    changes: vec![FieldChange {
                        origin: None,
                        field: "subnet".into(),
                        from: Some(subnet.to_string()),
                        to: Some(format!("{subnet} (new)")),
                    }],
                    forced_by: Some(reason),
                    detail: Vec::new(),
                    desired: Some(r.clone()),
                    observed: Some(o.clone()),
                });
            }
        }
    }
    actions.sort_by_key(|a| (a.kind.rank(), a.id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_resources;

    fn instance(id: &str, subnet: &str) -> Resource {
        Resource {
            kind: Kind::Instance,
            id: id.into(),
            spec: Spec::Instance(Instance {
                subnet: subnet.into(),
                private_ip: "10.0.0.10".into(),
                image: "ami-1".into(),
                instance_type: "t3.small".into(),
                security_groups: BTreeSet::new(),
                target_groups: BTreeSet::new(),
                config: "sha256:1".into(),
                settings: "sha256:2".into(),
                user_data: String::new(),
            }),
        }
    }

    fn observed(r: &Resource) -> Observed {
        Observed::made(r, format!("i-{}", r.id.to_string().len()))
    }

    #[test]
    fn instances_in_a_replaced_subnet_are_replaced_with_it() {
        let desired = [
            instance("instance/0", "subnet/public/0"),
            instance("instance/1", "subnet/public/1"),
        ];
        let live: Vec<Observed> = desired.iter().map(observed).collect();
        let mut actions = plan_resources(&desired, &live);
        assert!(actions.is_empty());
        let replaced = BTreeSet::from([LogicalId::from("subnet/public/1")]);
        follow_replaced_subnets(&mut actions, &desired, &live, &replaced);
        let got: Vec<(ActionKind, String, Option<&str>)> = actions
            .iter()
            .map(|a| (a.action, a.id.to_string(), a.forced_by.as_deref()))
            .collect();
        assert_eq!(
            got,
            [(
                ActionKind::Replace,
                "instance/1".to_owned(),
                Some("subnet/public/1 is replaced")
            )]
        );
        assert!(!actions[0].needs_consent(), "a replacement is a rollout");
    }
}
