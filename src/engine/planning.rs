//! Planning: reads the live state of every target (one round of reads per resource
//! type for all environments of a region) and computes each layer's actions.

use std::collections::BTreeMap;

use super::machines::{
    discovery_note, machine, manages_machines, read_discovery_tokens, read_keys, resolve_images,
};
use super::{Base, EngineError, Observations, PendingDiscovery, Target};
use crate::aws::Connector;
use crate::aws::network::{self as aws_network, NetworkState};
use crate::config::{Account, Environment, Layer, Zone, Zones};
use crate::plan::{self, Kind, Plan, Unplanned};
use crate::units::UnitSet;

/// Reads the live state of every target and plans it, the regions side by side. With
/// `base` (a plan made from a diff), each change is marked as the diff's own or as
/// drift. An environment that cannot be planned (its key, image or token unreadable,
/// its region's reads failing) is set apart in `Plan::unplanned`; the others are
/// planned all the same.
pub async fn plan(
    connector: &Connector,
    targets: &[Target],
    units: &UnitSet,
    base: Option<&Base>,
    commit: Option<&str>,
) -> Result<(Plan, Observations), EngineError> {
    // One round of reads per account and region.
    let mut by_place: BTreeMap<(Option<&Account>, &str), Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_place
            .entry((t.account.as_ref(), t.region.as_str()))
            .or_default()
            .push(t);
    }
    let regions = by_place.into_iter().map(|((account, region), targets)| {
        plan_region(connector, account, region, targets, units, base)
    });
    let mut observations = Observations::default();
    let mut environments = Vec::new();
    let mut unplanned = Vec::new();
    for region in futures_util::future::join_all(regions).await {
        environments.extend(region.environments);
        unplanned.extend(region.unplanned);
        observations.absorb(region.observations);
    }
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    unplanned.sort_by(|a: &Unplanned, b| a.name.cmp(&b.name));
    let mut plan = Plan::new(commit.map(str::to_owned), environments);
    plan.unplanned = unplanned;
    Ok((plan, observations))
}

/// One region's plans, what was observed, and the environments that could not be
/// planned.
#[derive(Default)]
struct RegionPlan {
    environments: Vec<plan::EnvironmentPlan>,
    observations: Observations,
    unplanned: Vec<Unplanned>,
}

/// The targets of `region` in `account`: one round of reads for all of them, then each
/// one's plan.
async fn plan_region(
    connector: &Connector,
    account: Option<&Account>,
    region: &str,
    targets: Vec<&Target>,
    units: &UnitSet,
    base: Option<&Base>,
) -> RegionPlan {
    let mut out = RegionPlan::default();
    let mut failed: BTreeMap<String, EngineError> = BTreeMap::new();
    let planned = match connector.in_account(account, region).await {
        Ok(connector) => {
            plan_environments(
                &connector,
                region,
                &targets,
                units,
                base,
                &mut out,
                &mut failed,
            )
            .await
        }
        // The role cannot be assumed: none of its environments here is planned.
        Err(e) => {
            for t in &targets {
                let error = EngineError::from(e.clone()).of_environment(&t.name);
                failed.insert(t.name.clone(), error);
            }
            Ok(())
        }
    };
    if let Err(e) = planned {
        // A read the whole region needs failed: none of its environments is planned.
        let message = e.to_string();
        for t in &targets {
            failed
                .entry(t.name.clone())
                .or_insert_with(|| EngineError::In {
                    env: t.name.clone(),
                    source: Box::new(EngineError::Region {
                        region: region.to_owned(),
                        message: message.clone(),
                    }),
                });
        }
        out.environments.clear();
    }
    out.unplanned = targets
        .iter()
        .filter_map(|t| {
            let error = failed.remove(&t.name)?;
            Some(Unplanned {
                name: t.name.clone(),
                region: region.to_owned(),
                error: error.to_string(),
            })
        })
        .collect();
    out
}

/// Plans the targets of `region` into `out`; an environment whose own reads fail goes
/// into `failed`, and an error is a read the whole region needs.
async fn plan_environments(
    connector: &Connector,
    region: &str,
    targets: &[&Target],
    units: &UnitSet,
    base: Option<&Base>,
    out: &mut RegionPlan,
    failed: &mut BTreeMap<String, EngineError>,
) -> Result<(), EngineError> {
    let observations = &mut out.observations;
    let environments = &mut out.environments;
    let aws = connector.connect(region);
    // The network is read for every target: later layers refer to its resources.
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let counted = targets.iter().any(|t| {
        t.environment
            .as_ref()
            .is_some_and(|e| matches!(e.spec.network.zones, Zones::Count(_)))
    });
    let network = async {
        match (names.is_empty(), counted) {
            (true, _) => Ok((NetworkState::new(), Vec::new())),
            (false, true) => {
                tokio::try_join!(aws_network::observe(&aws, &names), aws_network::zones(&aws))
            }
            (false, false) => Ok((aws_network::observe(&aws, &names).await?, Vec::new())),
        }
    };
    let clustered: Vec<String> = targets
        .iter()
        .filter(|t| manages_machines(t) || t.environment.is_none())
        .map(|t| t.name.clone())
        .collect();
    let listings = async {
        if clustered.is_empty() {
            return Ok(None);
        }
        crate::aws::cluster::list(&aws, &clustered).await.map(Some)
    };
    // Only mapping the machines' AWS ids needs the network's answers: every listing,
    // the image and the keys are read alongside it.
    let (network, listings, images, keys, tokens) = tokio::join!(
        network,
        listings,
        resolve_images(&aws, targets),
        read_keys(&aws, targets),
        read_discovery_tokens(&aws, targets)
    );
    let (mut state, zones): (NetworkState, Vec<Zone>) = network?;
    let listings = listings?;
    let (keys, unreadable_keys) = keys;
    // One reason per environment, the image's first (as the plan reads it first).
    for (name, e) in images
        .failed
        .into_iter()
        .chain(unreadable_keys)
        .chain(tokens.failed)
    {
        failed.entry(name).or_insert(e);
    }
    let (images, tokens) = (images.found, tokens.found);
    // The SSH key an environment's file names, when it was read.
    let key_of = |env: &Environment| {
        let secret = env.spec.node.as_ref()?.ssh.public_key_secret.as_str();
        keys.get(secret)
    };
    let mut machines = BTreeMap::new();
    for t in targets.iter().filter(|t| manages_machines(t)) {
        let (Some(env), Some(image)) = (&t.environment, images.get(&t.name)) else {
            continue;
        };
        if failed.contains_key(&t.name) {
            continue;
        }
        let key = key_of(env);
        let token = tokens.get(&t.name).and_then(Option::as_ref);
        match machine(
            env,
            units,
            image.clone(),
            key,
            token.map(|t| t.url.as_str()),
        ) {
            Ok(m) => {
                machines.insert(t.name.clone(), m);
            }
            Err(e) => {
                failed.insert(t.name.clone(), e);
                continue;
            }
        }
        // Without a token yet, apply fetches one and renders again before launching.
        if let Some(None) = tokens.get(&t.name) {
            observations.pending_discovery.insert(
                t.name.clone(),
                PendingDiscovery {
                    environment: env.clone(),
                    units: units.clone(),
                    image: image.clone(),
                    key: key.cloned(),
                },
            );
        }
    }
    let mut cluster_state = if let Some(listings) = listings {
        let logical: BTreeMap<String, plan::LogicalId> = state
            .values()
            .flatten()
            .map(|o| (o.aws_id.clone(), o.id.clone()))
            .collect();
        let map = |aws_id: &str| {
            logical
                .get(aws_id)
                .cloned()
                .unwrap_or_else(|| plan::LogicalId::parse(aws_id))
        };
        // Which instances are registered is read from the target groups of the
        // fixed-size clusters that join load balancers.
        let registrations: Vec<String> = targets
            .iter()
            .filter_map(|t| t.environment.as_ref())
            .filter_map(|e| Some((e.name.as_str(), e.machines()?)))
            .filter(|(_, (_, shape))| shape.size.fixed().is_some())
            .flat_map(|(name, (c, _))| {
                state
                    .get(name)
                    .into_iter()
                    .flatten()
                    .filter(|o| {
                        o.kind == Kind::TargetGroup && plan::cluster::joins_target_group(c, &o.id)
                    })
                    .map(|o| o.aws_id.clone())
            })
            .collect();
        crate::aws::cluster::observe(&aws, listings, &map, &registrations).await?
    } else {
        BTreeMap::new()
    };
    for t in targets {
        if failed.contains_key(&t.name) {
            continue;
        }
        let observed = state.remove(&t.name).unwrap_or_default();
        // Volumes a group's replaced machines left behind are kept for recovery:
        // never planned nor applied, only reported by drift.
        let (left_behind, machine_observed): (Vec<_>, Vec<_>) = cluster_state
            .remove(&t.name)
            .unwrap_or_default()
            .into_iter()
            .partition(|o| o.id == plan::LogicalId::Launched);
        // The environment's zones (a removed one has none), resolved once.
        let env_zones = match t.environment.as_ref().map(|env| zone_names(env, &zones)) {
            Some(Ok(zones)) => zones,
            Some(Err(e)) => {
                failed.insert(t.name.clone(), e);
                continue;
            }
            None => Vec::new(),
        };
        // Removed environments desire nothing.
        let desired = match (&t.environment, machines.get(&t.name)) {
            (Some(env), Some(m)) => Some(plan::cluster::desired_machines(
                env,
                m,
                &machine_observed,
                &env_zones,
            )),
            (None, _) => Some(plan::cluster::DesiredMachines::default()),
            _ => None,
        };
        let token = tokens.get(&t.name).and_then(Option::as_ref);
        let inputs = plan::environment::Inputs {
            name: &t.name,
            region: &t.region,
            environment: t.environment.as_ref(),
            layers: &t.layers,
            changed: &t.changed,
            zones: &env_zones,
            network: &observed,
            machines: &machine_observed,
            image: images.get(&t.name),
            config: machines.get(&t.name).and_then(|m| m.config.as_deref()),
            desired: desired.as_ref(),
        };
        let mut planned = plan::environment::plan(&inputs);
        planned.account = t
            .account
            .as_ref()
            .map(|a| a.role_arn.account_id().to_owned());
        if let Some(base) = base {
            // The diff's own changes: the head against the base as if it were live.
            let state = base
                .environments
                .get(&t.name)
                .filter(|env| env.spec.region.as_str() == t.region)
                .and_then(|env| {
                    let zones = zone_names(env, &zones).ok()?;
                    let image = images
                        .get(&t.name)
                        .cloned()
                        .unwrap_or_else(|| plan::cluster::Image::running(&machine_observed));
                    let secrets = plan::machine::Secrets {
                        ssh_public_key: key_of(env).map(|k| k.openssh()),
                        etcd_discovery: token.map(|t| t.url.as_str()),
                    };
                    let parts = plan::desired::Parts {
                        units: &base.units,
                        zones: &zones,
                        image: &image,
                        secrets,
                        live_machines: &machine_observed,
                    };
                    plan::desired::DesiredState::of(env, parts).ok()
                })
                .unwrap_or_default();
            let (network, machines) = state.as_live();
            let own = plan::environment::plan(&plan::environment::Inputs {
                network: &network,
                machines: &machines,
                ..inputs
            });
            plan::origin::mark(&mut planned, &own);
            planned.trust =
                plan::trust::changes(base.environments.get(&t.name), t.environment.as_ref());
        }
        if let (Some(env), Some(token)) = (&t.environment, tokens.get(&t.name))
            && let Some(layer) = planned
                .layers
                .iter_mut()
                .rev()
                .find(|l| l.layer != Layer::Network)
        {
            layer.notes.extend(discovery_note(env, token.as_ref()));
        }
        // A node change re-versions the template the plan wants.
        if let Some(template) = desired
            .iter()
            .flat_map(|d| &d.cluster)
            .find(|r| r.kind == Kind::LaunchTemplate)
        {
            observations
                .launch_templates
                .insert(t.name.clone(), template.clone());
        }
        environments.push(planned);
        observations.network.insert(t.name.clone(), observed);
        observations
            .cluster
            .insert(t.name.clone(), machine_observed);
        observations.left_behind.insert(t.name.clone(), left_behind);
    }
    Ok(())
}

/// The names of the zones an environment spreads over: named in its file, or the
/// first `n` of the region's.
fn zone_names(env: &Environment, region_zones: &[Zone]) -> Result<Vec<Zone>, EngineError> {
    match &env.spec.network.zones {
        Zones::Names(names) => Ok(names.clone()),
        Zones::Count(n) => {
            let wanted = usize::from(*n);
            region_zones
                .get(..wanted)
                .map(<[Zone]>::to_vec)
                .ok_or_else(|| EngineError::NotEnoughZones {
                    env: env.name.to_string(),
                    wanted,
                    available: region_zones.len(),
                    region: env.spec.region.to_string(),
                })
        }
    }
}
