//! The GitHub issue strata keeps per drifted environment (and one for the orphans of
//! environments without a file): a title that names the environment, a hidden marker
//! to find it again, the drift report, and what to do, within GitHub's size limit.

use std::fmt::Write as _;

use super::super::drift::{EnvironmentDrift, Found, Item, Orphan, Report};
use super::super::render::plural;
use super::{Document, Section};

/// The hidden marker that starts the issue of environment `name`.
pub fn marker(name: &str) -> String {
    format!("<!-- strata:drift {name} -->")
}

/// The marker of the issue that holds the orphans of environments without a file.
pub const ORPHANS_MARKER: &str = "<!-- strata:drift-orphans -->";

/// The issue's title for environment `name`.
pub fn title(name: &str) -> String {
    format!("strata: drift in {name}")
}

/// The title of the issue that holds the orphans of environments without a file.
pub const ORPHANS_TITLE: &str = "strata: resources of environments without a file";

/// Where the report comes from, and how a person re-applies the default branch.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The default branch (`main`).
    pub branch: String,
    /// The commit compared with, linked when the repository is known.
    pub commit: Option<String>,
    /// The repository's web address, to link the commit and the environment's file.
    pub repository_url: Option<String>,
    /// A link to the run that found it.
    pub run_url: Option<String>,
    /// The workflow that applies by hand (`workflow_dispatch`), when known.
    pub apply_workflow: Option<String>,
}

/// The issue body of one drifted environment: its marker, what differs by kind (what
/// is missing and stopped first, then changes, then configs), its orphans, and what to
/// do about it.
pub fn environment_issue(env: &EnvironmentDrift, report: &Report, context: &Context) -> Document {
    let orphans: Vec<&Orphan> = report
        .orphans
        .iter()
        .filter(|o| o.environment == env.name && !o.environment_removed)
        .collect();
    let mut intro = format!(
        "{}\n### ↩️ `{}` differs from `{}`\n\n",
        marker(&env.name),
        env.name,
        context.branch
    );
    let _ = writeln!(intro, "{}", origin_line(context, &env.region));
    let count = |f: Found| env.items.iter().filter(|i| i.found == f).count();
    let mut parts = Vec::new();
    for (found, word) in [
        (Found::Missing, "missing"),
        (Found::Stopped, "stopped"),
        (Found::Changed, "changed"),
        (Found::Config, "running another config"),
    ] {
        let n = count(found);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if !orphans.is_empty() {
        parts.push(format!("{} orphan{}", orphans.len(), plural(orphans.len())));
    }
    let _ = writeln!(intro, "\n**{}.**", parts.join(", "));
    let by = |f: Found| -> Vec<String> {
        env.items
            .iter()
            .filter(|i| i.found == f)
            .map(item_line)
            .collect()
    };
    let sections = vec![
        Section::new("#### Missing", by(Found::Missing)),
        Section::new("#### Stopped machines", by(Found::Stopped)),
        Section::new("#### Changed (AWS → the file)", by(Found::Changed)).priority(1),
        Section::new(
            "#### Machines running another config than the repository renders",
            by(Found::Config),
        )
        .priority(1),
        Section::new(
            "#### Orphans: tagged for this environment, declared by no file",
            orphans.iter().map(|o| orphan_line(o)).collect(),
        )
        .priority(2),
        Section::new("#### What to do", vec![advice(&env.name, context)]),
    ];
    Document {
        header: None,
        intro,
        sections,
    }
}

/// The issue body of the orphans of environments without a file.
pub fn orphans_issue(report: &Report, context: &Context) -> Document {
    let orphans: Vec<&Orphan> = report
        .orphans
        .iter()
        .filter(|o| o.environment_removed)
        .collect();
    let mut names: Vec<&str> = orphans.iter().map(|o| o.environment.as_str()).collect();
    names.dedup();
    let mut intro = format!(
        "{ORPHANS_MARKER}\n### 🧹 {} resource{} of environment{} without a file\n\n",
        orphans.len(),
        plural(orphans.len()),
        plural(names.len())
    );
    let _ = writeln!(intro, "{}", origin_line(context, ""));
    let _ = writeln!(
        intro,
        "\nstrata tagged these for {}, which `{}` no longer has. They cost money and may hold data: tear them down by merging the removal of the file (with the label `strata:allow-destroy`), or restore the file.",
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        context.branch
    );
    // One block per environment, a line per resource: what it is, its id, its AWS id.
    let items = names
        .iter()
        .map(|name| {
            let of: Vec<&Orphan> = orphans
                .iter()
                .copied()
                .filter(|o| o.environment == *name)
                .collect();
            let region = of.first().map(|o| o.region.as_str()).unwrap_or_default();
            let lines: Vec<String> = of.iter().map(|o| orphan_row(o)).collect();
            format!(
                "`{name}` · {region} · {} resource{}\n```text\n{}\n```",
                of.len(),
                plural(of.len()),
                lines.join("\n")
            )
        })
        .collect();
    Document {
        header: None,
        intro,
        sections: vec![Section::new("#### Resources", items)],
    }
}

/// An orphan as a row of a monospaced block.
fn orphan_row(o: &Orphan) -> String {
    let detail = o
        .detail
        .as_ref()
        .map(|d| format!("  {d}"))
        .unwrap_or_default();
    format!(
        "{:<18} {:<18} {}{detail}",
        o.kind.describe(),
        o.id.to_string(),
        o.aws_id
    )
}

/// The comment that closes an environment's issue once it matches its file again.
pub fn clean_comment(name: &str, context: &Context) -> String {
    format!(
        "✅ `{name}` matches `{}` again. {}",
        context.branch,
        origin_line(context, "")
    )
}

fn origin_line(context: &Context, region: &str) -> String {
    let mut parts = Vec::new();
    if !region.is_empty() {
        parts.push(region.to_owned());
    }
    if let Some(commit) = &context.commit {
        let short = &commit[..12.min(commit.len())];
        parts.push(match &context.repository_url {
            Some(url) => format!("compared with [`{short}`]({url}/commit/{commit})"),
            None => format!("compared with `{short}`"),
        });
    }
    if let Some(url) = &context.run_url {
        parts.push(format!("found by [this run]({url})"));
    }
    parts.join(" · ")
}

fn item_line(item: &Item) -> String {
    let aws = item
        .aws_id
        .as_ref()
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    // What is missing is the whole resource; a rollout is what re-applying does.
    let changes: Vec<String> = match item.found {
        Found::Missing | Found::Stopped => Vec::new(),
        Found::Config => vec!["the config in AWS is not the one the repository renders".to_owned()],
        Found::Changed => item
            .changes
            .iter()
            .filter(|c| !matches!(c.field.as_str(), "rollout" | "launch_template_version"))
            .filter_map(|c| match (&c.from, &c.to) {
                (Some(f), Some(t)) => Some(format!("{}: {f} → {t}", c.field)),
                (None, Some(t)) => Some(format!("{} + {t} (only in the file)", c.field)),
                (Some(f), None) => Some(format!("{} − {f} (only in AWS)", c.field)),
                (None, None) => None,
            })
            .collect(),
    };
    match changes.is_empty() {
        true => format!("- {} `{}`{aws}", item.kind.describe(), item.id),
        false => format!(
            "- {} `{}`{aws}: {}",
            item.kind.describe(),
            item.id,
            changes.join("; ")
        ),
    }
}

fn orphan_line(o: &Orphan) -> String {
    let detail = o
        .detail
        .as_ref()
        .map(|d| format!(", {d}"))
        .unwrap_or_default();
    format!(
        "- `{}` · {} · {} `{}` ({}{detail})",
        o.environment,
        o.region,
        o.kind.describe(),
        o.id,
        o.aws_id
    )
}

fn advice(name: &str, context: &Context) -> String {
    let workflow = match &context.apply_workflow {
        Some(w) => format!("the workflow **{w}** (Actions → {w} → Run workflow)"),
        None => "the apply workflow by hand (Actions → Run workflow)".to_owned(),
    };
    format!(
        "- **Keep the file:** undo the change in AWS, or run {workflow} with `environment: {name}`, `mode: apply` to re-apply `{}` (what deletes or replaces needs `allow_destroy: true`).\n\
         - **Keep what AWS holds:** change `environments/{name}.yaml` to say it, in a pull request.\n\
         - This issue is edited by every drift check and closed by the first that finds `{name}` clean.",
        context.branch
    )
}
