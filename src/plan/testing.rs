//! What the core's tests share: the example repository, and an environment's plan
//! made with the one planner against a desired state standing in for live AWS.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::EnvironmentPlan;
use super::cluster::Image;
use super::desired::{DesiredState, Parts};
use super::environment::{Inputs, plan};
use crate::config::{Environment, Layer, Zone};
use crate::repo::{self, RepoFiles};
use crate::units::UnitSet;

/// The project's example environments and units.
pub fn examples() -> RepoFiles {
    let mut files = repo::read_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("the examples");
    files.links.clear();
    files
}

/// One commit's environments and units, with each environment's desired state.
pub struct Side {
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// The units.
    pub units: UnitSet,
}

impl Side {
    /// The side of `files`, `None` when they do not load.
    pub fn load(files: &RepoFiles) -> Option<Side> {
        let repository = repo::load(files).ok()?;
        Some(Side {
            environments: crate::selection::by_name(repository.environments),
            units: repository.units,
        })
    }

    /// Environment `name`'s desired state (empty when it has no file) and zones.
    pub fn state(&self, name: &str) -> (DesiredState, Vec<Zone>) {
        let Some(env) = self.environments.get(name) else {
            return (DesiredState::default(), Vec::new());
        };
        let zones = super::model_only::model_zones(env);
        let image = Image {
            id: "ami-0123456789abcdef0".into(),
            name: "flatcar-stable".into(),
            release: None,
            source: "flatcar stable".into(),
        };
        let parts = Parts {
            units: &self.units,
            zones: &zones,
            image: &image,
            secrets: Default::default(),
            live_machines: &[],
        };
        let state = DesiredState::of(env, parts).expect("the examples render");
        (state, zones)
    }

    /// The plan of environment `name` as this side has it, with `layers` planned (of
    /// which `changed` changed), live AWS holding `live`.
    pub fn plan(
        &self,
        name: &str,
        live: &DesiredState,
        layers: &BTreeSet<Layer>,
        changed: &BTreeSet<Layer>,
    ) -> EnvironmentPlan {
        let (wanted, zones) = self.state(name);
        let (network, machines) = live.as_live();
        let region = self
            .environments
            .get(name)
            .map_or("eu-west-1".to_owned(), |e| e.spec.region.to_string());
        plan(&Inputs {
            name,
            region: &region,
            environment: self.environments.get(name),
            layers,
            changed,
            zones: &zones,
            network: &network,
            machines: &machines,
            image: None,
            config: wanted.config.as_deref(),
            desired: Some(&wanted.machines),
        })
    }
}
