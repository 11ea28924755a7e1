//! The pull request's comment as a merge's apply record: a heading that says what
//! became of the merge, then one block per environment (what became of it, what to do,
//! the error), and the plan each environment was applied from, folded.
//!
//! Each environment's blocks are its own, between hidden markers, so several jobs (a
//! matrix, one environment each) can record into one comment: a writer reads the
//! comment, puts its blocks in and keeps the others' (`merge`), writes, and reads back
//! to check its blocks are there.

mod merge;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ALLOW_DESTROY_LABEL;
use crate::plan::comment::{self, Document, Header, Section};
use crate::plan::render::plural;
use crate::plan::{ActionRef, EnvironmentPlan, Plan};

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

/// Where an environment stands, as its block's marker says it: what the heading is
/// made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Applying,
    NoChanges,
    Applied(usize),
    Stopped,
    Failed,
}

/// One environment's part of the record: its block, and the plan it was applied from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub name: String,
    pub state: State,
    /// Its status line, what to do, its error: markdown.
    pub text: String,
    /// Its plan, folded (none when it had nothing to do).
    pub plan: Option<String>,
}

/// The record of one run: the entries of the environments it applied, which a
/// writer merges into the comment as it finds it.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub header: Option<Header>,
    /// The commit applied, short.
    pub commit: String,
    /// `[run 42](…)`.
    pub run: String,
    pub notes: Vec<String>,
    pub entries: Vec<Entry>,
}

/// The most the folded plans may take of the comment, in bytes: the blocks come first.
const PLAN_ROOM: usize = 40_000;

/// The record of `plan`'s environments: `applying` ones as under way, the others by
/// their `outcomes`; an environment that could not be planned is failed.
pub(super) fn record(
    origin: &Origin,
    plan: &Plan,
    outcomes: &BTreeMap<String, Outcome>,
    applying: &[String],
    notes: &[String],
    header: Option<Header>,
) -> Record {
    let commit = plan.commit.as_deref().unwrap_or_default();
    let mut entries: Vec<Entry> = plan
        .environments
        .iter()
        .map(|env| {
            let outcome = outcomes.get(&env.name);
            let (state, text) = match applying.contains(&env.name) {
                true => {
                    let n = env.summary.total();
                    let line = format!("- ⏳ `{}`: applying {n} change{}", env.name, plural(n));
                    (State::Applying, line)
                }
                false => block(origin, env, outcome),
            };
            let plan = folded(origin, plan, env, outcome);
            Entry {
                name: env.name.clone(),
                state,
                text,
                plan,
            }
        })
        .collect();
    entries.extend(plan.unplanned.iter().map(|u| Entry {
        name: u.name.clone(),
        state: State::Failed,
        text: format!(
            "- ❌ `{}`: could not be planned, so nothing was applied\n  - {}\n\n```\n{}\n```",
            u.name,
            advice(origin, &u.name, "fix the cause, then re-run this job"),
            u.error
        ),
        plan: None,
    }));
    Record {
        header,
        commit: commit[..12.min(commit.len())].to_owned(),
        run: origin.run.clone(),
        notes: notes.to_vec(),
        entries,
    }
}

impl Record {
    /// The comment's document: the heading from every entry, the notes, each
    /// entry's block, then the folded plans (cut first when the comment is full).
    pub fn document(&self) -> Document {
        let mut intro = format!(
            "### {} · `{}` in {}\n",
            heading(&self.entries),
            self.commit,
            self.run
        );
        for note in &self.notes {
            let _ = writeln!(intro, "\n_{note}_");
        }
        for entry in &self.entries {
            let _ = write!(intro, "\n{}", merge::block(entry));
        }
        let plans: Vec<String> = self.entries.iter().filter_map(merge::plan_block).collect();
        Document {
            header: self.header.clone(),
            intro,
            sections: vec![Section::new("", plans).named("the plans")],
        }
    }

    /// This record with the entries of `existing` (the comment as it is now) that it
    /// does not hold itself, in name order, and its header when it has none.
    pub fn merged_into(&self, existing: Option<&str>) -> Record {
        merge::merged(self, existing)
    }

    /// True when `body` holds every entry of this record as written.
    pub fn is_in(&self, body: &str) -> bool {
        merge::holds(self, body)
    }
}

/// The record's heading: what became of the merge as a whole.
fn heading(entries: &[Entry]) -> String {
    let count = |pick: fn(&State) -> bool| entries.iter().filter(|e| pick(&e.state)).count();
    let applying = count(|s| *s == State::Applying);
    if applying > 0 {
        return format!("⏳ Applying {applying} environment{}", plural(applying));
    }
    let applied = count(|s| matches!(s, State::Applied(_)));
    let failed = count(|s| *s == State::Failed);
    let stopped = count(|s| *s == State::Stopped);
    let changes: usize = entries
        .iter()
        .map(|e| match e.state {
            State::Applied(n) => n,
            _ => 0,
        })
        .sum();
    match (applied, failed, stopped) {
        // Every environment had no changes (an environment with changes always gets
        // another state).
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

/// One environment's block: its status line, what to do, and its error or the plan
/// that differs from the one reviewed.
fn block(origin: &Origin, env: &EnvironmentPlan, outcome: Option<&Outcome>) -> (State, String) {
    let name = &env.name;
    let again = "re-run this job";
    match outcome {
        Some(Outcome::NoChanges) | None => (State::NoChanges, format!("- `{name}`: no changes")),
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
            let line = format!(
                "- ✅ `{name}`: applied {} change{}{rolled}{volumes}",
                done.len(),
                plural(done.len())
            );
            (State::Applied(done.len()), line)
        }
        Some(Outcome::PlanChanged(why)) => {
            let text = format!(
                "- ⏸️ `{name}`: not applied: {why}\n  - review the plan now (below, “the plan of {name} as it is now”), then run {} with `environment: {name}`, `mode: apply`; or push a change that makes the plan what you meant",
                workflow(origin),
            );
            (State::Stopped, text)
        }
        Some(Outcome::NeedsConsent(what)) => {
            let text = format!(
                "- ⛔ `{name}`: not applied: it deletes or replaces {} resource{} and consent was not given; nothing was changed\n  - to consent, add the label `{ALLOW_DESTROY_LABEL}` to this pull request and {again}, or run {} with `environment: {name}`, `mode: apply`, `allow_destroy: true`",
                what.len(),
                plural(what.len()),
                workflow(origin)
            );
            (State::Stopped, text)
        }
        Some(Outcome::Failed {
            error,
            done,
            not_done,
        }) => {
            let line = format!(
                "- ❌ `{name}`: failed after {} of {} changes; the next run continues from what exists\n  - {}",
                done.len(),
                done.len() + not_done.len(),
                advice(origin, name, "fix the cause, then re-run this job")
            );
            (State::Failed, line + &failure(error, done, not_done))
        }
    }
}

/// What a person does about environment `name`: `first`, or the workflow by hand.
fn advice(origin: &Origin, name: &str, first: &str) -> String {
    format!(
        "{first} or run {} with `environment: {name}`, `mode: apply`: it continues from what exists",
        workflow(origin)
    )
}

fn workflow(origin: &Origin) -> String {
    match &origin.workflow {
        Some(w) => format!("the workflow **{w}** (Actions → {w} → Run workflow)"),
        None => "the apply workflow by hand (Actions → Run workflow)".to_owned(),
    }
}

/// A failed environment's error, and what was and was not applied, folded.
fn failure(error: &str, done: &[ActionRef], not_done: &[ActionRef]) -> String {
    let list = |refs: &[ActionRef]| {
        refs.iter()
            .map(|r| format!("- {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut out = format!("\n\n```\n{error}\n```");
    if !done.is_empty() || !not_done.is_empty() {
        let _ = write!(
            out,
            "\n\n<details><summary>What was applied ({}) and what was not ({})</summary>\n\nApplied before the failure:\n\n{}\n\nNot applied:\n\n{}\n\n</details>",
            done.len(),
            not_done.len(),
            list(done),
            list(not_done)
        );
    }
    out
}

/// Environment `env`'s plan, folded: as reviewed, or as it is now when it differs;
/// none when it had nothing to do.
fn folded(
    origin: &Origin,
    plan: &Plan,
    env: &EnvironmentPlan,
    outcome: Option<&Outcome>,
) -> Option<String> {
    let what = match outcome {
        _ if env.summary.total() == 0 => return None,
        Some(Outcome::PlanChanged(_)) => "as it is now",
        Some(Outcome::Applied(_)) => "reviewed and applied",
        _ => "reviewed",
    };
    let only = Plan::new(plan.commit.clone(), vec![env.clone()]);
    let text = Document {
        header: None,
        ..comment::plan_document(&only, &origin.context)
    }
    .render(PLAN_ROOM, "the job summary");
    Some(format!(
        "<details><summary>The plan of {}, {what}</summary>\n\n{text}\n</details>",
        env.name
    ))
}

#[cfg(test)]
mod tests;
