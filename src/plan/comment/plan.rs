//! The plan as a reviewer reads it: a verdict first, the table, what needs consent,
//! what widens security or trust, drift apart from the change, then per environment
//! one compact change list per layer, its picture, and the details folded away.

use std::fmt::Write as _;

use super::super::render::plural;
use super::super::{Action, ActionKind, EnvironmentPlan, LayerPlan, Origin, Plan};
use super::{Document, Header, Section, picture, words};

/// Where a plan comes from, for the line under the verdict.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// A link to the workflow run, when known.
    pub run_url: Option<String>,
    /// The plan was not compared with live AWS.
    pub model_only: bool,
    /// What a reviewer does to consent to deletions (`None`: nothing to say).
    pub consent_hint: Option<String>,
    /// The repository's web address (`https://github.com/owner/repo`), to link commits.
    pub repository_url: Option<String>,
    /// The commit the plan's changes are told from drift against (a pull request's base).
    pub base: Option<String>,
}

impl Context {
    /// A commit, abbreviated, linked when the repository is known.
    fn commit(&self, id: &str) -> String {
        let short = &id[..12.min(id.len())];
        match &self.repository_url {
            Some(url) => format!("[`{short}`]({url}/commit/{id})"),
            None => format!("`{short}`"),
        }
    }
}

/// Priorities of the sections when the budget runs out (lower kept first).
mod keep {
    pub const CONSENT: u8 = 0;
    pub const SECURITY: u8 = 1;
    pub const DRIFT: u8 = 2;
    pub const CHANGES: u8 = 3;
    pub const PICTURE: u8 = 4;
    pub const DETAILS: u8 = 5;
}

/// The document of a plan: the verdict and the table always; then what needs
/// consent, security and trust, drift, and each environment's changes, picture and
/// details, kept in that order of priority when the budget runs out.
pub fn plan_document(plan: &Plan, context: &Context) -> Document {
    let mut intro = String::new();
    let _ = writeln!(intro, "### {}", words::verdict(plan));
    let mut line = Vec::new();
    if let Some(commit) = &plan.commit {
        line.push(format!("plan of {}", context.commit(commit)));
    }
    if let Some(base) = &context.base {
        line.push(format!("base {}", context.commit(base)));
    }
    if let Some(url) = &context.run_url {
        line.push(format!("[workflow run]({url})"));
    }
    if !line.is_empty() {
        let _ = writeln!(intro, "\n{}", line.join(" · "));
    }
    if context.model_only {
        let _ = writeln!(
            intro,
            "\n> [!NOTE]\n> **Model only: not compared with live AWS.** This run had no AWS credentials \
             (a fork's pull request, or none configured), so this is the difference between the \
             repository's desired state at the base and at the head. The plan made on merge reads AWS."
        );
    }
    if plan.is_empty() {
        let _ = writeln!(
            intro,
            "\n{}",
            if context.model_only {
                "The desired state is the same at the base and the head."
            } else {
                "The live state matches the repository."
            }
        );
    } else {
        table(&mut intro, plan);
    }
    let mut sections = vec![
        unplanned(plan).priority(keep::CONSENT),
        consent(plan, context).priority(keep::CONSENT),
        data(plan).priority(keep::CONSENT),
        security(plan).priority(keep::SECURITY),
        drift(plan).priority(keep::DRIFT),
    ];
    let changed: Vec<&EnvironmentPlan> = plan
        .environments
        .iter()
        .filter(|e| e.summary.total() > 0)
        .collect();
    // One picture shows; several fold, each under its environment.
    let fold = changed.len() > 1;
    for env in changed {
        sections.extend(environment(env, fold));
    }
    Document {
        header: Some(Header::of(plan, context.model_only)),
        intro,
        sections,
    }
}

/// One row per environment that changes: the counts, and drift when there is some.
fn table(out: &mut String, plan: &Plan) {
    let drifted = |e: &EnvironmentPlan| drift_lines(e).len();
    let any_drift = plan.environments.iter().any(|e| drifted(e) > 0);
    let _ = writeln!(
        out,
        "\n| environment | create | update | replace | delete | rollout |{}\n|---|---:|---:|---:|---:|---:|{}",
        if any_drift { " drift |" } else { "" },
        if any_drift { "---:|" } else { "" }
    );
    for env in plan.environments.iter().filter(|e| e.summary.total() > 0) {
        let s = env.summary;
        let name = match env.removed {
            true => format!("`{}` (removed)", env.name),
            false => format!("`{}`", env.name),
        };
        let drift = match any_drift {
            true => format!(" {} |", drifted(env)),
            false => String::new(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |{drift}",
            s.create, s.update, s.replace, s.delete, s.rollout
        );
    }
}

/// The environments that could not be planned, each with why.
fn unplanned(plan: &Plan) -> Section {
    let items = plan
        .unplanned
        .iter()
        .map(|u| {
            format!(
                "- **`{}`** ({}):\n  ```\n  {}\n  ```",
                u.name,
                u.region,
                u.error.replace('\n', "\n  ")
            )
        })
        .collect();
    Section::new("#### ❌ Not planned (the others are)", items)
}

/// What needs consent, one line per environment naming what goes.
fn consent(plan: &Plan, context: &Context) -> Section {
    const NAMED: usize = 6;
    let items: Vec<String> = plan
        .environments
        .iter()
        .filter_map(|e| {
            let goes: Vec<&Action> = e
                .layers
                .iter()
                .flat_map(|l| &l.actions)
                .filter(|a| a.needs_consent())
                .collect();
            if goes.is_empty() {
                return None;
            }
            if e.removed {
                return Some(format!(
                    "- `{}`: the whole environment ({} resource{}, listed below)",
                    e.name,
                    goes.len(),
                    plural(goes.len())
                ));
            }
            let mut named: Vec<String> = goes
                .iter()
                .take(NAMED)
                .map(|a| format!("{} `{}`", a.action, a.id))
                .collect();
            if goes.len() > NAMED {
                named.push(format!("and {} more", goes.len() - NAMED));
            }
            Some(format!("- `{}`: {}", e.name, named.join(", ")))
        })
        .collect();
    let hint = context
        .consent_hint
        .as_deref()
        .map(|h| format!(" {h}"))
        .unwrap_or_default();
    let (deletes, replaces) = (plan.summary.delete, plan.summary.replace);
    let what = match (deletes, replaces) {
        (0, r) => format!("it replaces {r} resource{}", plural(r)),
        (d, 0) => format!("it deletes {d} resource{}", plural(d)),
        (d, r) => format!("it deletes {d} and replaces {r} resource{}", plural(r)),
    };
    Section::new(
        format!("> [!CAUTION]\n> **Needs consent:** {what}.{hint}"),
        items,
    )
    .named("Needs consent")
}

/// The data volumes the apply deletes or leaves behind, each with why.
fn data(plan: &Plan) -> Section {
    let items = plan
        .environments
        .iter()
        .flat_map(|e| {
            e.data_volumes
                .iter()
                .map(move |v| format!("- `{}`: {}", e.name, super::super::render::data_volume(v)))
        })
        .collect();
    Section::new("#### 💾 Data volumes", items)
}

/// What opens to the internet, and what changes whom the machines trust or what they
/// may do.
fn security(plan: &Plan) -> Section {
    let trust = plan
        .environments
        .iter()
        .flat_map(|e| e.trust.iter().map(move |t| format!("- `{}`: {t}", e.name)));
    let items = plan
        .actions()
        .flat_map(|(e, _, a)| {
            let mut lines: Vec<String> = a
                .widens_security()
                .into_iter()
                .map(|w| format!("- `{}`: {w}", e.name))
                .collect();
            lines.extend(
                a.changes
                    .iter()
                    .filter(|c| c.field == "instance_profile" && a.action != ActionKind::Create)
                    .map(|c| {
                        format!(
                            "- `{}`: instance profile {} → {} (what the machines may do in AWS)",
                            e.name,
                            c.from.as_deref().unwrap_or("none"),
                            c.to.as_deref().unwrap_or("none")
                        )
                    }),
            );
            lines
        })
        .chain(trust)
        .collect();
    Section::new("#### 🔓 Security and trust", items)
}

/// The drift of one environment: each change live AWS made apart from the base, as
/// lines of a `diff` block.
fn drift_lines(env: &EnvironmentPlan) -> Vec<String> {
    let all: Vec<&Action> = env.layers.iter().flat_map(|l| &l.actions).collect();
    let width = all
        .iter()
        .map(|a| a.id.to_string().len())
        .max()
        .unwrap_or(0);
    all.into_iter()
        .filter(|a| {
            a.origin == Some(Origin::Drift)
                || a.changes.iter().any(|c| c.origin == Some(Origin::Drift))
        })
        .map(|a| match a.origin {
            Some(Origin::Drift) => words::line(a, None, width),
            _ => words::line(a, Some(Origin::Drift), width),
        })
        .collect()
}

/// Drift, apart from the change: what live AWS holds that the base does not declare.
fn drift(plan: &Plan) -> Section {
    let items = plan
        .environments
        .iter()
        .filter_map(|e| {
            let lines = drift_lines(e);
            (!lines.is_empty()).then(|| format!("`{}`\n```diff\n{}\n```", e.name, lines.join("\n")))
        })
        .collect();
    Section::new(
        "#### ↩️ Drift: not this pull request's change\n\nLive AWS differs from what the base declares (a change made by hand, or a merged change never applied). Applying this pull request undoes it:",
        items,
    )
}

/// Actions per block of a change list or details: a long layer is cut block by block,
/// never dropped whole.
const BLOCK: usize = 40;

/// One environment: its change list per layer with notes, its picture, its details.
fn environment(env: &EnvironmentPlan, fold_picture: bool) -> Vec<Section> {
    let title = match env.removed {
        true => format!("#### `{}` · {} · removed: teardown", env.name, env.region),
        false => format!("#### `{}` · {}", env.name, env.region),
    };
    let mut changes: Vec<String> = env
        .layers
        .iter()
        .flat_map(|l| layer_list(l, Some(Origin::Change)))
        .collect();
    // Notes of the layers that change: a quiet layer's notes are not this plan's news.
    let notes: Vec<String> = env
        .layers
        .iter()
        .filter(|l| !l.actions.is_empty())
        .flat_map(|l| l.notes.iter().map(move |n| format!("- {}: {n}", l.layer)))
        .collect();
    if !notes.is_empty() {
        changes.push(format!("<sub>Notes</sub>\n\n{}", notes.join("\n")));
    }
    let picture = picture::picture(env)
        .map(|p| match fold_picture {
            true => format!(
                "<details><summary>Picture of `{}`</summary>\n\n{p}\n\n{}\n\n</details>",
                env.name,
                picture::LEGEND
            ),
            false => format!("{p}\n\n{}", picture::LEGEND),
        })
        .into_iter()
        .collect();
    let details = env.layers.iter().flat_map(layer_details).collect();
    let name = |what: &str| format!("{what} of `{}`", env.name);
    vec![
        Section::new(title, changes)
            .priority(keep::CHANGES)
            .named(name("the changes")),
        Section::new("", picture)
            .priority(keep::PICTURE)
            .named(name("the picture")),
        Section::new("", details)
            .priority(keep::DETAILS)
            .named(name("the details")),
    ]
}

/// A layer's compact change list: its counts and reason on one line, then `diff`
/// blocks with a line per action of `origin` (actions drift alone asks for are left to
/// the drift section), [`BLOCK`] actions a block. Empty when nothing of that origin
/// changes.
fn layer_list(layer: &LayerPlan, origin: Option<Origin>) -> Vec<String> {
    let shown: Vec<&Action> = layer
        .actions
        .iter()
        .filter(|a| origin.is_none() || a.origin != Some(Origin::Drift))
        .collect();
    let width = shown
        .iter()
        .map(|a| a.id.to_string().len())
        .max()
        .unwrap_or(0);
    shown
        .chunks(BLOCK)
        .enumerate()
        .map(|(n, chunk)| {
            let lines: Vec<String> = chunk
                .iter()
                .map(|a| words::line(a, origin, width))
                .collect();
            let block = format!("```diff\n{}\n```", lines.join("\n"));
            if n > 0 {
                return block;
            }
            let mut head = format!(
                "**{}** · {}",
                layer.layer,
                words::counts(super::super::Summary::of(shown.iter().copied()))
            );
            if let Some(reason) = &layer.forced_by {
                let _ = write!(head, " · _{reason}_");
            }
            format!("{head}\n{block}")
        })
        .collect()
}

/// A layer's changes in full, folded: every field change of every action in a `diff`
/// block, a node change's unit diff under its action; [`BLOCK`] actions a fold.
fn layer_details(layer: &LayerPlan) -> Vec<String> {
    let detailed: Vec<(&Action, Vec<String>)> = layer
        .actions
        .iter()
        .map(|a| {
            let mut lines: Vec<String> = a
                .changes
                .iter()
                .filter_map(|c| words::detail(a, c))
                .collect();
            lines.extend(a.detail.iter().cloned());
            (a, lines)
        })
        .filter(|(_, lines)| !lines.is_empty())
        .collect();
    let folds = detailed.len().div_ceil(BLOCK);
    detailed
        .chunks(BLOCK)
        .enumerate()
        .map(|(n, chunk)| {
            let mut body = String::new();
            for (a, lines) in chunk {
                let _ = writeln!(
                    body,
                    "{} {} {} {}",
                    super::super::render::diff_marker(a.action),
                    words::verb(a),
                    a.kind.describe(),
                    a.id
                );
                for line in lines {
                    let _ = writeln!(body, "{line}");
                }
            }
            let part = match folds {
                1 => String::new(),
                _ => format!(" ({} of {folds})", n + 1),
            };
            format!(
                "<details><summary>{} layer, field by field{part}</summary>\n\n```diff\n{body}```\n\n</details>",
                layer.layer
            )
        })
        .collect()
}

/// One environment's layer as the apply record shows a plan that changed since review:
/// its compact list, every action.
pub fn layer_block(env: &str, layer: &LayerPlan) -> Vec<String> {
    let mut blocks = layer_list(layer, None);
    if let Some(first) = blocks.first_mut() {
        *first = format!("`{env}` {first}");
    }
    blocks
}
