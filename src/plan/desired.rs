//! One environment's whole desired state at a commit (pure), and what AWS holds when
//! it matches that state exactly. A plan made from a diff compares the head's state
//! with the base's this way to tell its own changes from drift; a run without AWS
//! credentials plans against it; the planner's property test starts from it.

use std::collections::BTreeMap;

use super::cluster::{self, DesiredMachines, Image};
use super::machine::{self, Secrets};
use super::{InstanceState, Kind, Live, Observed, Resource, Spec};
use crate::config::{Environment, Zone};
use crate::ignition::RenderError;
use crate::units::UnitSet;

/// Everything one environment wants.
#[derive(Default)]
pub struct DesiredState {
    /// The network layer's resources.
    pub network: Vec<Resource>,
    /// The cluster and node layers' resources.
    pub machines: DesiredMachines,
    /// The config in the launch template (for the unit-level diff; in memory only).
    pub config: Option<String>,
}

/// What an environment's state is made from besides its file.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    /// The repository's units at the same commit.
    pub units: &'a UnitSet,
    /// The environment's zone names, by zone index.
    pub zones: &'a [Zone],
    /// The image the lookup found.
    pub image: &'a Image,
    /// The secrets the configs hold.
    pub secrets: Secrets<'a>,
    /// What AWS holds of the machines (the image kept when `os.follow` is off).
    pub live_machines: &'a [Observed],
}

impl DesiredState {
    /// The whole desired state of `env`, its configs rendered in memory.
    pub fn of(env: &Environment, parts: Parts<'_>) -> Result<DesiredState, RenderError> {
        let network = super::network::desired(env, parts.zones);
        if env.machines().is_none() {
            return Ok(DesiredState {
                network,
                ..DesiredState::default()
            });
        }
        let m = machine::render(env, parts.units, parts.image.clone(), parts.secrets)?;
        let machines = cluster::desired_machines(env, &m, parts.live_machines, parts.zones);
        Ok(DesiredState {
            network,
            machines,
            config: m.config,
        })
    }

    /// What AWS holds when it matches this state exactly: the network, and the
    /// machines (template at version 1 holding this config, the group on it with its
    /// machines launched from it, every instance running), with made-up AWS ids.
    pub fn as_live(&self) -> (Vec<Observed>, Vec<Observed>) {
        let network = made(&self.network, "net");
        let mut machines = made(&self.machines.cluster, "machine");
        machines.extend(made(&self.machines.instances, "instance"));
        for o in &mut machines {
            o.live = match o.kind {
                Kind::LaunchTemplate => Live::LaunchTemplate { latest_version: 1 },
                Kind::Instance => Live::Instance {
                    state: InstanceState::Running,
                },
                Kind::AutoScalingGroup => Live::AutoScalingGroup {
                    template_version: "1".to_owned(),
                    running: match &o.spec {
                        Spec::AutoScalingGroup(g) => BTreeMap::from([(1, g.desired)]),
                        _ => BTreeMap::new(),
                    },
                },
                _ => Live::Nothing,
            };
        }
        if let Some(template) = machines.iter().find(|o| o.kind == Kind::LaunchTemplate) {
            let aws_id = template.aws_id.clone();
            for r in &self.machines.node {
                let mut o = Observed::made(r, aws_id.clone());
                o.live = Live::NodeConfig {
                    config: self.config.clone().unwrap_or_default(),
                };
                machines.push(o);
            }
        }
        (network, machines)
    }
}

/// `resources` as AWS would hold them, each with a made-up AWS id.
fn made(resources: &[Resource], prefix: &str) -> Vec<Observed> {
    resources
        .iter()
        .enumerate()
        .map(|(n, r)| Observed::made(r, format!("{prefix}-{n}")))
        .collect()
}

impl Observed {
    /// What AWS would hold had `r` been made as `aws_id`: its spec, no tags.
    pub fn made(r: &Resource, aws_id: impl Into<String>) -> Observed {
        Observed {
            kind: r.kind,
            id: r.id.clone(),
            aws_id: aws_id.into(),
            spec: r.spec.clone(),
            tags: BTreeMap::new(),
            live: Live::default(),
        }
    }
}
