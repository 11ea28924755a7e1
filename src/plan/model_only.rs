//! A plan made without AWS: the repository's desired state at the head compared with
//! the desired state at the base, for a run that has no AWS credentials (a fork's
//! pull request). It shows what the change means, not what apply would do.

use super::cluster::Image;
use super::desired::{DesiredState, Parts};
use super::environment::{Inputs, plan as plan_environment};
use super::{EnvironmentPlan, Origin, Plan};
use crate::config::{Environment, ImageSource, Layer, Zone, Zones};
use crate::units::UnitSet;

/// One environment's two sides.
#[derive(Debug, Clone, Copy)]
pub struct Sides<'a> {
    /// At the base (`None`: added).
    pub base: Option<&'a Environment>,
    /// At the head (`None`: removed).
    pub head: Option<&'a Environment>,
}

/// The model-only plan of `environments`, each with the layers to compare: the one
/// planner, with the base's desired state standing in for live AWS.
pub fn plan(
    environments: &[(String, Sides<'_>, Vec<Layer>)],
    base_units: &UnitSet,
    head_units: &UnitSet,
    commit: Option<String>,
) -> Plan {
    let out = environments
        .iter()
        .filter_map(|(name, sides, layers)| {
            let either = sides.head.or(sides.base)?;
            Some(environment(
                name, either, *sides, layers, base_units, head_units,
            ))
        })
        .collect();
    Plan::new(commit, out)
}

fn environment(
    name: &str,
    either: &Environment,
    sides: Sides<'_>,
    layers: &[Layer],
    base_units: &UnitSet,
    head_units: &UnitSet,
) -> EnvironmentPlan {
    let state = |env: Option<&Environment>, units: &UnitSet| {
        let Some(env) = env else {
            return (DesiredState::default(), Vec::new());
        };
        let zones = model_zones(env);
        let parts = Parts {
            units,
            zones: &zones,
            image: &model_image(env),
            secrets: Default::default(),
            live_machines: &[],
        };
        // A config that cannot be rendered offline compares as no config.
        (DesiredState::of(env, parts).unwrap_or_default(), zones)
    };
    let (base, _) = state(sides.base, base_units);
    let (head, zones) = state(sides.head, head_units);
    let (network, machines) = base.as_live();
    let layers = layers.iter().copied().collect();
    let mut plan = plan_environment(&Inputs {
        name,
        region: either.spec.region.as_str(),
        environment: sides.head,
        layers: &layers,
        changed: &layers,
        zones: &zones,
        network: &network,
        machines: &machines,
        image: None,
        config: head.config.as_deref(),
        desired: Some(&head.machines),
    });
    plan.trust = super::trust::changes(sides.base, sides.head);
    for l in &mut plan.layers {
        for a in &mut l.actions {
            // What the model stands in for has no AWS ids.
            a.aws_id = None;
            a.origin = Some(Origin::Change);
            for c in &mut a.changes {
                c.origin = Some(Origin::Change);
            }
        }
        match l.layer {
            Layer::Network => {}
            Layer::Cluster => l.notes.push(
                "the image is looked up on AWS, and running instances are compared there: \
                 this shows the cluster as the files describe it"
                    .to_owned(),
            ),
            Layer::Node => l.notes.push(
                "rendered without the SSH key and etcd discovery token, which are read from AWS"
                    .to_owned(),
            ),
        }
    }
    plan
}

/// Zone names as the region would most likely give them (`<region>a`, `b`, ...):
/// only their count and order matter to a model-only diff.
pub(crate) fn model_zones(env: &Environment) -> Vec<Zone> {
    match &env.spec.network.zones {
        Zones::Count(n) => (0..*n)
            .filter_map(|i| {
                let name = format!("{}{}", env.spec.region, char::from(b'a' + i));
                Zone::try_from(name).ok()
            })
            .collect(),
        Zones::Names(names) => names.clone(),
    }
}

/// The image as the file names it: a pinned id, or the OS and channel to look up.
fn model_image(env: &Environment) -> Image {
    let (id, source) = match env.cluster.as_ref().map(|c| &c.image) {
        Some(ImageSource::Pinned(ami)) => (ami.to_string(), "pinned".to_owned()),
        Some(ImageSource::Feed(os)) => {
            let source = format!("{} {}", os.name.as_str(), os.channel);
            (format!("{source} (looked up on AWS)"), source)
        }
        None => (String::new(), String::new()),
    };
    Image {
        id,
        name: String::new(),
        release: None,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, ActionKind, FieldChange};

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
                    .map(
                        |FieldChange {
                             field, from, to, ..
                         }| {
                            format!(
                                "{field} {} → {}",
                                from.as_deref().unwrap_or("-"),
                                to.as_deref().unwrap_or("-")
                            )
                        },
                    )
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
    fn a_unit_change_is_a_node_config_update_with_its_unit_lines_and_rolls_the_nodes() {
        let plan = model_plan(WEB, WEB, &units("/usr/bin/true"), &units("/usr/bin/false"));
        // A fixed-size cluster's nodes boot with the config: each is replaced, in the
        // cluster layer, as a plan of every layer has it.
        let cluster = summary(&plan, Layer::Cluster);
        assert_eq!(cluster.len(), 2, "{cluster:?}");
        assert!(cluster.iter().all(|a| a.starts_with("replace instance/")));
        assert_eq!(plan.summary.rollout, 2);
        assert_eq!(plan.summary.replace, 0, "a rollout needs no consent");
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
