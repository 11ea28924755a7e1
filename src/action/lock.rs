//! The apply lock around an Action's apply: taken before the plan (so the plan sees
//! what an apply before it left), released at the end; what a held lock means for the
//! run's outputs.

use std::time::Duration;

use super::{FailureReason, Run};
use crate::aws::Connector;
use tokio::sync::Mutex;

use crate::aws::lock::{self, LockError, LockSettings, Locks, Runs};
use crate::engine::Target;
use crate::github::client::RunsOf;
use crate::github::runner::command;

/// Takes the locks of `targets`, waiting up to the `lock_wait` input; a lock whose
/// workflow run GitHub reports as completed is taken at once. On failure the run is
/// reported (`locked` when another apply holds one) and the error returned.
pub(super) async fn take(
    run: &mut Run<'_>,
    connector: &Connector,
    targets: &[Target],
) -> Result<Locks, String> {
    let settings = LockSettings::from_env(Duration::from_secs(run.inputs.lock_wait));
    let repository = format!("{}/{}", run.runner.owner, run.runner.repo);
    let mut lines = Vec::new();
    let mut say = |line: &str| lines.push(line.to_owned());
    let taken = match run.github.as_mut() {
        Some(github) => {
            let runs = RunsOf(Mutex::new(github));
            let runs: (&dyn Runs, &str) = (&runs, &repository);
            lock::acquire(connector, targets, &settings, Some(runs), &mut say).await
        }
        None => lock::acquire(connector, targets, &settings, None, &mut say).await,
    };
    for line in lines {
        run.say(&line);
    }
    taken.map_err(|e| {
        run.outputs.failure_reason = Some(match e {
            LockError::Held { .. } => FailureReason::Locked,
            _ => FailureReason::ApplyFailed,
        });
        e.to_string()
    })
}

/// Releases the locks; one that cannot be released is a warning (it ends with its
/// lease).
pub(super) async fn release(run: &mut Run<'_>, locks: Locks) {
    if let Err(e) = locks.release().await {
        run.say(&command(
            "warning",
            &format!("{e} (the lock ends with its lease)"),
        ));
    }
}
