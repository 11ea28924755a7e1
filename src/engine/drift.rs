//! Drift: every layer of every environment planned against the checkout, environments
//! strata applied whose file is gone planned as teardowns, and what the machines show
//! that no plan acts on. Writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::{EngineError, Target};
use crate::aws::Connector;
use crate::config::{Account, Layer};
use crate::plan::drift::{Machines, Report};
use crate::plan::{InstanceState, Live, Spec};
use crate::units::UnitSet;

/// The drift of `targets` (every environment of the checkout, or those asked for) in
/// live AWS. With `orphans_in`, environments strata manages in those regions and the
/// targets' that have no file are reported too, whole.
pub async fn drift(
    connector: &Connector,
    targets: &[Target],
    units: &UnitSet,
    commit: Option<&str>,
    orphans_in: Option<&[String]>,
) -> Result<Report, EngineError> {
    let mut all = targets.to_vec();
    if let Some(extra) = orphans_in {
        // Every account and region the environments use, and the extra regions in the
        // account of the credentials strata runs with.
        let mut places: BTreeSet<(Option<Account>, String)> = targets
            .iter()
            .map(|t| (t.account.clone(), t.region.clone()))
            .collect();
        places.extend(extra.iter().map(|region| (None, region.clone())));
        let known: BTreeSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        // Every place is searched at once: one round, however many accounts and regions.
        let searches = places.into_iter().map(|(account, region)| async move {
            // A role that cannot be assumed: the plan below sets its environments
            // apart as unchecked, with the error, and checks the others.
            let Ok(there) = connector.in_account(account.as_ref(), &region).await else {
                return Ok(Vec::new());
            };
            let found = crate::aws::applied::read(&there.connect(&region)).await?;
            Ok::<_, EngineError>(
                found
                    .into_keys()
                    .map(|name| (name, account.clone(), region.clone()))
                    .collect::<Vec<_>>(),
            )
        });
        let mut removed = Vec::new();
        for found in futures_util::future::join_all(searches).await {
            removed.extend(
                found?
                    .into_iter()
                    .filter(|(name, _, _)| !known.contains(name.as_str()))
                    .map(|(name, account, region)| Target {
                        name,
                        environment: None,
                        account,
                        region,
                        tags: BTreeMap::new(),
                        layers: Layer::ALL.into_iter().collect(),
                        changed: Layer::ALL.into_iter().collect(),
                    }),
            );
        }
        all.extend(removed);
    }
    let (plan, observations) = super::plan(connector, &all, units, None, commit).await?;
    let machines = |name: &str| {
        let observed = observations
            .cluster
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Machines {
            stopped: observed
                .iter()
                .filter(|o| {
                    matches!(
                        o.live,
                        Live::Instance {
                            state: InstanceState::Stopped | InstanceState::Stopping
                        }
                    )
                })
                .map(|o| (o.id.clone(), o.aws_id.clone()))
                .collect(),
            left_behind: observations
                .left_behind
                .get(name)
                .into_iter()
                .flatten()
                .map(|o| {
                    let disk = match &o.spec {
                        Spec::Volume(v) => format!("{} GiB {}", v.size_gb, v.volume_type),
                        _ => String::new(),
                    };
                    (o.aws_id.clone(), disk)
                })
                .collect(),
        }
    };
    Ok(Report::of(&plan, &machines))
}
