//! Plans for people (markdown, as posted on pull requests) and for programs (JSON).

use std::fmt::Write as _;

use super::{ActionKind, FieldChange, Plan, Summary};

/// A GitHub warning callout: `title` in bold, then `rest`, and `error` verbatim.
pub fn warning(title: &str, rest: &str, error: &str) -> String {
    let quoted: Vec<String> = error.lines().map(|l| format!("> {l}")).collect();
    format!(
        "\n> [!WARNING]\n> **{title}**; {rest}.\n>\n> ```\n{}\n> ```\n",
        quoted.join("\n")
    )
}

/// Renders `strata plan --format markdown`: a summary table first, a warning banner
/// when anything is deleted or replaced, security-widening changes called out, then
/// every environment, layer and action.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## strata plan");
    if let Some(commit) = &plan.commit {
        let _ = writeln!(out, "\nfor commit `{}`", &commit[..12.min(commit.len())]);
    }
    for u in &plan.unplanned {
        let title = format!("`{}` ({}) could not be planned", u.name, u.region);
        let _ = write!(
            out,
            "{}",
            warning(&title, "the other environments are", &u.error)
        );
    }
    if plan.environments.is_empty() {
        if plan.unplanned.is_empty() {
            let _ = writeln!(out, "\nNo environment selected: nothing to plan.");
        }
        return out;
    }
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "\n**No changes.** The live state matches the repository."
        );
    }
    let destructive = plan.destructive();
    if !destructive.is_empty() {
        let _ = writeln!(
            out,
            "\n> [!CAUTION]\n> This plan **deletes or replaces {} resource{}**. `strata apply` refuses it unless run with `--allow-destroy`.",
            destructive.len(),
            plural(destructive.len())
        );
    }
    summary_table(&mut out, plan, false);
    let widening: Vec<String> = plan
        .environments
        .iter()
        .flat_map(|e| {
            e.layers.iter().flat_map(move |l| {
                l.actions.iter().flat_map(move |a| {
                    a.widens_security()
                        .into_iter()
                        .map(move |w| format!("{}: {w}", e.name))
                })
            })
        })
        .collect();
    if !widening.is_empty() {
        let _ = writeln!(out, "\n### ⚠️ Security-widening changes\n");
        for w in widening {
            let _ = writeln!(out, "- {w}");
        }
    }
    let volumes: Vec<String> = plan
        .environments
        .iter()
        .flat_map(|e| {
            e.data_volumes
                .iter()
                .map(move |v| format!("- {}: {}", e.name, data_volume(v)))
        })
        .collect();
    if !volumes.is_empty() {
        let _ = writeln!(out, "\n### 💾 Data volumes\n\n{}", volumes.join("\n"));
    }
    for env in &plan.environments {
        let _ = writeln!(
            out,
            "\n### {} ({}){}",
            env.name,
            env.region,
            if env.removed {
                " — environment removed: teardown"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "\n{}", summary_line(env.summary));
        for layer in &env.layers {
            let _ = writeln!(out, "\n#### {} layer", layer.layer);
            if let Some(reason) = &layer.forced_by {
                let _ = writeln!(out, "\nPlanned because {reason}.");
            }
            for note in &layer.notes {
                let _ = writeln!(out, "\n_{note}_");
            }
            if layer.actions.is_empty() {
                let _ = writeln!(out, "\nNo changes.");
                continue;
            }
            let _ = writeln!(out, "\n```diff");
            for a in &layer.actions {
                let prefix = diff_marker(a.action);
                let _ = writeln!(out, "{prefix} {}", action_line(a));
                for line in &a.detail {
                    let _ = writeln!(out, "{line}");
                }
                for line in a.changes.iter().filter_map(change_line) {
                    let _ = writeln!(out, "{line}");
                }
            }
            let _ = writeln!(out, "```");
        }
    }
    out
}

/// What happens to data volumes, in a sentence: which, how big, their fate and why.
pub fn data_volume(v: &super::DataVolumes) -> String {
    let what = match (&v.aws_id, v.count) {
        (Some(aws), _) => format!("`{}` ({aws}, {})", v.id, v.disk),
        (None, 1) => format!("the data volume of the group's machine ({})", v.disk),
        (None, n) => format!(
            "the data volumes of the group's {n} machines ({} each)",
            v.disk
        ),
    };
    let fate = match v.fate {
        super::VolumeFate::Deleted => "deleted with its data",
        super::VolumeFate::LeftBehind => "left behind, unattached and tagged, for recovery",
    };
    format!("{what} {fate}: {}", v.because)
}

/// The first column of an action's line in a `diff` block: `+` creates, `-` deletes,
/// `!` changes in place or replaces.
pub fn diff_marker(action: ActionKind) -> &'static str {
    match action {
        ActionKind::Create => "+",
        ActionKind::Delete => "-",
        ActionKind::Update | ActionKind::Replace => "!",
    }
}

/// What an action does, to what, and why: `replace subnet subnet/private/0
/// (subnet-0abc), because of cidr`.
pub fn action_line(a: &super::Action) -> String {
    let aws = a
        .aws_id
        .as_ref()
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let why = a
        .forced_by
        .as_ref()
        .map(|f| format!(", because of {f}"))
        .unwrap_or_default();
    format!("{} {} {}{aws}{why}", a.action, a.kind.describe(), a.id)
}

/// One field change as a line of a `diff` block (`None` for a change of nothing);
/// drift says so.
pub fn change_line(c: &FieldChange) -> Option<String> {
    let drift = match c.origin {
        Some(super::Origin::Drift) => "   (drift: live differs from the base)",
        _ => "",
    };
    match (&c.from, &c.to) {
        (Some(f), Some(t)) => Some(format!("    {}: {f} → {t}{drift}", c.field)),
        (None, Some(t)) => Some(format!("+   {}: {t}{drift}", c.field)),
        (Some(f), None) => Some(format!("-   {}: {f}{drift}", c.field)),
        (None, None) => None,
    }
}

/// The summary table, a row per environment and layer; with `mark_removed`, an
/// environment whose file was removed says so.
pub fn summary_table(out: &mut String, plan: &Plan, mark_removed: bool) {
    let _ = writeln!(
        out,
        "\n| environment | layer | create | update | replace | delete | rollout |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for env in &plan.environments {
        let removed = if mark_removed && env.removed {
            " (removed)"
        } else {
            ""
        };
        for layer in &env.layers {
            let s = layer.summary;
            let _ = writeln!(
                out,
                "| {}{removed} | {} | {} | {} | {} | {} | {} |",
                env.name, layer.layer, s.create, s.update, s.replace, s.delete, s.rollout
            );
        }
    }
}

/// `s` after a count other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn summary_line(s: Summary) -> String {
    if s.total() == 0 {
        "No changes.".to_owned()
    } else {
        let rollout = match s.rollout {
            0 => String::new(),
            n => format!(
                " {n} running machine{} rolled out one at a time.",
                plural(n)
            ),
        };
        format!(
            "{} to create, {} to update, {} to replace, {} to delete.{rollout}",
            s.create, s.update, s.replace, s.delete
        )
    }
}

/// Renders `strata plan --format json` (schema documented in the README).
pub fn json(plan: &Plan) -> String {
    // Plain data with string keys serialises without error.
    serde_json::to_string_pretty(plan).expect("plan serialises") + "\n"
}
