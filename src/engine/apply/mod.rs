//! Apply: executes a plan environment by environment, in dependency order, and
//! reports what it did and, when it stops, what it did not.

use std::cell::RefCell;

use futures_util::stream::{self, StreamExt};

mod steps;

use super::{EngineError, Observations, Target};
use crate::aws::Connector;
use crate::aws::executor::Executor;
use crate::plan::{ActionRef, EnvironmentPlan, Plan};
use steps::apply_environment;

/// What apply did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Actions executed.
    pub actions: usize,
    /// Each of them, in the order they completed.
    pub done: Vec<ActionRef>,
}

/// Executes a plan, up to `parallel` environments at once. Refuses (before any write)
/// when it destroys something and `allow_destroy` is false. An environment stops at
/// its first failure and the others go on; what was done stays done and tagged, so the
/// next run converges from there.
pub async fn apply(
    connector: &Connector,
    plan: &Plan,
    observations: &Observations,
    targets: &[Target],
    allow_destroy: bool,
    parallel: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Applied, EngineError> {
    let destructive = plan.destructive();
    if !allow_destroy && !destructive.is_empty() {
        return Err(EngineError::NeedsConsent(
            plan.actions()
                .filter(|(_, _, a)| a.needs_consent())
                .map(|(e, l, a)| ActionRef::new(&e.name, l.layer, a))
                .collect(),
        ));
    }
    // Environments share nothing strata writes, so they go side by side; each line of
    // progress names its environment.
    let progress = RefCell::new(progress);
    let say = |line: &str| (*progress.borrow_mut())(line);
    let runs = plan.environments.iter().filter_map(|env_plan| {
        let target = targets.iter().find(|t| t.name == env_plan.name)?;
        Some(apply_one(
            connector,
            env_plan,
            target,
            observations,
            plan.commit.as_deref(),
            &say,
        ))
    });
    let mut ended: Vec<Ended> = stream::iter(runs)
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    ended.sort_by(|a, b| a.name.cmp(&b.name));
    let mut applied = Applied::default();
    let mut stopped = Vec::new();
    let mut not_done = Vec::new();
    for end in ended {
        applied.actions += end.done.len();
        applied.done.extend(end.done);
        if let Err(cause) = end.result {
            stopped.push(cause.of_environment(&end.name));
            not_done.extend(end.not_done);
        }
    }
    let cause = match stopped.len() {
        0 => return Ok(applied),
        1 => stopped.remove(0),
        _ => EngineError::Several(stopped),
    };
    Err(EngineError::Stopped {
        cause: Box::new(cause),
        done: applied.done,
        not_done,
    })
}

/// How one environment's apply ended.
struct Ended {
    name: String,
    /// Its completed actions, in plan order.
    done: Vec<ActionRef>,
    /// Its actions not (or not completely) applied.
    not_done: Vec<ActionRef>,
    result: Result<(), EngineError>,
}

/// Applies one environment, telling `say` what it does.
async fn apply_one(
    connector: &Connector,
    env_plan: &EnvironmentPlan,
    target: &Target,
    observations: &Observations,
    commit: Option<&str>,
    say: &dyn Fn(&str),
) -> Ended {
    // In the environment's account; a role that cannot be assumed completes nothing.
    let (result, completed) = match connector
        .in_account(target.account.as_ref(), &env_plan.region)
        .await
    {
        Ok(there) => {
            let aws = there.connect(&env_plan.region);
            let mut observed = observations
                .network
                .get(&env_plan.name)
                .cloned()
                .unwrap_or_default();
            observed.extend(
                observations
                    .cluster
                    .get(&env_plan.name)
                    .cloned()
                    .unwrap_or_default(),
            );
            let mut say = |line: &str| say(line);
            let mut exec = Executor::new(&aws, &env_plan.name, &target.tags, &observed, &mut say);
            let result = apply_environment(&mut exec, env_plan, target, observations, commit).await;
            (result, exec.completed)
        }
        Err(e) => (Err(e.into()), Vec::new()),
    };
    let (done, not_done) = env_plan
        .layers
        .iter()
        .flat_map(|l| {
            l.actions.iter().map(|a| {
                (
                    completed.contains(&a.key()),
                    ActionRef::new(&env_plan.name, l.layer, a),
                )
            })
        })
        .partition::<Vec<_>, _>(|(completed, _)| *completed);
    let strip = |refs: Vec<(bool, ActionRef)>| refs.into_iter().map(|(_, r)| r).collect();
    Ended {
        name: env_plan.name.clone(),
        done: strip(done),
        not_done: if result.is_ok() {
            Vec::new()
        } else {
            strip(not_done)
        },
        result,
    }
}
