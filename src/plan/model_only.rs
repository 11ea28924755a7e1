//! A plan made without AWS: the repository's desired state at the head compared with
//! the desired state at the base, for a run that has no AWS credentials (a fork's
//! pull request). It shows what the change means, not what apply would do.

use super::{
    Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Observed, Plan, Summary, cluster,
    network, node_diff, plan_resources,
};
use crate::config::{ClusterMode, Environment, Layer, Zones};
use crate::ignition::{self, RenderRequest};
use crate::units::UnitSet;

/// One environment's two sides.
#[derive(Debug, Clone, Copy)]
pub struct Sides<'a> {
    /// At the base (`None`: added).
    pub base: Option<&'a Environment>,
    /// At the head (`None`: removed).
    pub head: Option<&'a Environment>,
}

/// The model-only plan of `environments`, each with the layers to compare.
pub fn plan(
    environments: &[(String, Sides<'_>, Vec<Layer>)],
    base_units: &UnitSet,
    head_units: &UnitSet,
    commit: Option<String>,
) -> Plan {
    let mut out = Vec::new();
    for (name, sides, layers) in environments {
        let Some(either) = sides.head.or(sides.base) else {
            continue;
        };
        let has = |part: fn(&Environment) -> bool| {
            sides.base.is_some_and(part) || sides.head.is_some_and(part)
        };
        let mut layer_plans = Vec::new();
        for layer in layers {
            // A layer neither side has (a network-only environment's cluster) is not shown.
            let present = match layer {
                Layer::Network => true,
                Layer::Cluster => has(|e| e.spec.cluster.is_some()),
                Layer::Node => has(|e| e.spec.node.is_some()),
            };
            if !present {
                continue;
            }
            let (actions, notes) = match layer {
                Layer::Network => (network_actions(*sides), Vec::new()),
                Layer::Node => node_actions(*sides, base_units, head_units),
                Layer::Cluster => (
                    Vec::new(),
                    vec![
                        "the cluster layer is compared with live AWS only (its image is looked up there); \
                         this run had no AWS credentials"
                            .to_owned(),
                    ],
                ),
            };
            layer_plans.push(LayerPlan {
                layer: *layer,
                forced_by: None,
                summary: Summary::of(&actions),
                actions,
                notes,
            });
        }
        out.push(EnvironmentPlan {
            name: name.clone(),
            region: either.spec.region.to_string(),
            removed: sides.head.is_none(),
            summary: layer_plans.iter().map(|l| l.summary).sum(),
            layers: layer_plans,
        });
    }
    Plan::new(commit, out)
}

/// Zone names as the region would most likely give them (`<region>a`, `b`, ...):
/// only their count and order matter to a model-only diff.
fn model_zones(env: &Environment) -> Vec<String> {
    match &env.spec.network.zones {
        Zones::Count(n) => (0..*n)
            .map(|i| format!("{}{}", env.spec.region, char::from(b'a' + i)))
            .collect(),
        Zones::Names(names) => names.iter().map(ToString::to_string).collect(),
    }
}

fn network_actions(sides: Sides<'_>) -> Vec<Action> {
    let desired = sides
        .head
        .map(|e| network::desired(e, &model_zones(e)))
        .unwrap_or_default();
    let base: Vec<Observed> = sides
        .base
        .map(|e| network::desired(e, &model_zones(e)))
        .unwrap_or_default()
        .into_iter()
        .map(|r| Observed {
            kind: r.kind,
            id: r.id,
            aws_id: String::new(),
            spec: r.spec,
            tags: Default::default(),
            extra: Default::default(),
        })
        .collect();
    let mut actions = plan_resources(&desired, &base);
    for a in &mut actions {
        a.aws_id = None;
    }
    actions
}

/// The node config rendered offline (no key, no discovery token), node 0 for a
/// fixed cluster.
fn offline_config(env: &Environment, units: &UnitSet) -> Option<String> {
    let cluster = env.spec.cluster.as_ref()?;
    env.spec.node.as_ref()?;
    let request = RenderRequest {
        environment: env,
        units,
        node: (cluster.mode == ClusterMode::Fixed).then_some(0),
        ssh_public_key: None,
        etcd_discovery: None,
    };
    ignition::build(&request)
        .ok()
        .map(|c| ignition::to_json(&c))
}

fn node_actions(
    sides: Sides<'_>,
    base_units: &UnitSet,
    head_units: &UnitSet,
) -> (Vec<Action>, Vec<String>) {
    let old = sides.base.and_then(|e| offline_config(e, base_units));
    let new = sides.head.and_then(|e| offline_config(e, head_units));
    let action = match (&old, &new) {
        (Some(o), Some(n)) if o == n => return (Vec::new(), Vec::new()),
        (Some(_), Some(_)) => ActionKind::Update,
        (None, Some(_)) => ActionKind::Create,
        (Some(_), None) => ActionKind::Delete,
        (None, None) => return (Vec::new(), Vec::new()),
    };
    let detail = node_diff::diff(
        old.as_deref().unwrap_or("{}"),
        new.as_deref().unwrap_or("{}"),
    );
    (
        vec![Action {
            action,
            kind: Kind::NodeConfig,
            id: cluster::NODE_CONFIG.to_owned(),
            aws_id: None,
            changes: Vec::new(),
            forced_by: None,
            detail,
            desired: None,
            observed: None,
        }],
        vec![
            "rendered without the SSH key and etcd discovery token, which are read from AWS"
                .to_owned(),
        ],
    )
}
