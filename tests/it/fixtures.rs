//! Planning and applying as the tests do it: environments selected as `--env` and
//! `--layer` select them, planned against one moto account, and the plan applied with
//! or without consent to delete.

use std::collections::BTreeMap;

use strata::aws::Connector;
use strata::config::{Environment, Layer};
use strata::engine::{self, Applied, EngineError, Observations, Target};
use strata::plan::Plan;
use strata::units::UnitSet;

/// No units, for environments without a node layer (or plans that do not look at it).
pub static NO_UNITS: UnitSet = UnitSet {
    units: BTreeMap::new(),
};

/// The commit the network tests plan from, found recorded on what they create.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// What a test plans: which layers, with which units, from which commit.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The layers planned; every layer when empty.
    layers: &'a [Layer],
    units: &'a UnitSet,
    commit: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// Every layer, with `units`, from no known commit (as a local run plans).
    pub const fn units(units: &'a UnitSet) -> Scope<'a> {
        Scope {
            layers: &[],
            units,
            commit: None,
        }
    }

    /// Only `layers`.
    pub const fn layers(self, layers: &'a [Layer]) -> Scope<'a> {
        Scope { layers, ..self }
    }

    /// From `commit`, which apply records on each layer's root resource.
    pub const fn commit(self, commit: &'a str) -> Scope<'a> {
        Scope {
            commit: Some(commit),
            ..self
        }
    }

    /// The selected layers of each of `envs`.
    pub fn targets(&self, envs: &[&Environment]) -> Vec<Target> {
        let map: BTreeMap<String, Environment> = envs
            .iter()
            .map(|e| (e.name.to_string(), (*e).clone()))
            .collect();
        engine::select(&map, &[], self.layers).unwrap()
    }

    /// Plans `envs`, keeping what apply needs.
    pub async fn try_plan(
        &self,
        connector: &Connector,
        envs: &[&Environment],
    ) -> Result<Planned, EngineError> {
        Planned::make(connector, self.targets(envs), self.units, self.commit).await
    }

    /// Plans `envs`; a planning error fails the test.
    pub async fn plan(&self, connector: &Connector, envs: &[&Environment]) -> Plan {
        self.try_plan(connector, envs).await.unwrap().plan
    }

    /// Plans `envs` and applies the plan, deleting or replacing only with
    /// `allow_destroy`; returns the plan applied.
    pub async fn apply(
        &self,
        connector: &Connector,
        envs: &[&Environment],
        allow_destroy: bool,
    ) -> Result<Plan, EngineError> {
        let planned = self.try_plan(connector, envs).await?;
        planned.apply(connector, allow_destroy).await?;
        Ok(planned.plan)
    }
}

/// A plan, with what planning observed and the targets it covers: all apply needs.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    pub observed: Observations,
    pub targets: Vec<Target>,
}

impl Planned {
    /// Plans `targets` as given (from `engine::from_changes`, say) with `units`, from no
    /// known commit.
    pub async fn of(
        connector: &Connector,
        targets: &[Target],
        units: &UnitSet,
    ) -> Result<Planned, EngineError> {
        Planned::make(connector, targets.to_vec(), units, None).await
    }

    async fn make(
        connector: &Connector,
        targets: Vec<Target>,
        units: &UnitSet,
        commit: Option<&str>,
    ) -> Result<Planned, EngineError> {
        let (plan, observed) = engine::plan(connector, &targets, units, None, commit).await?;
        // The tests here plan environments that should all be plannable.
        if !plan.unplanned.is_empty() {
            return Err(EngineError::Unplanned(plan.unplanned));
        }
        Ok(Planned {
            plan,
            observed,
            targets,
        })
    }

    /// Applies the plan quietly, deleting or replacing only with `allow_destroy`.
    pub async fn apply(
        &self,
        connector: &Connector,
        allow_destroy: bool,
    ) -> Result<Applied, EngineError> {
        let mut quiet = |_: &str| {};
        self.apply_reporting(connector, allow_destroy, &mut quiet)
            .await
    }

    /// Applies the plan; returns the progress lines apply reported, in order.
    pub async fn apply_logged(
        &self,
        connector: &Connector,
        allow_destroy: bool,
    ) -> Result<Vec<String>, EngineError> {
        let mut lines = Vec::new();
        let mut record = |l: &str| lines.push(l.to_owned());
        self.apply_reporting(connector, allow_destroy, &mut record)
            .await?;
        Ok(lines)
    }

    async fn apply_reporting(
        &self,
        connector: &Connector,
        allow_destroy: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Applied, EngineError> {
        engine::apply(
            connector,
            &self.plan,
            &self.observed,
            &self.targets,
            allow_destroy,
            usize::from(engine::DEFAULT_PARALLEL),
            progress,
        )
        .await
    }
}

/// `<action> <logical id>` of each action of `layer` in the first environment's plan.
pub fn actions(plan: &Plan, layer: Layer) -> Vec<String> {
    plan.environments[0]
        .layers
        .iter()
        .filter(|l| l.layer == layer)
        .flat_map(|l| l.actions.iter().map(|a| format!("{} {}", a.action, a.id)))
        .collect()
}
