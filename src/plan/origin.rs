//! Where each change of a plan made from a diff comes from (pure): the diff itself, or
//! drift (live AWS differs from what the base commit declares). The diff's own
//! changes are the plan of the head against the base's desired state as if it were
//! live; whatever else the plan against live AWS holds is drift.

use super::{Action, EnvironmentPlan, FieldChange, Origin};

/// Marks every action and field change of `plan` (the head against live AWS) with its
/// origin, given `own` (the head against the base as if it were live). An action is
/// the diff's when `own` does the same to the same resource; a field change when
/// `own` holds the same change of the same field.
pub fn mark(plan: &mut EnvironmentPlan, own: &EnvironmentPlan) {
    let own_actions: Vec<&Action> = own.layers.iter().flat_map(|l| &l.actions).collect();
    for a in plan.layers.iter_mut().flat_map(|l| l.actions.iter_mut()) {
        let same = own_actions
            .iter()
            .find(|o| o.kind == a.kind && o.id == a.id);
        for c in &mut a.changes {
            let ours = same.is_some_and(|o| o.changes.iter().any(|oc| same_change(oc, c)));
            c.origin = Some(if ours { Origin::Change } else { Origin::Drift });
        }
        // The diff's when it does the same, or when it asks for a change of its own that
        // drift makes bigger (an update become a replacement).
        let ours = match same {
            Some(o) if o.action == a.action => true,
            Some(_) => a.changes.iter().any(|c| c.origin == Some(Origin::Change)),
            None => false,
        };
        a.origin = Some(if ours { Origin::Change } else { Origin::Drift });
    }
}

/// The same change of the same field: to the same value (or, for a removed set member,
/// of the same member).
fn same_change(ours: &FieldChange, theirs: &FieldChange) -> bool {
    ours.field == theirs.field
        && ours.to == theirs.to
        && (theirs.to.is_some() || ours.from == theirs.from)
}

/// True when any change of `plan` is drift.
pub fn has_drift(plan: &EnvironmentPlan) -> bool {
    plan.layers.iter().flat_map(|l| &l.actions).any(|a| {
        a.origin == Some(Origin::Drift) || a.changes.iter().any(|c| c.origin == Some(Origin::Drift))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::Layer;
    use crate::plan::desired::DesiredState;
    use crate::plan::environment::{Inputs, plan};
    use crate::plan::{Observed, Spec};

    const WEB: &str = "region: eu-west-1\nnetwork:\n  cidr: 10.9.0.0/16\n  zones: 2\n  private_subnets: 2\n  public_subnets: 0\n  nat: none\n  security_groups:\n    web:\n      ingress: [ssh]\n";

    fn state(text: &str) -> (crate::config::Environment, DesiredState) {
        let env = crate::config::load("environments/web.yaml", text, &BTreeSet::new()).unwrap();
        let zones = crate::plan::model_only::model_zones(&env);
        let network = crate::plan::network::desired(&env, &zones);
        (
            env,
            DesiredState {
                network,
                ..DesiredState::default()
            },
        )
    }

    fn planned(env: &crate::config::Environment, network: &[Observed]) -> EnvironmentPlan {
        let layers = BTreeSet::from([Layer::Network]);
        let zones = crate::plan::model_only::model_zones(env);
        plan(&Inputs {
            name: "web",
            region: "eu-west-1",
            environment: Some(env),
            layers: &layers,
            changed: &layers,
            zones: &zones,
            network,
            machines: &[],
            image: None,
            config: None,
            desired: None,
        })
    }

    #[test]
    fn a_rule_added_by_hand_is_drift_and_the_diffs_rule_is_its_own() {
        let (_, base) = state(WEB);
        let (head_env, _) = state(&WEB.replace("[ssh]", "[ssh, http]"));
        let (mut live, _) = base.as_live();
        // By hand, in AWS: https opened on the group.
        let (_, with_https) = state(&WEB.replace("[ssh]", "[ssh, https]"));
        let (by_hand, _) = with_https.as_live();
        for (o, h) in live.iter_mut().zip(by_hand) {
            if matches!(o.spec, Spec::SecurityGroup(_)) {
                o.spec = h.spec;
            }
        }
        let mut full = planned(&head_env, &live);
        let own = planned(&head_env, &base.as_live().0);
        mark(&mut full, &own);
        let group = full.layers[0]
            .actions
            .iter()
            .find(|a| a.id.to_string() == "sg/web")
            .unwrap();
        let origins: Vec<(String, Option<Origin>)> = group
            .changes
            .iter()
            .map(|c| {
                let value = c.to.clone().or(c.from.clone()).unwrap_or_default();
                (value, c.origin)
            })
            .collect();
        assert_eq!(
            origins,
            [
                ("tcp 443 from 10.9.0.0/16".to_owned(), Some(Origin::Drift)),
                ("tcp 80 from 10.9.0.0/16".to_owned(), Some(Origin::Change)),
            ]
        );
        assert_eq!(group.origin, Some(Origin::Change));
        assert!(has_drift(&full));
    }
}
