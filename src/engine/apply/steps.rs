//! One environment's apply, step by step: machine deletions, instances off subnets
//! that go, the network in dependency order, an etcd discovery token when the first
//! launch needs one, machine creations and updates, the group's rollout, and the
//! commit on the VPC.

use std::collections::BTreeSet;

use crate::aws::executor::{self, Executor};
use crate::config::Layer;
use crate::engine::machines::fetch_discovery_token;
use crate::engine::{EngineError, Observations, Target};
use crate::plan::spec::{Instance, Volume};
use crate::plan::{self, Action, ActionKind, EnvironmentPlan, Kind, LogicalId};

/// Applies one environment's plan: machine deletions, the network, an etcd discovery
/// token when the first launch needs one, machine creations and updates, instances,
/// the group's rollout, and the commit on the VPC. Each completed action is recorded
/// in `exec.completed`.
pub(super) async fn apply_environment(
    exec: &mut Executor<'_>,
    env_plan: &EnvironmentPlan,
    target: &Target,
    observations: &Observations,
    commit: Option<&str>,
) -> Result<(), EngineError> {
    let name = env_plan.name.as_str();
    let actions_of = |layer: Layer| {
        env_plan
            .layers
            .iter()
            .filter(move |l| l.layer == layer)
            .flat_map(|l| l.actions.iter())
    };
    let machine_actions: Vec<&Action> = actions_of(Layer::Cluster)
        .chain(actions_of(Layer::Node))
        .collect();
    // A plan has at most one network layer per environment.
    let network_actions = env_plan
        .layers
        .iter()
        .find(|l| l.layer == Layer::Network)
        .map_or(&[][..], |l| l.actions.as_slice());
    // Instances launch from the template's latest version unless this run makes one.
    if let Some(version) = observations
        .cluster
        .get(name)
        .into_iter()
        .flatten()
        .find_map(|o| match o.live {
            plan::Live::LaunchTemplate { latest_version } => Some(latest_version),
            _ => None,
        })
    {
        exec.use_template_version(version);
    }
    let warmup = target
        .environment
        .as_ref()
        .and_then(|e| e.spec.cluster.as_ref())
        .map_or(0, |c| c.rollout.warmup_seconds);
    // Machines go first when they go: their instances hold the subnets and groups.
    execute_machines(exec, name, &machine_actions, None, true).await?;
    let gone = terminate_before_subnets(exec, &machine_actions, network_actions).await?;
    let cluster_observed = observations.cluster.get(name).map(Vec::as_slice);
    move_group_off_subnets(
        exec,
        name,
        cluster_observed,
        &machine_actions,
        network_actions,
    )
    .await?;
    execute_network(exec, name, network_actions).await?;
    let mut template = observations.launch_templates.get(name).cloned();
    // The first launch of an etcd-discovery cluster fetches its token first.
    let mut owned: Vec<Action> = machine_actions.iter().map(|a| (*a).clone()).collect();
    if let Some(pending) = observations.pending_discovery.get(name)
        && owned.iter().any(|a| a.action != ActionKind::Delete)
    {
        fetch_discovery_token(exec, pending, &mut owned, &mut template).await?;
    }
    let machine_actions: Vec<&Action> = owned.iter().collect();
    execute_machines(exec, name, &machine_actions, template.as_ref(), false).await?;
    let data_device = target
        .environment
        .as_ref()
        .and_then(|e| e.machines())
        .filter(|(_, shape)| shape.size.fixed().is_some())
        .and_then(|(c, _)| c.data_volume.as_ref())
        .map(|v| v.device.as_str());
    execute_instances(
        exec,
        name,
        &machine_actions,
        &gone,
        data_device,
        std::time::Duration::from_secs(u64::from(warmup)),
    )
    .await?;
    // A new template version reaches running instances through an instance refresh, as
    // do machines the plan found on an older one (the refresh skips those that match).
    if let Some(group) = machine_actions
        .iter()
        .find(|a| a.kind == Kind::AutoScalingGroup && a.action == ActionKind::Update)
        && (exec.template_renewed || group.refresh.is_some_and(|n| n > 0))
        && let Some(plan::Resource {
            spec: plan::Spec::AutoScalingGroup(desired),
            ..
        }) = &group.desired
    {
        exec.refresh_instances(desired).await?;
        exec.say(&format!(
            "{name}: ~ rolled out the template's latest version to {}",
            group.id
        ));
    }
    if let Some(commit) = commit {
        let machines = [Layer::Cluster, Layer::Node];
        for (root, layers, observed) in [
            (
                LogicalId::Vpc,
                &[Layer::Network][..],
                observations.network.get(name),
            ),
            (
                LogicalId::LaunchTemplate,
                &machines[..],
                observations.cluster.get(name),
            ),
        ] {
            let Some(id) = exec.ids.get(&root).cloned() else {
                continue;
            };
            if !env_plan.layers.iter().any(|l| layers.contains(&l.layer)) {
                continue;
            }
            let current = observed
                .into_iter()
                .flatten()
                .find(|o| o.id == root && o.aws_id == id)
                .and_then(|o| o.tags.get(plan::TAG_COMMIT));
            if current.map(String::as_str) != Some(commit) {
                executor::record_commit(exec.aws, &id, commit).await?;
            }
        }
    }
    Ok(())
}

/// Runs the cluster and node layers' actions: with `deletions`, only what is deleted
/// (the group before its template); otherwise creations and updates in order:
/// template, then a new template version for a node change, then the group.
async fn execute_machines(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[&Action],
    template: Option<&plan::Resource>,
    deletions: bool,
) -> Result<(), EngineError> {
    let mut ordered: Vec<&Action> = actions
        .iter()
        .copied()
        .filter(|a| (a.action == ActionKind::Delete) == deletions)
        // Instances that stay are launched, converged and replaced by `execute_instances`.
        .filter(|a| deletions || a.kind != Kind::Instance)
        .collect();
    ordered.sort_by_key(|a| a.kind.rank());
    if deletions {
        ordered.reverse();
    }
    for a in ordered {
        match (a.action, a.kind, &a.desired, &a.observed) {
            (ActionKind::Delete, _, _, Some(o)) => exec.delete(o).await?,
            (ActionKind::Create, _, Some(desired), _) => exec.create(desired).await?,
            (_, Kind::NodeConfig, _, _) => {
                // One new version carries both a cluster and a node change.
                if !exec.template_renewed
                    && let Some(plan::Resource {
                        spec: plan::Spec::LaunchTemplate(template),
                        ..
                    }) = template
                {
                    exec.new_template_version(template).await?;
                }
            }
            // Sizes and types of volumes change in place; an attachment is restored
            // with the instances.
            (_, _, Some(desired), Some(o)) => exec.update(desired, o).await?,
            _ => continue,
        }
        report(exec, env, a);
    }
    Ok(())
}

/// Terminates the instances to be replaced that sit in a subnet the network replaces
/// or deletes, before the network runs: AWS refuses to delete a subnet that still
/// holds network interfaces. Returns their logical ids; their successors launch with
/// the others.
async fn terminate_before_subnets(
    exec: &mut Executor<'_>,
    machine_actions: &[&Action],
    network_actions: &[Action],
) -> Result<BTreeSet<LogicalId>, EngineError> {
    let leaving = plan::cluster::leaving_subnets(network_actions);
    let mut gone = BTreeSet::new();
    for a in machine_actions
        .iter()
        .filter(|a| a.kind == Kind::Instance && a.action == ActionKind::Replace)
    {
        let Some(o) = &a.observed else { continue };
        let plan::Spec::Instance(Instance { subnet, .. }) = &o.spec else {
            continue;
        };
        if leaving.contains(subnet) {
            exec.delete(o).await?;
            exec.say(&format!(
                "  … {} ({}) terminated before its subnet {subnet} goes",
                a.id, o.aws_id
            ));
            gone.insert(a.id.clone());
        }
    }
    Ok(gone)
}

/// An auto-scaling group leaves the subnets the network replaces or deletes before the
/// network step changes them (its update after the step puts it on the new ones); a
/// group that goes has gone with the machines already.
async fn move_group_off_subnets(
    exec: &mut Executor<'_>,
    env: &str,
    observed: Option<&[plan::Observed]>,
    machine_actions: &[&Action],
    network_actions: &[Action],
) -> Result<(), EngineError> {
    let leaving = plan::cluster::leaving_subnets(network_actions);
    let goes = machine_actions
        .iter()
        .any(|a| a.kind == Kind::AutoScalingGroup && a.action == ActionKind::Delete);
    if leaving.is_empty() || goes {
        return Ok(());
    }
    for o in observed.into_iter().flatten() {
        let plan::Spec::AutoScalingGroup(group) = &o.spec else {
            continue;
        };
        let left = exec.move_group_off(o, group, &leaving).await?;
        if !left.is_empty() {
            let list: Vec<String> = left.iter().map(ToString::to_string).collect();
            exec.say(&format!(
                "{env}: ~ moved auto-scaling group {} ({}) off {} before the network changes",
                o.id,
                o.aws_id,
                list.join(", ")
            ));
        }
    }
    Ok(())
}

/// Runs a fixed-size cluster's instance actions once the template is in place: new
/// instances launch together and are awaited (running, data volume attached,
/// registered, healthy); running ones are converged in place; replacements go one at
/// a time, lowest index first, each new instance running and healthy before the next
/// old one goes, with `warmup` between them (those in `gone` were terminated before
/// the network replaced their subnet). Then data volumes whose attachment drifted are
/// attached again. Stops at the first failure.
async fn execute_instances(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[&Action],
    gone: &BTreeSet<LogicalId>,
    data_device: Option<&str>,
    warmup: std::time::Duration,
) -> Result<(), EngineError> {
    let node = |a: &Action| a.id.node().unwrap_or(u16::MAX);
    let of = |kind: ActionKind| {
        let mut list: Vec<&Action> = actions
            .iter()
            .copied()
            .filter(|a| a.kind == Kind::Instance && a.action == kind)
            .collect();
        list.sort_by_key(|a| node(a));
        list
    };
    let mut volumes = NodeVolumes {
        device: data_device,
        attached: BTreeSet::new(),
    };
    let mut launched = Vec::new();
    for a in of(ActionKind::Create) {
        if let Some((logical, instance)) = a.desired.as_ref().and_then(instance_of) {
            let id = exec.launch_instance(logical, instance, None).await?;
            launched.push((a, logical, instance, id));
        }
    }
    for (a, logical, instance, id) in launched {
        await_node(exec, logical, instance, &id, &mut volumes).await?;
        report(exec, env, a);
    }
    for a in of(ActionKind::Update) {
        if let (Some(desired), Some(o)) = (&a.desired, &a.observed) {
            exec.update(desired, o).await?;
            report(exec, env, a);
        }
    }
    let replacements = of(ActionKind::Replace);
    let last = replacements.len().saturating_sub(1);
    for (n, a) in replacements.into_iter().enumerate() {
        let (Some((logical, instance)), Some(o)) =
            (a.desired.as_ref().and_then(instance_of), &a.observed)
        else {
            continue;
        };
        if !gone.contains(&a.id) {
            exec.delete(o).await?;
            exec.say(&format!("  … {} ({}) terminated", a.id, o.aws_id));
        }
        let id = exec
            .launch_instance(logical, instance, Some(&o.aws_id))
            .await?;
        await_node(exec, logical, instance, &id, &mut volumes).await?;
        exec.say(&format!(
            "{env}: {} {} {} {} ({} → {id})",
            a.action.symbol(),
            a.action,
            a.kind.describe(),
            a.id,
            o.aws_id
        ));
        exec.completed.push(a.key());
        if n < last && !warmup.is_zero() {
            exec.say(&format!(
                "  … warming up {} for {}s",
                a.id,
                warmup.as_secs()
            ));
            tokio::time::sleep(warmup).await;
        }
    }
    reattach_volumes(exec, actions, &volumes.attached).await
}

/// A desired instance's logical id and spec.
fn instance_of(r: &plan::Resource) -> Option<(&LogicalId, &Instance)> {
    match &r.spec {
        plan::Spec::Instance(instance) => Some((&r.id, instance)),
        _ => None,
    }
}

/// Waits for node `logical`'s new instance `id`: running, its data volume (when the
/// cluster has them) attached and recorded, registered and healthy in its target
/// groups.
async fn await_node(
    exec: &mut Executor<'_>,
    logical: &LogicalId,
    instance: &Instance,
    id: &str,
    volumes: &mut NodeVolumes<'_>,
) -> Result<(), EngineError> {
    let volume = volumes
        .device
        .zip(logical.node())
        .map(|(device, node)| (LogicalId::Volume(node), device));
    exec.await_instance(
        logical,
        id,
        volume.as_ref().map(|(v, d)| (v, *d)),
        &instance.target_groups,
    )
    .await?;
    volumes.attached.extend(volume.map(|(v, _)| v));
    Ok(())
}

/// A fixed-size cluster's data volumes during a rollout: the device they attach at
/// (when the cluster has them), and those attached in this run.
struct NodeVolumes<'a> {
    device: Option<&'a str>,
    attached: BTreeSet<LogicalId>,
}

/// Attaches again the data volumes whose plan says they drifted from their node's
/// instance (an apply cut between launch and attach, a detach by hand), except those
/// attached in this run already.
async fn reattach_volumes(
    exec: &mut Executor<'_>,
    actions: &[&Action],
    attached: &BTreeSet<LogicalId>,
) -> Result<(), EngineError> {
    for a in actions.iter().filter(|a| {
        a.kind == Kind::Volume
            && matches!(a.action, ActionKind::Create | ActionKind::Update)
            && !attached.contains(&a.id)
    }) {
        let Some(plan::Spec::Volume(Volume {
            attached_to: Some(target),
            ..
        })) = a.desired.as_ref().map(|d| &d.spec)
        else {
            continue;
        };
        let current = match a.observed.as_ref().map(|o| &o.spec) {
            Some(plan::Spec::Volume(Volume { attached_to, .. })) => attached_to.as_ref(),
            _ => None,
        };
        if current == Some(target) {
            continue;
        }
        let (instance, device) = (&target.instance, &target.device);
        let Some(instance_id) = exec.ids.get(instance).cloned() else {
            continue;
        };
        exec.attach_volume(&a.id, &instance_id, device).await?;
        exec.say(&format!(
            "  … {} attached to {instance} ({instance_id}) at {device}",
            a.id
        ));
    }
    Ok(())
}

/// One progress line per action done, with the AWS id when there is one; the action
/// is recorded as completed.
fn report(exec: &mut Executor<'_>, env: &str, a: &Action) {
    exec.completed.push(a.key());
    let aws = exec
        .ids
        .get(&a.id)
        .or(a.aws_id.as_ref())
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let at = match a.desired.as_ref().map(|d| &d.spec) {
        Some(plan::Spec::Instance(Instance { private_ip, .. }))
            if a.action != ActionKind::Delete =>
        {
            format!(" at {private_ip}")
        }
        _ => String::new(),
    };
    exec.say(&format!(
        "{env}: {} {} {} {}{aws}{at}",
        a.action.symbol(),
        a.action,
        a.kind.describe(),
        a.id
    ));
}

/// Runs one environment's network actions in the order [`plan::schedule::schedule`]
/// gives.
async fn execute_network(
    exec: &mut Executor<'_>,
    env: &str,
    actions: &[Action],
) -> Result<(), EngineError> {
    use crate::plan::schedule::{Step, schedule};
    for step in schedule(actions) {
        let a = step.action();
        match step {
            Step::ReleaseReferences(_) => {
                if let Some(o) = &a.observed {
                    exec.release_group_references(o).await?;
                }
                continue;
            }
            Step::RemoveReplaced(_) => {
                if let Some(o) = &a.observed {
                    exec.delete(o).await?;
                }
                continue;
            }
            Step::SyncRules(_) => {
                if let Some(plan::Resource {
                    id,
                    spec: plan::Spec::SecurityGroup(group),
                    ..
                }) = &a.desired
                {
                    exec.sync_rules(id, group, None).await?;
                }
                continue;
            }
            Step::Create(_) => match &a.desired {
                Some(desired) => exec.create(desired).await?,
                None => continue,
            },
            Step::Update(_) => match (&a.desired, &a.observed) {
                (Some(desired), Some(o)) => exec.update(desired, o).await?,
                _ => continue,
            },
            Step::Delete(_) => match &a.observed {
                Some(o) => exec.delete(o).await?,
                None => continue,
            },
        }
        report(exec, env, a);
    }
    Ok(())
}
