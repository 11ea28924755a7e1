//! An auto-scaling group's rollout (pure): the group follows a new template version
//! made by the plan, or, with none made, the machines it still runs from an older one
//! (an apply stopped before its instance refresh). Either way the group's update
//! carries the instance refresh, counted as a rollout.

use super::spec::AutoScalingGroup;
use super::{Action, ActionKind, FieldChange, Kind, LayerPlan, Live, Observed, Resource, Summary};
use crate::config::Layer;

/// A changed launch template (cluster) or node config (node) makes a new template
/// version; the auto-scaling group must move to it. When the group has no change of
/// its own, the layer that made the version gets an update of the group, saying so.
/// With no new version made, machines the group still runs from another version than
/// the template's latest are refreshed ([`follow_stale_machines`]).
pub(super) fn follow_new_template_version(
    layers: &mut [LayerPlan],
    observed: &[Observed],
    desired_cluster: Option<&[Resource]>,
) {
    let Some(group) = observed.iter().find(|o| o.kind == Kind::AutoScalingGroup) else {
        return;
    };
    let Some(desired) =
        desired_cluster.and_then(|d| d.iter().find(|r| r.kind == Kind::AutoScalingGroup))
    else {
        return;
    };
    let Some(rollout) = rollout_change(desired) else {
        return;
    };
    let template_action = |a: &Action| matches!(a.kind, Kind::LaunchTemplate | Kind::NodeConfig);
    let touched = |l: &LayerPlan| {
        l.actions
            .iter()
            .any(|a| template_action(a) && a.action == ActionKind::Update)
    };
    if !layers.iter().any(touched) {
        // A template made or replaced has versions of its own: its group follows it
        // by its own update.
        if !layers.iter().flat_map(|l| &l.actions).any(template_action) {
            follow_stale_machines(layers, observed, group, desired, rollout);
        }
        return;
    }
    // An instance refresh replaces every machine the group runs.
    let running = match &group.spec {
        super::Spec::AutoScalingGroup(AutoScalingGroup { desired, .. }) => *desired,
        _ => 0,
    };
    if let Some(layer) = layers
        .iter_mut()
        .find(|l| l.actions.iter().any(|a| a.kind == Kind::AutoScalingGroup))
    {
        if let Some(existing) = layer
            .actions
            .iter_mut()
            .find(|a| a.kind == Kind::AutoScalingGroup && a.action == ActionKind::Update)
        {
            existing.changes.push(rollout);
            existing.refresh = Some(running);
            layer.summary = Summary::of(&layer.actions);
        }
        return;
    }
    let Some(layer) = layers.iter_mut().find(|l| touched(l)) else {
        return;
    };
    let version = match &group.live {
        Live::AutoScalingGroup {
            template_version, ..
        } => template_version.clone(),
        _ => "$Default".to_owned(),
    };
    let change = FieldChange {
        origin: None,
        field: "launch_template_version".into(),
        from: Some(version),
        to: Some("the new version".into()),
    };
    let update = group_update(group, desired, vec![change, rollout], running, None);
    layer.actions.push(update);
    layer.summary = Summary::of(&layer.actions);
}

/// With no new template version made, the machines the group runs from another
/// version than the template's latest (the one apply pins the group to): an apply
/// stopped after making or pinning a version and before its instance refresh leaves
/// them so. The group's update (its own, or one made for this, in the cluster layer,
/// else the node layer) carries a refresh of just those machines (it skips the ones
/// that match) and says why; a group pinned to another version moves to the latest.
fn follow_stale_machines(
    layers: &mut [LayerPlan],
    observed: &[Observed],
    group: &Observed,
    desired: &Resource,
    rollout: FieldChange,
) {
    let Live::AutoScalingGroup {
        template_version,
        running,
    } = &group.live
    else {
        return;
    };
    let latest = observed.iter().find_map(|o| match o.live {
        Live::LaunchTemplate { latest_version } => Some(latest_version),
        _ => None,
    });
    let pinned = template_version.parse::<i64>().ok();
    let Some(wanted) = latest.or(pinned) else {
        return;
    };
    let count = |stale: bool| {
        running
            .iter()
            .filter(|(v, _)| (**v != wanted) == stale)
            .fold(0u16, |sum, (_, n)| sum.saturating_add(*n))
    };
    let (stale, current) = (count(true), count(false));
    let moves = pinned != Some(wanted);
    if stale == 0 && !moves {
        return;
    }
    let old: Vec<String> = running
        .keys()
        .filter(|v| **v != wanted)
        .map(ToString::to_string)
        .collect();
    let why = match stale {
        0 => format!(
            "the group launches template version {template_version}, not the latest, {wanted}"
        ),
        n => format!(
            "{n} of {} machine{} still {} template version{} {}; the group launches version {wanted}",
            n.saturating_add(current),
            if n.saturating_add(current) == 1 {
                ""
            } else {
                "s"
            },
            if n == 1 { "runs" } else { "run" },
            if old.len() == 1 { "" } else { "s" },
            old.join(", ")
        ),
    };
    let mut changes = Vec::new();
    if moves {
        changes.push(FieldChange {
            origin: None,
            field: "launch_template_version".into(),
            from: Some(template_version.clone()),
            to: Some(wanted.to_string()),
        });
    }
    if stale > 0 {
        changes.push(rollout);
    }
    let planned = |l: Layer| layers.iter().position(|p| p.layer == l);
    let Some(at) = planned(Layer::Cluster).or_else(|| planned(Layer::Node)) else {
        return;
    };
    let group_action = layers
        .iter()
        .flat_map(|l| &l.actions)
        .find(|a| a.kind == Kind::AutoScalingGroup);
    match group_action.map(|a| a.action) {
        // Made, replaced or deleted: nothing of the old group is kept.
        Some(ActionKind::Create | ActionKind::Replace | ActionKind::Delete) => {}
        Some(ActionKind::Update) => {
            for layer in layers.iter_mut() {
                let Some(existing) = layer
                    .actions
                    .iter_mut()
                    .find(|a| a.kind == Kind::AutoScalingGroup)
                else {
                    continue;
                };
                existing.changes.extend(changes);
                existing.refresh = Some(stale);
                layer.notes.push(why);
                layer.summary = Summary::of(&layer.actions);
                break;
            }
        }
        None => {
            let layer = &mut layers[at];
            let update = group_update(group, desired, changes, stale, Some(why));
            layer.actions.push(update);
            layer.summary = Summary::of(&layer.actions);
        }
    }
}

/// The rollout an instance refresh makes, with the group's settings.
fn rollout_change(desired: &Resource) -> Option<FieldChange> {
    match &desired.spec {
        super::Spec::AutoScalingGroup(AutoScalingGroup {
            min_healthy_percent,
            warmup_seconds,
            ..
        }) => Some(FieldChange {
            origin: None,
            field: "rollout".into(),
            from: None,
            to: Some(format!(
                "instance refresh, {min_healthy_percent}% kept in service, {warmup_seconds}s warm-up"
            )),
        }),
        _ => None,
    }
}

/// An update of the group no field of its own asks for, ending in a refresh of
/// `refresh` machines.
fn group_update(
    group: &Observed,
    desired: &Resource,
    changes: Vec<FieldChange>,
    refresh: u16,
    forced_by: Option<String>,
) -> Action {
    Action {
        refresh: Some(refresh),
        origin: None,
        detail: Vec::new(),
        action: ActionKind::Update,
        kind: Kind::AutoScalingGroup,
        id: group.id.clone(),
        aws_id: Some(group.aws_id.clone()),
        changes,
        forced_by,
        desired: Some(desired.clone()),
        observed: Some(group.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::config::{Environment, Zone};
    use crate::plan::cluster::{self, DesiredMachines, Machine};
    use crate::plan::{LogicalId, Resource, Spec};

    const GROUP: &str = "region: eu-west-1\nnetwork: { cidr: 10.8.0.0/16, zones: 2, private_subnets: 2, public_subnets: 0, nat: none }\n\
        cluster:\n  mode: autoscaling\n  min: 3\n  max: 6\n  instance_type: t3.small\n  os: { name: flatcar, channel: stable }\n";

    fn machines() -> DesiredMachines {
        let env: Environment =
            crate::config::load("environments/web.yaml", GROUP, &BTreeSet::new()).unwrap();
        let zones = ["eu-west-1a", "eu-west-1b"].map(|z| Zone::try_from(z.to_owned()).unwrap());
        let image = cluster::Image {
            id: "ami-1".into(),
            name: "flatcar".into(),
            release: None,
            source: "flatcar stable".into(),
        };
        let m = Machine {
            image,
            config: None,
            user_data: String::new(),
            nodes: vec![Default::default(); 1],
        };
        cluster::desired_machines(&env, &m, &[], &zones)
    }

    /// The group and its template as AWS holds them: the template's latest version,
    /// the version the group is pinned to, and how many machines run each version.
    fn held(
        desired: &DesiredMachines,
        latest: i64,
        pinned: &str,
        running: &[(i64, u16)],
    ) -> Vec<Observed> {
        let mut live = Observed::all_made(&desired.cluster);
        for o in &mut live {
            o.live = match o.kind {
                Kind::LaunchTemplate => Live::LaunchTemplate {
                    latest_version: latest,
                },
                Kind::AutoScalingGroup => Live::AutoScalingGroup {
                    template_version: pinned.to_owned(),
                    running: running.iter().copied().collect::<BTreeMap<_, _>>(),
                },
                _ => Live::Nothing,
            };
        }
        live
    }

    fn empty(l: Layer) -> LayerPlan {
        LayerPlan {
            layer: l,
            forced_by: None,
            summary: Summary::default(),
            actions: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Each layer's actions as `(layer, action, id, refresh, forced_by)`, and the
    /// group's field changes as `(field, from, to)`.
    type Seen = (
        Vec<(Layer, String, Option<u16>, Option<String>)>,
        Vec<(String, Option<String>, Option<String>)>,
    );

    fn followed(mut layers: Vec<LayerPlan>, live: &[Observed], desired: &DesiredMachines) -> Seen {
        follow_new_template_version(&mut layers, live, Some(&desired.cluster));
        let mut changes = Vec::new();
        let mut actions = Vec::new();
        for l in &layers {
            assert_eq!(l.summary, Summary::of(&l.actions), "the summary is kept");
            for a in &l.actions {
                actions.push((
                    l.layer,
                    format!("{} {}", a.action, a.id),
                    a.refresh,
                    a.forced_by.clone(),
                ));
                if a.kind == Kind::AutoScalingGroup {
                    changes.extend(
                        a.changes
                            .iter()
                            .map(|c| (c.field.clone(), c.from.clone(), c.to.clone())),
                    );
                }
            }
        }
        (actions, changes)
    }

    fn change(
        field: &str,
        from: Option<&str>,
        to: &str,
    ) -> (String, Option<String>, Option<String>) {
        (
            field.to_owned(),
            from.map(str::to_owned),
            Some(to.to_owned()),
        )
    }

    const ROLLOUT: &str = "instance refresh, 90% kept in service, 60s warm-up";

    #[test]
    fn a_new_template_version_moves_the_group_and_says_how() {
        let desired = machines();
        let live = held(&desired, 3, "3", &[(3, 3)]);
        let update = Action {
            refresh: None,
            origin: None,
            action: ActionKind::Update,
            kind: Kind::LaunchTemplate,
            id: LogicalId::LaunchTemplate,
            aws_id: Some("aws-0".into()),
            changes: Vec::new(),
            forced_by: None,
            detail: Vec::new(),
            desired: None,
            observed: None,
        };
        let mut cluster = empty(Layer::Cluster);
        cluster.actions.push(update);
        let (actions, changes) = followed(vec![cluster], &live, &desired);
        assert_eq!(
            actions,
            [
                (
                    Layer::Cluster,
                    "update launch-template".to_owned(),
                    None,
                    None
                ),
                (Layer::Cluster, "update asg".to_owned(), Some(3), None),
            ]
        );
        assert_eq!(
            changes,
            [
                change("launch_template_version", Some("3"), "the new version"),
                change("rollout", None, ROLLOUT),
            ]
        );
    }

    #[test]
    fn machines_left_on_an_older_version_are_refreshed_saying_why() {
        // Killed after the group was pinned to version 4, before its refresh.
        let desired = machines();
        let live = held(&desired, 4, "4", &[(3, 2), (4, 1)]);
        let layers = vec![
            empty(Layer::Network),
            empty(Layer::Cluster),
            empty(Layer::Node),
        ];
        let (actions, changes) = followed(layers, &live, &desired);
        let why = "2 of 3 machines still run template version 3; the group launches version 4";
        assert_eq!(
            actions,
            [(
                Layer::Cluster,
                "update asg".to_owned(),
                Some(2),
                Some(why.to_owned())
            )]
        );
        assert_eq!(changes, [change("rollout", None, ROLLOUT)]);
    }

    #[test]
    fn a_group_left_on_an_older_version_moves_to_the_latest_and_refreshes() {
        // Killed after the new version was made, before the group was pinned to it;
        // a plan of the node layer alone carries it there.
        let desired = machines();
        let live = held(&desired, 4, "3", &[(2, 1), (3, 2)]);
        let (actions, changes) = followed(vec![empty(Layer::Node)], &live, &desired);
        let why = "3 of 3 machines still run template versions 2, 3; the group launches version 4";
        assert_eq!(
            actions,
            [(
                Layer::Node,
                "update asg".to_owned(),
                Some(3),
                Some(why.to_owned())
            )]
        );
        assert_eq!(
            changes,
            [
                change("launch_template_version", Some("3"), "4"),
                change("rollout", None, ROLLOUT),
            ]
        );
    }

    #[test]
    fn a_group_whose_machines_all_run_its_version_is_left_be() {
        let desired = machines();
        let live = held(&desired, 4, "4", &[(4, 3)]);
        let layers = vec![empty(Layer::Cluster), empty(Layer::Node)];
        assert_eq!(followed(layers, &live, &desired), (Vec::new(), Vec::new()));
        // Asked for the network alone, the machines are not planned.
        let stale = held(&desired, 4, "4", &[(3, 3)]);
        let network = vec![empty(Layer::Network)];
        assert_eq!(
            followed(network, &stale, &desired),
            (Vec::new(), Vec::new())
        );
    }

    #[test]
    fn a_group_change_of_its_own_carries_the_refresh_of_stale_machines() {
        let desired = machines();
        let live = held(&desired, 4, "4", &[(3, 1), (4, 2)]);
        let group = live
            .iter()
            .find(|o| o.kind == Kind::AutoScalingGroup)
            .unwrap();
        let mut wanted: Resource = desired.cluster[1].clone();
        if let Spec::AutoScalingGroup(g) = &mut wanted.spec {
            g.desired = 4;
        }
        let mut cluster = empty(Layer::Cluster);
        cluster.actions = crate::plan::plan_resources(&[wanted], std::slice::from_ref(group));
        let (actions, changes) = followed(vec![cluster], &live, &desired);
        assert_eq!(
            actions,
            [(Layer::Cluster, "update asg".to_owned(), Some(1), None)]
        );
        assert_eq!(
            changes,
            [
                change("desired", Some("3"), "4"),
                change("rollout", None, ROLLOUT)
            ]
        );
    }

    #[test]
    fn a_new_version_made_anyway_refreshes_every_machine_once() {
        let desired = machines();
        let live = held(&desired, 4, "4", &[(3, 1), (4, 2)]);
        let mut node = empty(Layer::Node);
        node.actions.push(Action {
            refresh: None,
            origin: None,
            action: ActionKind::Update,
            kind: Kind::NodeConfig,
            id: LogicalId::NodeConfig,
            aws_id: Some("aws-0".into()),
            changes: Vec::new(),
            forced_by: None,
            detail: Vec::new(),
            desired: None,
            observed: None,
        });
        let (actions, _) = followed(vec![empty(Layer::Cluster), node], &live, &desired);
        assert_eq!(
            actions,
            [
                (Layer::Node, "update node/config".to_owned(), None, None),
                (Layer::Node, "update asg".to_owned(), Some(3), None),
            ]
        );
    }
}
