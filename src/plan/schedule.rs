//! The order in which a layer's actions run. Pure, so the order that keeps AWS from
//! refusing a call (a subnet still holding a NAT gateway, a group still named by
//! another group's rule) is tested without AWS, which an emulator would not enforce.

use super::{Action, ActionKind, Kind};

/// One step of execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step<'a> {
    /// Revoke a group's rules that name other groups, so those can be deleted.
    ReleaseReferences(&'a Action),
    /// Delete the old resource of a replacement.
    RemoveReplaced(&'a Action),
    /// Create a resource (the new one, for a replacement).
    Create(&'a Action),
    /// Converge an existing resource.
    Update(&'a Action),
    /// Give a new security group its rules (once every group exists).
    SyncRules(&'a Action),
    /// Delete a resource no longer wanted.
    Delete(&'a Action),
}

impl Step<'_> {
    /// The action the step belongs to.
    pub fn action(&self) -> &Action {
        match self {
            Step::ReleaseReferences(a)
            | Step::RemoveReplaced(a)
            | Step::Create(a)
            | Step::Update(a)
            | Step::SyncRules(a)
            | Step::Delete(a) => a,
        }
    }
}

/// Orders a layer's actions: replaced resources are removed first, dependents before
/// what they depend on; then everything is created or updated in creation order, with
/// new security groups getting their rules after all groups exist; then what is no
/// longer wanted is deleted in reverse creation order. Groups about to be deleted first
/// release the rules by which they name other groups.
pub fn schedule(actions: &[Action]) -> Vec<Step<'_>> {
    let mut by_rank: Vec<&Action> = actions.iter().collect();
    by_rank.sort_by_key(|a| (a.kind.rank(), a.id.clone()));
    let reverse = || by_rank.iter().rev().copied();
    let mut steps = Vec::new();

    let replaced: Vec<&Action> = reverse()
        .filter(|a| a.action == ActionKind::Replace)
        .collect();
    steps.extend(
        replaced
            .iter()
            .filter(|a| a.kind == Kind::SecurityGroup)
            .map(|a| Step::ReleaseReferences(a)),
    );
    steps.extend(replaced.iter().map(|a| Step::RemoveReplaced(a)));

    for kind in Kind::ORDER {
        let here: Vec<&Action> = by_rank
            .iter()
            .copied()
            .filter(|a| a.kind == kind && a.action != ActionKind::Delete)
            .collect();
        for a in &here {
            steps.push(if a.action == ActionKind::Update {
                Step::Update(a)
            } else {
                Step::Create(a)
            });
        }
        if kind == Kind::SecurityGroup {
            steps.extend(
                here.iter()
                    .filter(|a| a.action != ActionKind::Update)
                    .map(|a| Step::SyncRules(a)),
            );
        }
    }

    let deleted: Vec<&Action> = reverse()
        .filter(|a| a.action == ActionKind::Delete)
        .collect();
    steps.extend(
        deleted
            .iter()
            .filter(|a| a.kind == Kind::SecurityGroup)
            .map(|a| Step::ReleaseReferences(a)),
    );
    steps.extend(deleted.iter().map(|a| Step::Delete(a)));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, Zone};
    use crate::plan::spec::Vpc;
    use crate::plan::{Observed, Resource, Spec, network, plan_resources};

    fn observed(resources: &[Resource]) -> Vec<Observed> {
        Observed::all_made(resources)
    }

    fn web() -> Vec<Resource> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/environments/web-prod.yaml"
        ))
        .unwrap();
        let units = ["web.service", "docker-prune.service", "docker-prune.timer"]
            .map(String::from)
            .into();
        let env = crate::config::load("environments/web-prod.yaml", &text, &units).unwrap();
        network::desired(
            &env,
            &[
                Zone::try_from("eu-west-1a".to_owned()).unwrap(),
                Zone::try_from("eu-west-1b".to_owned()).unwrap(),
                Zone::try_from("eu-west-1c".to_owned()).unwrap(),
            ],
        )
    }

    fn position(steps: &[Step], what: &str) -> usize {
        steps
            .iter()
            .position(|s| label(s) == what)
            .unwrap_or_else(|| {
                panic!(
                    "no step {what} in {:?}",
                    steps.iter().map(label).collect::<Vec<_>>()
                )
            })
    }

    fn label(s: &Step) -> String {
        let kind = match s {
            Step::ReleaseReferences(_) => "release",
            Step::RemoveReplaced(_) => "remove",
            Step::Create(_) => "create",
            Step::Update(_) => "update",
            Step::SyncRules(_) => "rules",
            Step::Delete(_) => "delete",
        };
        format!("{kind} {}", s.action().id)
    }

    #[test]
    fn a_teardown_deletes_dependents_before_what_they_depend_on() {
        let live = observed(&web());
        let actions = plan_resources(&[], &live);
        let steps = schedule(&actions);
        let before = |a: &str, b: &str| {
            assert!(
                position(&steps, a) < position(&steps, b),
                "{a} must come before {b}"
            )
        };
        before("delete listener/web/443", "delete lb/web");
        before("delete lb/web", "delete tg/web/80");
        before("delete lb/web", "delete sg/lb");
        before("delete lb/web", "delete subnet/public/0");
        before("release sg/web", "delete sg/lb");
        before("release sg/lb", "delete sg/web");
        before("delete nat/0", "delete eip/nat/0");
        before("delete nat/0", "delete subnet/public/0");
        before("delete rtb/private/0", "delete nat/0");
        before("delete rtb/public", "delete igw");
        before("delete igw", "delete vpc");
        before("delete subnet/private/0", "delete vpc");
        before("delete sg/web", "delete vpc");
    }

    #[test]
    fn a_fresh_network_creates_what_others_refer_to_first() {
        let actions = plan_resources(&web(), &[]);
        let steps = schedule(&actions);
        let before = |a: &str, b: &str| {
            assert!(
                position(&steps, a) < position(&steps, b),
                "{a} must come before {b}"
            )
        };
        before("create vpc", "create subnet/public/0");
        before("create subnet/public/0", "create nat/0");
        before("create eip/nat/0", "create nat/0");
        before("create nat/0", "create rtb/private/0");
        before("create igw", "create rtb/public");
        // Rules name other groups: every group exists before any gets its rules.
        before("create sg/web", "rules sg/lb");
        before("create sg/lb", "rules sg/web");
        before("create tg/web/80", "create listener/web/443");
        before("create lb/web", "create listener/web/80");
    }

    #[test]
    fn a_replacement_removes_the_old_resource_before_creating_the_new_one() {
        let desired = web();
        let mut live = observed(&desired);
        for o in &mut live {
            if let Spec::Vpc(Vpc { cidr, .. }) = &mut o.spec {
                *cidr = Cidr::try_from("10.1.0.0/16".to_owned()).unwrap();
            }
        }
        let actions = plan_resources(&desired, &live);
        assert!(
            actions.iter().all(|a| a.action == ActionKind::Replace),
            "a new VPC block rebuilds everything"
        );
        let steps = schedule(&actions);
        let before = |a: &str, b: &str| {
            assert!(
                position(&steps, a) < position(&steps, b),
                "{a} must come before {b}"
            )
        };
        before("remove listener/web/80", "remove lb/web");
        before("remove nat/0", "remove subnet/public/0");
        before("remove subnet/public/0", "remove vpc");
        before("remove vpc", "create vpc");
        before("release sg/web", "remove sg/lb");
    }
}
