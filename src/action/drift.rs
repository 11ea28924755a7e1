//! The drift check (`mode: drift`, and `auto` on `schedule`): live AWS against the
//! default branch as checked out, the whole report in the job summary, and one GitHub
//! issue per drifted environment kept up to date, closed once it is clean; the
//! orphans of environments without a file in one issue of their own. Writes nothing
//! to AWS.

use super::{FailureReason, Run};
use crate::engine;
use crate::github::runner::command;
use crate::plan::comment::{COMMENT_BUDGET, Document, Section, drift};
use crate::plan::drift::Report;
use crate::redact;
use crate::selection::{self, Selection};

/// Checks every environment (or the `environment` input's) for drift and keeps the
/// issues.
pub(super) async fn run(run: &mut Run<'_>) -> Result<(), String> {
    let workspace = run.runner.workspace.clone();
    let selection = Selection {
        envs: run.inputs.environment.iter().cloned().collect(),
        head: Some(run.runner.sha.clone()),
        ..Selection::default()
    };
    let Some(work) = run.select(&selection).await? else {
        return Ok(());
    };
    let connector = run
        .credentials("a drift check reads live AWS", "a read-only role")
        .await?
        .read_only();
    let everything = run.inputs.environment.is_none();
    let regions = match everything {
        true => Some(
            selection::orphan_regions(&workspace, connector.default_region())
                .map_err(|e| e.to_string())?,
        ),
        false => None,
    };
    run.say(&format!(
        "drift: checking {} environment{} against {}",
        work.targets.len(),
        crate::plan::render::plural(work.targets.len()),
        &run.runner.sha[..12.min(run.runner.sha.len())]
    ));
    let report = match engine::drift(
        &connector,
        &work.targets,
        &work.units,
        work.commit.as_deref(),
        regions.as_deref(),
    )
    .await
    {
        Ok(report) => report,
        Err(e) => {
            run.outputs.failure_reason = Some(FailureReason::PlanFailed);
            return Err(e.to_string());
        }
    };
    let drifted: Vec<String> = report.drifted().iter().map(|n| (*n).to_owned()).collect();
    run.outputs.drift = Some(drifted.clone());
    let context = drift::Context {
        branch: run
            .runner
            .git_ref
            .strip_prefix("refs/heads/")
            .unwrap_or("the default branch")
            .to_owned(),
        commit: report.commit.clone(),
        repository_url: Some(run.runner.repository_url()),
        run_url: run.runner.run_url(),
        apply_workflow: None,
    };
    run.summary(&summary(&report, &context));
    keep_issues(run, &report, &context, everything).await;
    match drifted.is_empty() && !report.has_drift() {
        true => run.say("drift: AWS matches the repository"),
        false => run.say(&format!(
            "drift: {} environment{} drifted; {} orphan{}",
            drifted.len(),
            crate::plan::render::plural(drifted.len()),
            report.orphans.len(),
            crate::plan::render::plural(report.orphans.len())
        )),
    }
    // The others were checked and their issues kept; these fail the job.
    if !report.unchecked.is_empty() {
        run.outputs.failure_reason = Some(FailureReason::PlanFailed);
        return Err(engine::EngineError::Unplanned(report.unchecked.clone()).to_string());
    }
    if run.inputs.fail_on_drift && report.has_drift() {
        run.outputs.failure_reason = Some(FailureReason::Drift);
        return Err("drift found, and fail_on_drift is set".to_owned());
    }
    Ok(())
}

/// The job summary: every drifted environment's report, and the orphans of
/// environments without a file.
fn summary(report: &Report, context: &drift::Context) -> Document {
    let drifted = report.drifted();
    let mut items: Vec<String> = report
        .environments
        .iter()
        .filter(|e| drifted.contains(&e.name.as_str()))
        .map(|e| drift::environment_issue(e, report, context).render(COMMENT_BUDGET, "the JSON"))
        .collect();
    if report.orphans.iter().any(|o| o.environment_removed) {
        items.push(drift::orphans_issue(report, context).render(COMMENT_BUDGET, "the JSON"));
    }
    let mut intro = match report.has_drift() {
        true => format!(
            "### ↩️ strata drift: {} environment{} drifted\n",
            drifted.len(),
            crate::plan::render::plural(drifted.len())
        ),
        false => "### ✅ strata drift: AWS matches the repository\n".to_owned(),
    };
    for u in &report.unchecked {
        let title = format!("`{}` could not be checked", u.name);
        intro.push_str(&crate::plan::render::warning(
            &title,
            "the others were",
            &u.error,
        ));
    }
    Document {
        header: None,
        intro,
        sections: vec![Section::new("", items)],
    }
}

/// What becomes of one of strata's issues: kept with this title and body while it has
/// something to say, else closed saying why (when one is open).
enum Fate {
    Keep { title: String, body: String },
    Close(String),
}

/// One open issue per drifted environment, edited in place; a clean environment's
/// issue closed with a comment; one issue for the orphans of environments without a
/// file (only when every environment was asked for and could be checked: one that
/// could not may be an environment without a file, whose orphans went unread, so the
/// issue is left as it is). A token that cannot write issues leaves the summary as the
/// report, with a notice.
async fn keep_issues(
    run: &mut Run<'_>,
    report: &Report,
    context: &drift::Context,
    everything: bool,
) {
    let Some((github, login)) = run.github().await else {
        run.say(&command(
            "notice",
            "no github_token: the drift report is in the job summary only",
        ));
        return;
    };
    let mut failures = Vec::new();
    // Strata's issues, read once for every environment of the run.
    let open = match github.open_issues().await {
        Ok(open) => open,
        Err(e) => {
            failures.push(e);
            Vec::new()
        }
    };
    let ours = |marker: &str| {
        open.iter()
            .find(|i| i.is_ours(marker, &login))
            .map(|i| i.number)
    };
    let drifted = report.drifted();
    let removed = report.orphans.iter().any(|o| o.environment_removed);
    let mut kept: Vec<(String, Fate)> = report
        .environments
        .iter()
        .map(|env| {
            let issue = match drifted.contains(&env.name.as_str()) {
                true => Fate::Keep {
                    title: drift::title(&env.name),
                    body: drift::environment_issue(env, report, context)
                        .render(COMMENT_BUDGET, "the job summary"),
                },
                false => Fate::Close(drift::clean_comment(&env.name, context)),
            };
            (drift::marker(&env.name), issue)
        })
        .collect();
    if everything && report.unchecked.is_empty() {
        let issue = match removed {
            true => Fate::Keep {
                title: drift::ORPHANS_TITLE.to_owned(),
                body: drift::orphans_issue(report, context)
                    .render(COMMENT_BUDGET, "the job summary"),
            },
            false => {
                Fate::Close("✅ No resources of environments without a file are left.".to_owned())
            }
        };
        kept.push((drift::ORPHANS_MARKER.to_owned(), issue));
    }
    if failures.is_empty() {
        for (marker, issue) in kept {
            let existing = ours(&marker);
            let result = match (issue, existing) {
                (Fate::Keep { title, body }, _) => github
                    .upsert_issue(&marker, &login, existing, &title, &redact::apply(&body))
                    .await
                    .map(|_| ()),
                (Fate::Close(why), Some(number)) => {
                    github.close_issue(number, &why).await.map(|_| ())
                }
                (Fate::Close(_), None) => Ok(()),
            };
            if let Err(e) = result {
                failures.push(e);
            }
        }
    }
    for e in failures {
        let hint = match e.is_forbidden() {
            true => {
                "the token cannot write issues (give the job `issues: write`): the drift report is in the job summary"
            }
            false => "the drift report is in the job summary",
        };
        run.say(&command("warning", &format!("{e}\n{hint}")));
    }
}
