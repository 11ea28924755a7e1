//! `push` to the default branch: apply what changed since each environment's last
//! applied commit, only where the plan is the one reviewed on the merged pull
//! request, and record the apply on that pull request's comment. `workflow_dispatch`:
//! plan or apply exactly the environment and layer asked for.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};

use super::record::{Outcome, Record, record};
use super::{ALLOW_DESTROY_LABEL, FailureReason, Run};
use crate::aws::{self, Connector};
use crate::engine::{self, EngineError, Observations, Target};
use crate::git::GitRepo;
use crate::github::event::{Dispatch, Push};
use crate::github::runner::{Mode, command};
use crate::plan::comment::{self, Header};
use crate::plan::{ActionRef, Plan, digest};
use crate::selection::{self, SelectError, Selection, Work};

/// A merge to the default branch (or, in `plan` mode, only its plan).
pub(super) async fn run_push(run: &mut Run<'_>, push: &Push) -> Result<(), String> {
    let default = format!("refs/heads/{}", push.default_branch);
    let apply = match run.inputs.mode {
        Mode::Plan | Mode::Drift => false,
        Mode::Auto | Mode::Apply if push.git_ref == default => true,
        Mode::Auto | Mode::Apply => {
            run.say(&format!(
                "{} is not the default branch ({default}): planning only",
                push.git_ref
            ));
            false
        }
    };
    let workspace = run.runner.workspace.clone();
    let git = GitRepo::open(&workspace).map_err(|e| e.to_string())?;
    let head = git.commit(&run.runner.sha).map_err(|e| e.to_string())?;
    let repository = match selection::load_commit(&git, &head) {
        Ok(r) => r,
        Err(SelectError::Invalid(diagnostics)) => {
            run.report_problems(&diagnostics, &head.reference.id, None)
                .await;
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let environments = selection::by_name(repository.environments);
    let connector = run
        .credentials("a push is planned and applied against live AWS", "a role")
        .await?;
    let last = last_applied(&connector, &git, &head, &environments).await?;
    let targets = match selection::since_applied(&git, &head, &environments, &last) {
        // The `environment` input narrows a merge to that environment.
        Ok(mut t) => {
            if let Some(only) = &run.inputs.environment {
                t.retain(|target| &target.name == only);
            }
            t
        }
        Err(SelectError::Invalid(diagnostics)) => {
            run.report_problems(&diagnostics, &head.reference.id, None)
                .await;
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    for t in &targets {
        let layers: Vec<&str> = t.layers.iter().map(|l| l.as_str()).collect();
        run.say(&format!(
            "{}: {} since its last applied commit",
            t.name,
            layers.join(", ")
        ));
    }
    let work = Work {
        targets,
        units: repository.units,
        commit: Some(head.reference.id.clone()),
        base: None,
        environments,
    };
    let pull = merged_pull(run).await;
    let consent = run.inputs.allow_destroy
        || pull
            .as_ref()
            .is_some_and(|p| p.labels.iter().any(|l| l == ALLOW_DESTROY_LABEL));
    execute(run, &connector, work, apply, consent, pull, true).await
}

/// The commit each environment's layers last applied, read once per account and
/// region: the environments' own, those of the previous commit's (where a file removed
/// by `head` lived) and the job's default region in its own account.
pub(super) async fn last_applied(
    connector: &Connector,
    git: &GitRepo,
    head: &crate::git::Commit,
    environments: &BTreeMap<String, crate::config::Environment>,
) -> Result<BTreeMap<String, (String, aws::applied::LastApplied)>, String> {
    let place =
        |e: &crate::config::Environment| (e.spec.account.clone(), e.spec.region.to_string());
    let mut regions: std::collections::BTreeSet<(Option<crate::config::Account>, String)> =
        environments.values().map(place).collect();
    if let Some(parent) = git.first_parent(head).ok().flatten()
        && let Ok(parent) = git.commit(&parent)
        && let Ok(previous) = selection::load_commit(git, &parent)
    {
        regions.extend(previous.environments.values().map(place));
    }
    regions.extend(connector.default_region().map(|r| (None, r)));
    let mut last = BTreeMap::new();
    for (account, region) in regions {
        let there = connector
            .in_account(account.as_ref(), &region)
            .await
            .map_err(|e| e.to_string())?;
        let found = aws::applied::read(&there.connect(&region))
            .await
            .map_err(|e| e.to_string())?;
        last.extend(
            found
                .into_iter()
                .map(|(name, l)| (name, (region.clone(), l))),
        );
    }
    Ok(last)
}

/// A manual run: exactly the environment and layers asked for, planned (to the job
/// summary) or applied as a merge is, without an approved plan.
pub(super) async fn run_dispatch(run: &mut Run<'_>, dispatch: &Dispatch) -> Result<(), String> {
    let input = |name: &str| dispatch.inputs.get(name).filter(|v| !v.is_empty()).cloned();
    let mode = match (run.inputs.mode, input("mode").as_deref()) {
        (Mode::Apply, _) | (Mode::Auto, Some("apply")) => true,
        (Mode::Plan | Mode::Drift, _) | (Mode::Auto, None | Some("plan")) => false,
        (Mode::Auto, Some(other)) => {
            run.outputs.failure_reason = Some(FailureReason::ConfigError);
            return Err(format!(
                "workflow input `mode`: unknown mode `{other}`\n  hint: use plan or apply"
            ));
        }
    };
    let envs: Vec<String> = run
        .inputs
        .environment
        .clone()
        .or_else(|| input("environment"))
        .into_iter()
        .collect();
    // The action's `layer` input, else the manual run's own.
    let layers = match (run.inputs.layers.is_empty(), input("layer")) {
        (true, Some(text)) => match crate::github::runner::parse_layers(&text) {
            Ok(layers) => layers,
            Err(e) => {
                run.outputs.failure_reason = Some(FailureReason::ConfigError);
                return Err(e.to_string());
            }
        },
        _ => run.inputs.layers.clone(),
    };
    let selection = Selection {
        envs,
        layers,
        base: None,
        head: Some(run.runner.sha.clone()),
    };
    let Some(work) = run.select(&selection).await? else {
        return Ok(());
    };
    let connector = run
        .credentials("a manual run plans against live AWS", "a role")
        .await?;
    let consent = run.inputs.allow_destroy || input("allow_destroy").as_deref() == Some("true");
    execute(run, &connector, work, mode, consent, None, false).await
}

/// The merged pull request of the pushed commit, with its strata comment.
pub(super) struct MergedPull {
    number: u64,
    labels: Vec<String>,
    comment: Option<(u64, Option<Header>)>,
}

async fn merged_pull(run: &mut Run<'_>) -> Option<MergedPull> {
    let sha = run.runner.sha.clone();
    let (github, login) = run.github().await?;
    let pulls = match github.pulls_of_commit(&sha).await {
        Ok(p) => p,
        Err(e) => {
            run.say(&command("warning", &e.to_string()));
            return None;
        }
    };
    let pull = pulls
        .iter()
        .find(|p| p.merged_at.is_some())
        .or(pulls.first())?
        .clone();
    let comment = match github
        .find_comment(pull.number, comment::MARKER, &login)
        .await
    {
        Ok(c) => c.map(|c| (c.id, c.body.as_deref().and_then(Header::parse))),
        Err(e) => {
            run.say(&command("warning", &e.to_string()));
            None
        }
    };
    Some(MergedPull {
        number: pull.number,
        labels: pull.labels.into_iter().map(|l| l.name).collect(),
        comment,
    })
}

/// Plans `work`, then (with `apply`) applies each environment whose plan may go:
/// approved on the pull request (when `reviewed`), and consented to when it destroys.
/// An apply plans and applies under its environments' locks.
async fn execute(
    run: &mut Run<'_>,
    connector: &Connector,
    work: Work,
    apply: bool,
    consent: bool,
    pull: Option<MergedPull>,
    reviewed: bool,
) -> Result<(), String> {
    if !apply {
        return execute_unlocked(run, connector, work, false, consent, pull, reviewed).await;
    }
    let locks = super::lock::take(run, connector, &work.targets).await?;
    let result = locks
        .guard(execute_unlocked(
            run, connector, work, true, consent, pull, reviewed,
        ))
        .await;
    super::lock::release(run, locks).await;
    result.unwrap_or_else(|lost| {
        run.outputs.failure_reason = Some(FailureReason::ApplyFailed);
        Err(lost.to_string())
    })
}

async fn execute_unlocked(
    run: &mut Run<'_>,
    connector: &Connector,
    work: Work,
    apply: bool,
    consent: bool,
    pull: Option<MergedPull>,
    reviewed: bool,
) -> Result<(), String> {
    run.outputs.changed_environments = work.targets.iter().map(|t| t.name.clone()).collect();
    let (plan, observations) = match engine::plan(
        connector,
        &work.targets,
        &work.units,
        work.base.as_ref(),
        work.commit.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            run.report_failure(FailureReason::PlanFailed, &e.to_string(), None)
                .await;
            return Err(e.to_string());
        }
    };
    run.report_plan(&plan, false, None);
    if !apply {
        return match plan.unplanned.is_empty() {
            true => Ok(()),
            false => {
                run.outputs.failure_reason = Some(FailureReason::PlanFailed);
                Err(EngineError::Unplanned(plan.unplanned).to_string())
            }
        };
    }
    let header = pull
        .as_ref()
        .and_then(|p| p.comment.as_ref())
        .and_then(|(_, h)| h.clone());
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut approved = Vec::new();
    let mut notes = Vec::new();
    if reviewed && header.is_none() {
        notes.push(match (&pull, run.inputs.require_approved_plan) {
            (_, true) => "no reviewed plan was found on a merged pull request, and `require_approved_plan` is set: nothing is applied".to_owned(),
            (None, false) => "no merged pull request names this commit: applied without a reviewed plan".to_owned(),
            (Some(p), false) => format!("pull request #{} has no strata plan comment: applied without a reviewed plan", p.number),
        });
    }
    for env in &plan.environments {
        if env.summary.total() == 0 {
            outcomes.insert(env.name.clone(), Outcome::NoChanges);
            continue;
        }
        let now = digest::environment(env);
        let verdict = match (&header, reviewed) {
            (_, false) => None,
            (Some(h), true) if h.model_only => Some("the reviewed plan was made without AWS credentials (model only)".to_owned()),
            (Some(h), true) => match h.digests.get(&env.name) {
                Some(d) if *d == now => None,
                Some(_) => Some("the plan differs from the one reviewed on the pull request (AWS or the default branch moved since)".to_owned()),
                None => Some("the reviewed plan did not include this environment".to_owned()),
            },
            (None, true) if run.inputs.require_approved_plan => Some("no reviewed plan".to_owned()),
            (None, true) => None,
        };
        if let Some(why) = verdict {
            outcomes.insert(env.name.clone(), Outcome::PlanChanged(why));
            continue;
        }
        let destroys: Vec<ActionRef> = env
            .layers
            .iter()
            .flat_map(|l| {
                l.actions
                    .iter()
                    .filter(|a| a.needs_consent())
                    .map(|a| ActionRef::new(&env.name, l.layer, a))
            })
            .collect();
        if !consent && !destroys.is_empty() {
            outcomes.insert(env.name.clone(), Outcome::NeedsConsent(destroys));
            continue;
        }
        approved.push(env.name.clone());
    }
    let number = pull.as_ref().map(|p| p.number);
    if let Some(number) = number
        && !approved.is_empty()
    {
        let starting = record(
            &run.record_origin(),
            &plan,
            &outcomes,
            &approved,
            &notes,
            header.clone(),
        );
        keep_record(run, number, &starting).await;
    }
    // Up to `parallel` environments at once; each one's log is a group of its own,
    // written when it ends, and one that fails stops no other.
    let applies = approved.iter().map(|name| {
        let subset = only(&plan, name);
        let targets: Vec<Target> = work
            .targets
            .iter()
            .filter(|t| &t.name == name)
            .cloned()
            .collect();
        let observations = &observations;
        async move {
            let (lines, outcome) =
                apply_one(connector, &subset, observations, &targets, consent).await;
            (name, lines, outcome)
        }
    });
    let mut applies = stream::iter(applies).buffer_unordered(run.inputs.parallel);
    let mut failed = false;
    while let Some((name, lines, outcome)) = applies.next().await {
        run.say(&command("group", &format!("{name} · apply")));
        for line in lines {
            run.say(&line);
        }
        run.say("::endgroup::");
        failed |= matches!(outcome, Outcome::Failed { .. });
        outcomes.insert(name.clone(), outcome);
    }
    record_unchanged(
        run,
        connector,
        &plan,
        &observations,
        &work.targets,
        &outcomes,
    )
    .await;
    let reason = if failed {
        Some(FailureReason::ApplyFailed)
    } else if !plan.unplanned.is_empty() {
        Some(FailureReason::PlanFailed)
    } else if outcomes
        .values()
        .any(|o| matches!(o, Outcome::NeedsConsent(_)))
    {
        Some(FailureReason::NeedsConsent)
    } else if outcomes
        .values()
        .any(|o| matches!(o, Outcome::PlanChanged(_)))
    {
        Some(FailureReason::PlanChanged)
    } else {
        None
    };
    run.outputs.failure_reason = reason;
    let finished = record(&run.record_origin(), &plan, &outcomes, &[], &notes, header);
    run.summary(&finished.document());
    if let Some(number) = number {
        keep_record(run, number, &finished).await;
    }
    Ok(())
}

/// Writes `record` into pull request `number`'s comment and keeps what other jobs (a
/// matrix, one environment each) wrote there: reads the comment, merges, writes. GitHub
/// has no conditional write on comments, so a job that read before this write may
/// still write what it read, hiding this one: the writer waits longer than its own
/// read-to-write took (another job's takes about as long), plus a pause that differs
/// from job to job, reads again, and writes again when its blocks are gone.
async fn keep_record(run: &mut Run<'_>, number: u64, record: &Record) {
    const TRIES: u32 = 6;
    for attempt in 1..=TRIES {
        let started = std::time::Instant::now();
        let merged = |existing: Option<&str>| record.merged_into(existing).document();
        run.keep_comment_over(number, &merged, false).await;
        tokio::time::sleep(started.elapsed() * 2 + pause(attempt)).await;
        match run.comment_body(number).await {
            // Kept, or no comment to keep (comments off, or a read-only token).
            Some(body) if record.is_in(&body) => return,
            None => return,
            Some(_) if attempt < TRIES => run.say(&format!(
                "the record on #{number} was overwritten by another job writing at the same time: writing it again"
            )),
            Some(_) => run.say(&command(
                "warning",
                &format!("the record on #{number} kept being overwritten by other jobs; the job summary has this job's"),
            )),
        }
    }
}

/// A pause before looking at the record again: longer at each attempt, and different
/// from job to job (the process and the clock), so two writers drift apart.
fn pause(attempt: u32) -> std::time::Duration {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let spread = (clock ^ u64::from(std::process::id()).wrapping_mul(2_654_435_761)) % 400;
    std::time::Duration::from_millis(100 * u64::from(attempt) + spread)
}

/// Records the commit on environments with nothing to change whose last apply
/// stopped after its last change and before recording it (an apply of an empty plan
/// writes only that record, and nothing where it is there).
async fn record_unchanged(
    run: &mut Run<'_>,
    connector: &Connector,
    plan: &Plan,
    observations: &Observations,
    targets: &[Target],
    outcomes: &BTreeMap<String, Outcome>,
) {
    for (name, outcome) in outcomes {
        if !matches!(outcome, Outcome::NoChanges) {
            continue;
        }
        let subset = only(plan, name);
        if let Err(e) = engine::apply(
            connector,
            &subset,
            observations,
            targets,
            false,
            1,
            &mut |_| {},
        )
        .await
        {
            run.say(&command(
                "warning",
                &format!("{name}: recording the commit applied: {e}"),
            ));
        }
    }
}

/// The plan of one environment.
fn only(plan: &Plan, name: &str) -> Plan {
    Plan::new(
        plan.commit.clone(),
        plan.environments
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect(),
    )
}

/// Applies one environment's plan: its log lines and how it ended.
async fn apply_one(
    connector: &Connector,
    plan: &Plan,
    observations: &Observations,
    targets: &[Target],
    consent: bool,
) -> (Vec<String>, Outcome) {
    let mut lines = Vec::new();
    let result = engine::apply(
        connector,
        plan,
        observations,
        targets,
        consent,
        1,
        &mut |line: &str| {
            lines.push(line.to_owned());
        },
    )
    .await;
    let outcome = match result {
        Ok(applied) => Outcome::Applied(applied.done),
        Err(EngineError::NeedsConsent(what)) => Outcome::NeedsConsent(what),
        Err(EngineError::Stopped {
            cause,
            done,
            not_done,
        }) => Outcome::Failed {
            error: cause.to_string(),
            done,
            not_done,
        },
        Err(e) => Outcome::Failed {
            error: e.to_string(),
            done: Vec::new(),
            not_done: plan
                .actions()
                .map(|(e, l, a)| ActionRef::new(&e.name, l.layer, a))
                .collect(),
        },
    };
    (lines, outcome)
}
