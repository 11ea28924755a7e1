//! Desired against observed: the generic diff that turns two resource lists into
//! ordered actions with field-level changes.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::spec::{Listener, NatGateway};
use super::{Action, ActionKind, FieldChange, LogicalId, Observed, Resource, Value};

/// Plans one layer of one environment. Observed resources not desired are deleted;
/// a second observed resource with the same logical id (a duplicate) is deleted too.
/// Replacing or deleting a resource replaces or updates what refers to it.
pub fn plan_resources(desired: &[Resource], observed: &[Observed]) -> Vec<Action> {
    // Looked up by id (hashed); the actions are put in order at the end.
    let mut by_id: HashMap<&LogicalId, &Observed> = HashMap::new();
    let mut actions = Vec::new();
    for o in observed {
        if by_id.contains_key(&o.id) {
            actions.push(delete(
                o,
                Some(format!("duplicate of {} (same strata:id)", o.id)),
            ));
        } else {
            by_id.insert(&o.id, o);
        }
    }
    let wanted: HashSet<&LogicalId> = desired.iter().map(|r| &r.id).collect();
    for o in by_id.values().filter(|o| !wanted.contains(&o.id)) {
        actions.push(delete(o, None));
    }
    for r in desired {
        match by_id.get(&r.id) {
            None => actions.push(Action {
                refresh: None,
                origin: None,
                detail: Vec::new(),
                action: ActionKind::Create,
                kind: r.kind,
                id: r.id.clone(),
                aws_id: None,
                changes: creation_fields(r),
                forced_by: None,
                desired: Some(r.clone()),
                observed: None,
            }),
            Some(o) => {
                let (changes, forced_by) = compare(r, o);
                if changes.is_empty() {
                    continue;
                }
                actions.push(Action {
                    refresh: None,
                    origin: None,
                    detail: Vec::new(),
                    action: if forced_by.is_some() {
                        ActionKind::Replace
                    } else {
                        ActionKind::Update
                    },
                    kind: r.kind,
                    id: r.id.clone(),
                    aws_id: Some(o.aws_id.clone()),
                    changes,
                    forced_by,
                    desired: Some(r.clone()),
                    observed: Some((*o).clone()),
                });
            }
        }
    }
    cascade(desired, &by_id, &mut actions);
    // An id sorts as its text (`plan::id`): written once per action, not per comparison.
    actions.sort_by_cached_key(|a| (a.kind.rank(), a.id.to_string()));
    actions
}

fn delete(o: &Observed, reason: Option<String>) -> Action {
    Action {
        refresh: None,
        origin: None,
        detail: Vec::new(),
        action: ActionKind::Delete,
        kind: o.kind,
        id: o.id.clone(),
        aws_id: Some(o.aws_id.clone()),
        changes: Vec::new(),
        forced_by: reason,
        desired: None,
        observed: Some(o.clone()),
    }
}

/// What a new resource will have, shown in the plan.
fn creation_fields(r: &Resource) -> Vec<FieldChange> {
    r.spec
        .fields()
        .into_iter()
        .flat_map(|f| match f.value {
            Value::Scalar(v) => vec![FieldChange {
                origin: None,
                field: f.name.to_owned(),
                from: None,
                to: Some(v),
            }],
            Value::Set(items) => items
                .into_iter()
                .map(|v| FieldChange {
                    origin: None,
                    field: f.name.to_owned(),
                    from: None,
                    to: Some(v),
                })
                .collect(),
        })
        .collect()
}

/// Field changes, and the first field that forces a replacement.
fn compare(r: &Resource, o: &Observed) -> (Vec<FieldChange>, Option<String>) {
    let observed: BTreeMap<&str, Value> = o
        .spec
        .fields()
        .into_iter()
        .map(|f| (f.name, f.value))
        .collect();
    let mut changes = Vec::new();
    let mut forced_by = None;
    for field in r.spec.fields() {
        let Some(old) = observed.get(field.name) else {
            continue;
        };
        match (&field.value, old) {
            (Value::Scalar(new), Value::Scalar(old)) if new != old => {
                if field.forces_replacement && forced_by.is_none() {
                    forced_by = Some(field.name.to_owned());
                }
                changes.push(FieldChange {
                    origin: None,
                    field: field.name.to_owned(),
                    from: Some(old.clone()),
                    to: Some(new.clone()),
                });
            }
            (Value::Set(new), Value::Set(old)) => {
                for gone in old.difference(new) {
                    changes.push(FieldChange {
                        origin: None,
                        field: field.name.to_owned(),
                        from: Some(gone.clone()),
                        to: None,
                    });
                }
                for added in new.difference(old) {
                    changes.push(FieldChange {
                        origin: None,
                        field: field.name.to_owned(),
                        from: None,
                        to: Some(added.clone()),
                    });
                }
            }
            _ => {}
        }
    }
    (changes, forced_by)
}

/// A replaced or deleted resource takes its dependents with it: a dependent that only
/// needs re-attaching is updated, one that cannot outlive it is replaced.
fn cascade(
    desired: &[Resource],
    observed: &HashMap<&LogicalId, &Observed>,
    actions: &mut Vec<Action>,
) {
    loop {
        let gone: HashSet<LogicalId> = actions
            .iter()
            .filter(|a| a.action.is_destructive())
            .map(|a| a.id.clone())
            .collect();
        if gone.is_empty() {
            break;
        }
        let mut changed = false;
        for r in desired {
            let Some(o) = observed.get(&r.id) else {
                continue;
            };
            let Some(cause) = r.spec.references().into_iter().find(|id| gone.contains(id)) else {
                continue;
            };
            let existing = actions
                .iter_mut()
                .find(|a| a.id == r.id && a.kind == r.kind);
            let replaces = must_replace_with(r, &cause);
            match existing {
                Some(a) if a.action == ActionKind::Replace => {}
                Some(a) if replaces => {
                    a.action = ActionKind::Replace;
                    a.forced_by = Some(format!("{cause} is replaced"));
                    changed = true;
                }
                Some(_) => {}
                None => {
                    actions.push(Action {
                        refresh: None,
                        origin: None,
                        detail: Vec::new(),
                        action: if replaces {
                            ActionKind::Replace
                        } else {
                            ActionKind::Update
                        },
                        kind: r.kind,
                        id: r.id.clone(),
                        aws_id: Some(o.aws_id.clone()),
                        changes: vec![FieldChange {
                            origin: None,
                            field: "depends_on".into(),
                            from: Some(format!("{cause} (old)")),
                            to: Some(format!("{cause} (new)")),
                        }],
                        forced_by: replaces.then(|| format!("{cause} is replaced")),
                        desired: Some(r.clone()),
                        observed: Some((*o).clone()),
                    });
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Whether `r` must be recreated when `cause` is: everything lives in the VPC; NAT
/// gateways live in their subnet; listeners on their load balancer. Route tables,
/// security groups and load balancers only re-attach.
fn must_replace_with(r: &Resource, cause: &LogicalId) -> bool {
    use super::Spec;
    if *cause == LogicalId::Vpc {
        return true;
    }
    match &r.spec {
        Spec::NatGateway(NatGateway { subnet, eip }) => cause == subnet || cause == eip,
        Spec::Listener(Listener { load_balancer, .. }) => cause == load_balancer,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, Zone};
    use crate::plan::spec::{Subnet, Vpc};
    use crate::plan::{Kind, Spec};

    fn subnet(id: &str, cidr: &str) -> Resource {
        Resource {
            kind: Kind::Subnet,
            id: id.into(),
            spec: Spec::Subnet(Subnet {
                cidr: cidr.to_owned().try_into().unwrap(),
                zone: Zone::try_from("eu-west-1a".to_owned()).unwrap(),
                public: true,
            }),
        }
    }

    fn vpc() -> Resource {
        Resource {
            kind: Kind::Vpc,
            id: "vpc".into(),
            spec: Spec::Vpc(Vpc {
                cidr: Cidr::try_from("10.0.0.0/16".to_owned()).unwrap(),
                dns: true,
            }),
        }
    }

    fn seen(r: &Resource, aws: &str) -> Observed {
        Observed::made(r, aws)
    }

    fn group(ingress: &[(&str, u16)]) -> Resource {
        use crate::plan::spec::SecurityGroup;
        use crate::plan::{Rule, RulePeer};
        let rule = |(cidr, port): &(&str, u16)| Rule {
            protocol: "tcp".into(),
            from_port: Some(*port),
            to_port: Some(*port),
            peer: RulePeer::Cidr((*cidr).into()),
        };
        Resource {
            kind: Kind::SecurityGroup,
            id: "sg/lb".into(),
            spec: Spec::SecurityGroup(SecurityGroup {
                name: "web-lb".into(),
                description: "web lb".into(),
                ingress: ingress.iter().map(rule).collect(),
                egress: Default::default(),
            }),
        }
    }

    #[test]
    fn only_a_rule_newly_open_to_anywhere_widens_security() {
        let was = group(&[("0.0.0.0/0", 443), ("10.0.0.0/8", 22)]);
        let now = group(&[("0.0.0.0/0", 443), ("10.0.0.0/8", 22), ("::/0", 80)]);
        let actions = plan_resources(std::slice::from_ref(&now), &[seen(&was, "sg-1")]);
        let widening: Vec<String> = actions.iter().flat_map(|a| a.widens_security()).collect();
        assert_eq!(widening, ["security group sg/lb: ingress tcp 80 from ::/0"]);
        // Narrowing widens nothing; a group made open widens by each open rule.
        let narrowed = plan_resources(std::slice::from_ref(&was), &[seen(&now, "sg-1")]);
        assert!(narrowed.iter().all(|a| a.widens_security().is_empty()));
        let made = plan_resources(std::slice::from_ref(&now), &[]);
        let widening: Vec<String> = made.iter().flat_map(|a| a.widens_security()).collect();
        assert_eq!(
            widening,
            [
                "security group sg/lb: ingress tcp 443 from 0.0.0.0/0",
                "security group sg/lb: ingress tcp 80 from ::/0"
            ]
        );
    }

    #[test]
    fn identical_state_plans_nothing() {
        let vpc = vpc();
        let s = subnet("subnet/public/0", "10.0.0.0/20");
        assert!(
            plan_resources(
                &[vpc.clone(), s.clone()],
                &[seen(&vpc, "vpc-1"), seen(&s, "subnet-1")]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_vpc_left_without_dns_is_finished_in_place() {
        let vpc = vpc();
        let s = subnet("subnet/public/0", "10.0.0.0/20");
        let mut unfinished = seen(&vpc, "vpc-1");
        if let Spec::Vpc(v) = &mut unfinished.spec {
            v.dns = false;
        }
        let actions = plan_resources(&[vpc, s.clone()], &[unfinished, seen(&s, "subnet-1")]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0].action, ActionKind::Update);
        assert_eq!(actions[0].id, LogicalId::Vpc);
    }

    #[test]
    fn a_cidr_change_replaces_the_subnet_and_its_nat_gateway() {
        let vpc = vpc();
        let old = subnet("subnet/public/0", "10.0.0.0/20");
        let new = subnet("subnet/public/0", "10.0.16.0/20");
        let eip = Resource {
            kind: Kind::ElasticIp,
            id: "eip/nat/0".into(),
            spec: Spec::ElasticIp,
        };
        let nat = Resource {
            kind: Kind::NatGateway,
            id: "nat/0".into(),
            spec: Spec::NatGateway(NatGateway {
                subnet: "subnet/public/0".into(),
                eip: "eip/nat/0".into(),
            }),
        };
        let observed = [
            seen(&vpc, "vpc-1"),
            seen(&old, "subnet-1"),
            seen(&eip, "eipalloc-1"),
            seen(&nat, "nat-1"),
        ];
        let actions = plan_resources(&[vpc, new, eip, nat], &observed);
        let got: Vec<String> = actions
            .iter()
            .map(|a| format!("{} {} {:?}", a.action, a.id, a.forced_by))
            .collect();
        assert_eq!(
            got,
            [
                "replace subnet/public/0 Some(\"cidr\")",
                "replace nat/0 Some(\"subnet/public/0 is replaced\")"
            ]
        );
    }

    #[test]
    fn undesired_and_duplicate_resources_are_deleted() {
        let vpc = vpc();
        let extra = subnet("subnet/public/3", "10.0.48.0/20");
        let actions = plan_resources(
            std::slice::from_ref(&vpc),
            &[
                seen(&vpc, "vpc-1"),
                seen(&vpc, "vpc-2"),
                seen(&extra, "subnet-9"),
            ],
        );
        let got: Vec<String> = actions
            .iter()
            .map(|a| format!("{} {} {}", a.action, a.id, a.aws_id.clone().unwrap()))
            .collect();
        assert_eq!(got, ["delete vpc vpc-2", "delete subnet/public/3 subnet-9"]);
    }
}
