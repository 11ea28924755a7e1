//! The pull request's comment as a merge's apply record: a heading that says what
//! became of the merge, a status line per environment, advice a person can follow
//! after the merge, and the plan that was reviewed, folded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ALLOW_DESTROY_LABEL;
use crate::plan::comment::{self, Document, Header, Section};
use crate::plan::render::plural;
use crate::plan::{ActionRef, Plan};

/// What became of one environment.
pub(super) enum Outcome {
    NoChanges,
    Applied(Vec<ActionRef>),
    PlanChanged(String),
    NeedsConsent(Vec<ActionRef>),
    Failed {
        error: String,
        done: Vec<ActionRef>,
        not_done: Vec<ActionRef>,
    },
}

/// Where the record is written from: the run, the workflow a person runs by hand, and
/// what the plan's document links to.
pub(super) struct Origin {
    /// `[run 42](…)`, or `this run`.
    pub run: String,
    /// The workflow's name (`GITHUB_WORKFLOW`), when known.
    pub workflow: Option<String>,
    /// Links and hints for the plan's document.
    pub context: comment::Context,
}

/// The most the folded plan may take of the comment, in bytes: the status lines
/// and advice come first.
const PLAN_ROOM: usize = 40_000;

/// The pull request's comment as the apply's record: applying (with `starting`), or
/// what became of each environment, and the plan, folded.
pub(super) fn record_document(
    origin: &Origin,
    plan: &Plan,
    outcomes: &BTreeMap<String, Outcome>,
    applying: &[String],
    notes: &[String],
    header: Option<Header>,
    starting: bool,
) -> Document {
    let commit = plan.commit.as_deref().unwrap_or_default();
    let commit = &commit[..12.min(commit.len())];
    let mut intro = format!(
        "### {} · `{commit}` in {}\n",
        heading(outcomes, applying, starting),
        origin.run
    );
    for note in notes {
        let _ = writeln!(intro, "\n_{note}_");
    }
    let mut status: Vec<String> = plan
        .environments
        .iter()
        .map(|env| {
            status_line(
                env,
                outcomes.get(&env.name),
                starting && applying.contains(&env.name),
            )
        })
        .collect();
    status.extend(plan.unplanned.iter().map(|u| {
        format!(
            "- ❌ `{}`: could not be planned, so nothing was applied",
            u.name
        )
    }));
    let _ = writeln!(intro, "\n{}", status.join("\n"));
    // Every environment, those that could not be planned last.
    let names: Vec<&str> = plan
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .chain(plan.unplanned.iter().map(|u| u.name.as_str()))
        .collect();
    let advice: Vec<String> = names
        .iter()
        .filter_map(|name| advice(origin, name, outcomes.get(*name)?))
        .collect();
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| match outcomes.get(*name)? {
            Outcome::Failed {
                error,
                done,
                not_done,
            } => Some(failure(name, error, done, not_done)),
            _ => None,
        })
        .collect();
    let changed: Vec<String> = plan
        .environments
        .iter()
        .filter_map(|env| match outcomes.get(&env.name)? {
            Outcome::PlanChanged(_) => Some(
                env.layers
                    .iter()
                    .flat_map(|l| comment::layer_block(&env.name, l))
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
            _ => None,
        })
        .collect();
    let folded = comment::plan_document(plan, &origin.context);
    let folded = Document {
        header: None,
        ..folded
    }
    .render(PLAN_ROOM, "the job summary");
    let what = if outcomes
        .values()
        .any(|o| matches!(o, Outcome::PlanChanged(_)))
    {
        "The plan as it is now"
    } else {
        "The plan reviewed and applied"
    };
    Document {
        header,
        intro,
        sections: vec![
            Section::new("#### What to do", advice),
            Section::new("", failures).priority(1).named("the failures"),
            Section::new(
                "#### The plan now, which differs from the one reviewed",
                changed,
            )
            .priority(2),
            Section::new(
                "",
                vec![format!(
                    "<details><summary>{what}</summary>\n\n{folded}\n</details>"
                )],
            )
            .priority(3)
            .named("the plan"),
        ],
    }
}

/// The record's heading: what became of the merge as a whole.
fn heading(outcomes: &BTreeMap<String, Outcome>, applying: &[String], starting: bool) -> String {
    if starting {
        let n = applying.len();
        return format!("⏳ Applying {n} environment{}", plural(n));
    }
    let count = |pick: fn(&Outcome) -> bool| outcomes.values().filter(|o| pick(o)).count();
    let applied = count(|o| matches!(o, Outcome::Applied(_)));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let stopped = count(|o| matches!(o, Outcome::PlanChanged(_) | Outcome::NeedsConsent(_)));
    let changes: usize = outcomes
        .values()
        .map(|o| match o {
            Outcome::Applied(done) => done.len(),
            _ => 0,
        })
        .sum();
    match (applied, failed, stopped) {
        // Every environment had no changes (an environment with changes always gets
        // another outcome).
        (0, 0, 0) => "✅ Nothing to apply: AWS already matches".to_owned(),
        (a, 0, 0) => format!(
            "✅ Applied {changes} change{} in {a} environment{}",
            plural(changes),
            plural(a)
        ),
        (_, f, _) if f > 0 => format!(
            "❌ Apply failed in {f} environment{}; {applied} applied",
            plural(f)
        ),
        (0, _, s) => format!("⏸️ Not applied: {s} environment{} stopped", plural(s)),
        (a, _, s) => format!("⚠️ Partly applied: {a} applied, {s} not"),
    }
}

/// One environment's line of the record.
fn status_line(
    env: &crate::plan::EnvironmentPlan,
    outcome: Option<&Outcome>,
    applying: bool,
) -> String {
    let name = &env.name;
    if applying {
        let n = env.summary.total();
        return format!("- ⏳ `{name}`: applying {n} change{}", plural(n));
    }
    match outcome {
        Some(Outcome::NoChanges) | None => format!("- `{name}`: no changes"),
        Some(Outcome::Applied(done)) => {
            let rolled = match env.summary.rollout {
                0 => String::new(),
                n => format!(", {n} machine{} rolled", plural(n)),
            };
            // Nothing lost silently: the data volumes the plan said go or stay.
            let volumes: String = env
                .data_volumes
                .iter()
                .map(|v| format!("\n  - 💾 {}", crate::plan::render::data_volume(v)))
                .collect();
            format!(
                "- ✅ `{name}`: applied {} change{}{rolled}{volumes}",
                done.len(),
                plural(done.len())
            )
        }
        Some(Outcome::PlanChanged(why)) => format!("- ⏸️ `{name}`: not applied: {why}"),
        Some(Outcome::NeedsConsent(what)) => format!(
            "- ⛔ `{name}`: not applied: it deletes or replaces {} resource{} and consent was not given; nothing was changed",
            what.len(),
            plural(what.len())
        ),
        Some(Outcome::Failed { done, not_done, .. }) => format!(
            "- ❌ `{name}`: failed after {} of {} changes; the next run continues from what exists",
            done.len(),
            done.len() + not_done.len()
        ),
    }
}

/// What a person does next about one environment, after the merge: which workflow to
/// run by hand, with which inputs.
fn advice(origin: &Origin, name: &str, outcome: &Outcome) -> Option<String> {
    let workflow = match &origin.workflow {
        Some(w) => format!("the workflow **{w}** (Actions → {w} → Run workflow)"),
        None => "the apply workflow by hand (Actions → Run workflow)".to_owned(),
    };
    let by_hand = |inputs: &str| format!("run {workflow} with {inputs}");
    Some(match outcome {
        Outcome::PlanChanged(_) => format!(
            "- `{name}`: review the plan now (below), then {}; or push a change that makes the plan what you meant",
            by_hand(&format!("`environment: {name}`, `mode: apply`"))
        ),
        Outcome::NeedsConsent(_) => format!(
            "- `{name}`: to consent, add the label `{ALLOW_DESTROY_LABEL}` to this pull request and re-run this job, or {}",
            by_hand(&format!(
                "`environment: {name}`, `mode: apply`, `allow_destroy: true`"
            ))
        ),
        Outcome::Failed { .. } => format!(
            "- `{name}`: fix the cause, then re-run this job or {}: it continues from what exists",
            by_hand(&format!("`environment: {name}`, `mode: apply`"))
        ),
        Outcome::NoChanges | Outcome::Applied(_) => return None,
    })
}

/// A failed environment: the error, what was and was not applied, folded.
fn failure(name: &str, error: &str, done: &[ActionRef], not_done: &[ActionRef]) -> String {
    let list = |refs: &[ActionRef]| {
        refs.iter()
            .map(|r| format!("- {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if done.is_empty() && not_done.is_empty() {
        return format!("`{name}` failed:\n```\n{error}\n```");
    }
    format!(
        "`{name}` failed:\n```\n{error}\n```\n<details><summary>What was applied ({}) and what was not ({})</summary>\n\nApplied before the failure:\n\n{}\n\nNot applied:\n\n{}\n\n</details>",
        done.len(),
        not_done.len(),
        list(done),
        list(not_done)
    )
}

#[cfg(test)]
mod tests;
