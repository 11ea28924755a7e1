//! `pull_request`: plan what the pull request changes against live AWS (or, without
//! credentials, against the model at its base) and keep one comment up to date. The
//! same plan of a change serves the merge queue (`merge_group`), without a comment.

use super::{FailureReason, Run};
use crate::aws::Connector;
use crate::engine;
use crate::git::{Commit, GitRepo};
use crate::github::event::PullRequest;
use crate::plan::comment::Document;
use crate::plan::model_only::{self, Sides};
use crate::selection::{self, SelectError, Selection};

/// Plans pull request `pr` and keeps its comment.
pub(super) async fn run(run: &mut Run<'_>, pr: &PullRequest) -> Result<(), String> {
    let workspace = run.runner.workspace.clone();
    let git = GitRepo::open(&workspace).map_err(|e| e.to_string())?;
    let head = git.commit(&run.runner.sha).map_err(|e| e.to_string())?;
    // The checkout of `refs/pull/N/merge` is a merge commit whose first parent is the
    // base as it is now; `pull_request.base.sha` may be stale.
    let base = match run.runner.merge_ref_number() {
        Some(_) => git
            .first_parent(&head)
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| pr.base_sha.clone()),
        None => pr.base_sha.clone(),
    };
    run.say(&format!(
        "pull request #{}: planning what {} changes since {}",
        pr.number,
        &head.reference.short,
        &base[..12.min(base.len())]
    ));
    plan_change(run, &git, &head, &base, Subject::PullRequest(pr.number)).await
}

/// What a plan is of, for its words and where it is reported.
#[derive(Debug, Clone, Copy)]
pub(super) enum Subject {
    /// Pull request N: its comment is kept.
    PullRequest(u64),
    /// A merge queue's entry: the job summary and outputs only.
    MergeQueue,
}

impl Subject {
    /// The pull request whose comment the plan goes to.
    fn pull(self) -> Option<u64> {
        match self {
            Subject::PullRequest(n) => Some(n),
            Subject::MergeQueue => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Subject::PullRequest(_) => "pull request",
            Subject::MergeQueue => "merge queue entry",
        }
    }
}

/// Plans what `head` changes since `base` as its merge will apply it: with AWS
/// credentials, each changed environment since its last applied commit, the change
/// told from drift by `base`; without them, the model at `base` against `head`.
/// Problems and failures set `failure_reason`; a pull request's comment is kept.
pub(super) async fn plan_change(
    run: &mut Run<'_>,
    git: &GitRepo,
    head: &Commit,
    base: &str,
    subject: Subject,
) -> Result<(), String> {
    let workspace = run.runner.workspace.clone();
    let pull = subject.pull();
    let selection = Selection {
        envs: run.inputs.environment.iter().cloned().collect(),
        layers: run.inputs.layers.clone(),
        base: Some(base.to_owned()),
        head: Some(head.reference.id.clone()),
    };
    let work = match selection::select(&workspace, &selection) {
        Ok(work) => work,
        Err(SelectError::Invalid(diagnostics)) => {
            run.report_problems(&diagnostics, &head.reference.id, pull)
                .await;
            return Ok(());
        }
        Err(e) => {
            run.report_failure(FailureReason::ConfigError, &e.to_string(), pull)
                .await;
            return Err(e.to_string());
        }
    };
    run.outputs.changed_environments = work.targets.iter().map(|t| t.name.clone()).collect();
    if work.targets.is_empty() {
        let noun = subject.noun();
        run.say(&format!("this {noun} changes nothing strata manages"));
        let document = Document {
            header: None,
            intro: format!(
                "### strata plan\n\nThis {noun} (at `{}`) changes nothing strata manages: no environment file and no unit an environment uses.\n",
                head.reference.short
            ),
            sections: Vec::new(),
        };
        run.summary(&document);
        // An earlier plan comment must not stand; no new comment for nothing.
        if let Some(number) = pull {
            run.keep_comment(number, &document, true).await;
        }
        return Ok(());
    }
    let connector = Connector::from_env().await.read_only();
    let model_only = !connector.has_credentials().await;
    let plan = if model_only {
        run.say(&crate::github::runner::command(
            "notice",
            "no AWS credentials: planning the model only (the desired state at the base against the head), not compared with live AWS",
        ));
        // The base as the selection read it (one with problems of its own is empty).
        let empty = engine::Base::default();
        let base_side = work.base.as_ref().unwrap_or(&empty);
        let (base_envs, base_units) = (&base_side.environments, &base_side.units);
        let sides: Vec<(String, Sides<'_>, Vec<crate::config::Layer>)> = work
            .targets
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    Sides {
                        base: base_envs.get(&t.name),
                        head: t.environment.as_ref(),
                    },
                    t.layers.iter().copied().collect(),
                )
            })
            .collect();
        model_only::plan(&sides, base_units, &work.units, work.commit.clone())
    } else {
        // The plan is what the merge will apply: each environment since its last
        // applied commit (one never applied, whole), this change told from drift by
        // its base.
        let targets = match since_applied(run, &connector, git, head, &work).await {
            Ok(targets) if run.inputs.layers.is_empty() => targets,
            Ok(_) => work.targets.clone(),
            Err(e) => {
                run.report_failure(FailureReason::PlanFailed, &e, pull)
                    .await;
                return Err(e);
            }
        };
        run.outputs.changed_environments = targets.iter().map(|t| t.name.clone()).collect();
        match engine::plan(
            &connector,
            &targets,
            &work.units,
            work.base.as_ref(),
            work.commit.as_deref(),
        )
        .await
        {
            Ok((plan, _)) => plan,
            Err(e) => {
                run.report_failure(FailureReason::PlanFailed, &e.to_string(), pull)
                    .await;
                return Err(e.to_string());
            }
        }
    };
    let document = run.report_plan(&plan, model_only, Some(base));
    if let Some(number) = pull {
        run.keep_comment(number, &document, false).await;
    }
    // The comment shows the others' plans and why these could not be made.
    if !plan.unplanned.is_empty() {
        run.outputs.failure_reason = Some(FailureReason::PlanFailed);
        return Err(engine::EngineError::Unplanned(plan.unplanned).to_string());
    }
    Ok(())
}

/// What the merge of `head` will apply, as a push plans it: the environments of
/// `work` changed since their last applied commit (narrowed by the `environment`
/// input).
async fn since_applied(
    run: &Run<'_>,
    connector: &Connector,
    git: &GitRepo,
    head: &Commit,
    work: &selection::Work,
) -> Result<Vec<engine::Target>, String> {
    let environments = &work.environments;
    let last = super::push::last_applied(connector, git, head, environments).await?;
    let mut targets =
        selection::since_applied(git, head, environments, &last).map_err(|e| e.to_string())?;
    if let Some(only) = &run.inputs.environment {
        targets.retain(|t| &t.name == only);
    }
    Ok(targets)
}
