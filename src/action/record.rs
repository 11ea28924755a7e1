//! The pull request's comment as a merge's apply record, and what became of each
//! environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Run;
use super::push::ALLOW_DESTROY_LABEL;
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
    NotReached,
}

/// The pull request's comment as the apply's record: applying (with `starting`), or
/// what was applied, what was not and why.
pub(super) fn record_document(
    run: &Run<'_>,
    plan: &Plan,
    outcomes: &BTreeMap<String, Outcome>,
    applying: &[String],
    notes: &[String],
    header: Option<Header>,
    starting: bool,
) -> Document {
    let mut intro = String::new();
    let run_link = match (&run.runner.run_id, run.runner.run_url()) {
        (Some(id), Some(url)) => format!("[run {id}]({url})"),
        _ => "this run".to_owned(),
    };
    let commit = plan.commit.as_deref().unwrap_or_default();
    let _ = writeln!(
        intro,
        "### strata apply\n\n{} `{}` in {run_link}.",
        if starting { "Applying" } else { "Applied" },
        &commit[..12.min(commit.len())]
    );
    for note in notes {
        let _ = writeln!(intro, "\n_{note}_");
    }
    let mut sections = Vec::new();
    let list = |refs: &[ActionRef]| refs.iter().map(|r| format!("- {r}")).collect::<Vec<_>>();
    for env in &plan.environments {
        let name = &env.name;
        let (heading, items) = if starting && applying.contains(name) {
            (
                format!(
                    "#### ⏳ `{name}`: applying {} change{}",
                    env.summary.total(),
                    plural(env.summary.total())
                ),
                Vec::new(),
            )
        } else {
            match outcomes.get(name) {
                Some(Outcome::NoChanges) | None => {
                    (format!("#### `{name}`: no changes"), Vec::new())
                }
                Some(Outcome::Applied(done)) => (
                    format!(
                        "#### ✅ `{name}`: applied {} change{}",
                        done.len(),
                        plural(done.len())
                    ),
                    list(done),
                ),
                Some(Outcome::PlanChanged(why)) => (
                    format!(
                        "#### ⏸️ `{name}`: not applied: {why}\n\nThe plan now is below. Run the pull request's plan again to review it, or rebuild this environment with a manual run of the apply workflow (`workflow_dispatch`)."
                    ),
                    env.layers
                        .iter()
                        .flat_map(|l| {
                            l.actions
                                .iter()
                                .map(move |a| comment::action_block(name, l.layer.as_str(), a))
                        })
                        .collect(),
                ),
                Some(Outcome::NeedsConsent(what)) => (
                    format!(
                        "#### ⛔ `{name}`: not applied: it deletes or replaces {} resource{} and consent was not given; nothing was changed\n\nTo consent, add the label `{ALLOW_DESTROY_LABEL}` to the pull request and re-run this job, or run the apply workflow by hand with `allow_destroy: true`.",
                        what.len(),
                        plural(what.len())
                    ),
                    list(what),
                ),
                Some(Outcome::Failed {
                    error,
                    done,
                    not_done,
                }) => {
                    let mut items = vec![format!("```\n{error}\n```")];
                    items.push(format!("Applied before the failure ({}):", done.len()));
                    items.extend(list(done));
                    items.push(format!("Not applied ({}):", not_done.len()));
                    items.extend(list(not_done));
                    (
                        format!(
                            "#### ❌ `{name}`: failed; the next run continues from what exists"
                        ),
                        items,
                    )
                }
                Some(Outcome::NotReached) => (
                    format!("#### `{name}`: not applied: an earlier environment failed"),
                    Vec::new(),
                ),
            }
        };
        // Each environment's line always shows; its list may be cut.
        sections.push(Section {
            heading: String::new(),
            items: vec![heading],
        });
        if !items.is_empty() {
            sections.push(Section {
                heading: String::new(),
                items,
            });
        }
    }
    Document {
        header,
        intro,
        sections,
    }
}
