//! A plan made without AWS: the repository's desired state at the head compared with
//! the desired state at the base, for a run that has no AWS credentials (a fork's
//! pull request). It shows what the change means, not what apply would do.

use super::{
    Action, ActionKind, EnvironmentPlan, Kind, LayerPlan, Observed, Plan, Summary, cluster,
    network, node_diff, plan_resources,
};
use crate::config::{Environment, ImageSource, Layer, Zones};
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
                    cluster_actions(*sides),
                    vec![
                        "the image is looked up on AWS, and running instances are compared there: \
                         this shows the cluster as the files describe it"
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
fn model_zones(env: &Environment) -> Vec<crate::config::Zone> {
    match &env.spec.network.zones {
        Zones::Count(n) => (0..*n)
            .filter_map(|i| {
                let name = format!("{}{}", env.spec.region, char::from(b'a' + i));
                crate::config::Zone::try_from(name).ok()
            })
            .collect(),
        Zones::Names(names) => names.clone(),
    }
}

fn network_actions(sides: Sides<'_>) -> Vec<Action> {
    compare(sides, |e| network::desired(e, &model_zones(e)))
}

/// The image as the file names it: a pinned id, or the OS and channel to look up.
fn model_image(env: &Environment) -> String {
    match env.cluster.as_ref().map(|c| &c.image) {
        Some(ImageSource::Pinned(ami)) => ami.to_string(),
        Some(ImageSource::Feed(os)) => {
            format!("{} {} (looked up on AWS)", os.name.as_str(), os.channel)
        }
        None => String::new(),
    }
}

/// The cluster layer's resources: template, group, data volumes and a fixed-size
/// cluster's instances (their configs are the node layer's).
fn cluster_actions(sides: Sides<'_>) -> Vec<Action> {
    compare(sides, |e| {
        let (image, tgs) = (model_image(e), cluster::target_groups(e));
        let mut resources = cluster::desired(e, &image, "", &tgs);
        resources.extend(cluster::volumes(e, &model_zones(e)));
        let size = e.cluster.as_ref().and_then(|c| c.size.fixed()).unwrap_or(0);
        let nodes = vec![cluster::NodeLaunch::default(); usize::from(size)];
        resources.extend(cluster::instances(e, &image, &tgs, &nodes));
        resources
    })
}

/// The head's resources of a layer against the base's, as if the base were live.
fn compare(
    sides: Sides<'_>,
    resources: impl Fn(&Environment) -> Vec<super::Resource>,
) -> Vec<Action> {
    let desired = sides.head.map(&resources).unwrap_or_default();
    let base: Vec<Observed> = sides
        .base
        .map(&resources)
        .unwrap_or_default()
        .into_iter()
        .map(|r| Observed {
            kind: r.kind,
            id: r.id,
            aws_id: String::new(),
            spec: r.spec,
            tags: Default::default(),
            live: Default::default(),
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
    let shape = env.cluster.as_ref()?;
    env.spec.node.as_ref()?;
    let request = RenderRequest {
        environment: env,
        units,
        node: shape.size.fixed().map(|_| 0),
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
            id: super::LogicalId::NodeConfig,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FieldChange;

    const WEB: &str = "region: eu-west-1\nnetwork:\n  cidr: 10.9.0.0/16\n  zones: 2\n  private_subnets: 2\n  public_subnets: 0\n  nat: none\n  security_groups:\n    web:\n      ingress: [ssh]\ncluster:\n  mode: fixed\n  size: 2\n  instance_type: t3.small\n  os: { name: flatcar, channel: stable }\n  subnets: private\n  security_groups: [web]\nnode:\n  units: [web.service]\n  ssh: { public_key_secret: strata/web/ssh-public-key }\n";

    fn env(text: &str, units: &UnitSet) -> Environment {
        let names = units.names();
        crate::config::load("environments/web.yaml", text, &names).expect("a valid environment")
    }

    fn units(exec: &str) -> UnitSet {
        let text =
            format!("[Service]\nExecStart={exec}\n\n[Install]\nWantedBy=multi-user.target\n");
        crate::units::load([("web.service", text.as_bytes())]).expect("a valid unit")
    }

    /// `<action> <id>: <field changes>` of each action of `layer`.
    fn summary(plan: &Plan, layer: Layer) -> Vec<String> {
        plan.actions()
            .filter(|(_, l, _)| l.layer == layer)
            .map(|(_, _, a)| {
                let changes: Vec<String> = a
                    .changes
                    .iter()
                    .map(|FieldChange { field, from, to }| {
                        format!(
                            "{field} {} → {}",
                            from.as_deref().unwrap_or("-"),
                            to.as_deref().unwrap_or("-")
                        )
                    })
                    .collect();
                format!("{} {}: {}", a.action, a.id, changes.join("; "))
            })
            .collect()
    }

    fn model_plan(base: &str, head: &str, base_units: &UnitSet, head_units: &UnitSet) -> Plan {
        let (base, head) = (env(base, base_units), env(head, head_units));
        let sides = Sides {
            base: Some(&base),
            head: Some(&head),
        };
        plan(
            &[("web".to_owned(), sides, Layer::ALL.to_vec())],
            base_units,
            head_units,
            None,
        )
    }

    #[test]
    fn a_cluster_change_shows_in_the_template_and_every_instance() {
        let u = units("/usr/bin/true");
        let plan = model_plan(WEB, &WEB.replace("t3.small", "t3.large"), &u, &u);
        assert_eq!(summary(&plan, Layer::Network), Vec::<String>::new());
        assert_eq!(
            summary(&plan, Layer::Cluster),
            [
                "update launch-template: instance_type t3.small → t3.large",
                "replace instance/0: instance_type t3.small → t3.large",
                "replace instance/1: instance_type t3.small → t3.large",
            ]
        );
        assert_eq!(summary(&plan, Layer::Node), Vec::<String>::new());
    }

    #[test]
    fn a_unit_change_is_a_node_config_update_with_its_unit_lines() {
        let plan = model_plan(WEB, WEB, &units("/usr/bin/true"), &units("/usr/bin/false"));
        assert_eq!(summary(&plan, Layer::Cluster), Vec::<String>::new());
        let node: Vec<&Action> = plan
            .actions()
            .filter(|(_, l, _)| l.layer == Layer::Node)
            .map(|(_, _, a)| a)
            .collect();
        assert_eq!(node.len(), 1);
        assert_eq!(node[0].action, ActionKind::Update);
        assert!(
            node[0].detail.iter().any(|l| l.contains("/usr/bin/false")),
            "{:?}",
            node[0].detail
        );
    }

    #[test]
    fn a_new_environment_is_created_whole_without_an_image_lookup() {
        let u = units("/usr/bin/true");
        let head = env(WEB, &u);
        let sides = Sides {
            base: None,
            head: Some(&head),
        };
        let plan = plan(
            &[("web".to_owned(), sides, Layer::ALL.to_vec())],
            &u,
            &u,
            None,
        );
        let cluster = summary(&plan, Layer::Cluster);
        assert_eq!(cluster.len(), 3, "{cluster:?}");
        assert!(
            cluster[0].contains("image - → flatcar stable (looked up on AWS)"),
            "{cluster:?}"
        );
    }
}
