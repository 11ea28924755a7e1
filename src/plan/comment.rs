//! The pull-request comment and the job summary: a plan, or what stopped one, as
//! markdown in sections of falling priority, cut to a size budget section by section.
//!
//! GitHub refuses a comment over 65,536 characters and shows at most 1 MiB of a step
//! summary, so every body is measured in bytes (never fewer than characters) and
//! what does not fit is replaced by one line per section saying how much was left
//! out and where to find it. Every comment starts with [`MARKER`] and a hidden
//! [`Header`] that records the digest of each environment's plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::render::{self, plural};
use super::{Action, ActionKind, Plan};

/// The first line of every comment strata keeps: how it finds its own.
pub const MARKER: &str = "<!-- strata:comment -->";
/// The most a comment may hold, in bytes (GitHub: 65,536 characters).
pub const COMMENT_BUDGET: usize = 65_536;
/// The most a job summary may hold, in bytes (GitHub: 1 MiB per step).
pub const SUMMARY_BUDGET: usize = 1 << 20;

const HEADER_START: &str = "<!-- strata:header ";
const HEADER_END: &str = " -->";

/// The machine-readable part of a comment: which commit was planned and the digest of
/// each environment's plan (see [`super::digest`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// The commit planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Environment name → plan digest.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    /// True when the plan was not compared with live AWS (no credentials).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub model_only: bool,
}

impl Header {
    /// The header of a plan: its commit and each environment's digest.
    pub fn of(plan: &Plan, model_only: bool) -> Header {
        Header {
            version: 1,
            commit: plan.commit.clone(),
            digests: plan
                .environments
                .iter()
                .map(|e| (e.name.clone(), super::digest::environment(e)))
                .collect(),
            model_only,
        }
    }

    /// Reads the header from a comment body written by [`Document::comment`].
    pub fn parse(body: &str) -> Option<Header> {
        let start = body.find(HEADER_START)? + HEADER_START.len();
        let end = start + body[start..].find(HEADER_END)?;
        serde_json::from_str(&body[start..end]).ok()
    }

    fn render(&self) -> String {
        // JSON of names and hex digests never holds `-->`.
        let json = serde_json::to_string(self).expect("a header serialises");
        format!("{HEADER_START}{json}{HEADER_END}")
    }
}

/// A body in sections: the title and intro always appear; sections follow in
/// priority order and are cut, item by item, when the budget runs out.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The hidden header, when there is one.
    pub header: Option<Header>,
    /// Markdown that always appears (title, context, summary table).
    pub intro: String,
    /// Sections in priority order.
    pub sections: Vec<Section>,
}

/// One section: a heading shown with its first item, and items cut whole.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Markdown before the items (a heading or a banner).
    pub heading: String,
    /// Markdown blocks, each kept or cut whole.
    pub items: Vec<String>,
}

/// Room kept for the line that says what was left out of a section.
const OVERFLOW_ROOM: usize = 120;

impl Document {
    /// The body of strata's pull-request comment: [`MARKER`] first, within
    /// [`COMMENT_BUDGET`], what is cut found in the job summary.
    pub fn comment(&self) -> String {
        let marker = format!("{MARKER}\n");
        marker.clone() + &self.render(COMMENT_BUDGET - marker.len(), "the job summary")
    }

    /// The job summary's text, within [`SUMMARY_BUDGET`], what is cut found in the
    /// JSON plan.
    pub fn summary(&self) -> String {
        self.render(SUMMARY_BUDGET, "the JSON plan (output `plan_json`)")
    }

    /// Renders within `budget` bytes; `elsewhere` says where the whole text is ("the
    /// job summary"). Once an item does not fit, it and every later item are cut, and
    /// each section cut says how many of its items it left out.
    pub fn render(&self, budget: usize, elsewhere: &str) -> String {
        let mut out = String::new();
        if let Some(header) = &self.header {
            out.push_str(&header.render());
            out.push('\n');
        }
        out.push_str(&self.intro);
        let reserve = OVERFLOW_ROOM * self.sections.len();
        let mut cut = false;
        for section in &self.sections {
            if section.items.is_empty() {
                continue;
            }
            let mut kept = 0;
            if !cut {
                let mut body = format!("\n{}\n", section.heading);
                for item in &section.items {
                    let addition = format!("\n{item}\n");
                    if out.len() + body.len() + addition.len() + reserve > budget {
                        cut = true;
                        break;
                    }
                    body.push_str(&addition);
                    kept += 1;
                }
                if kept > 0 {
                    out.push_str(&body);
                }
            }
            let left = section.items.len() - kept;
            if left > 0 {
                let what = section_name(&section.heading);
                let _ = writeln!(out, "\n_{left} more {what}: see {elsewhere}._");
            }
        }
        // Only a budget smaller than the intro itself gets here over it; keep the cut
        // on a character boundary.
        if out.len() > budget {
            let mut end = budget.saturating_sub("\n…\n".len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push_str("\n…\n");
        }
        out
    }
}

/// A short name for a section in the line saying what was cut from it.
fn section_name(heading: &str) -> String {
    let line = heading.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let name = line
        .trim_start_matches(['#', '>', ' '])
        .trim_start_matches("[!CAUTION]")
        .trim_start_matches("[!WARNING]")
        .trim();
    if name.is_empty() {
        "items".to_owned()
    } else {
        format!("in “{name}”")
    }
}

/// Where a plan comes from, for the line under the title.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// A link to the workflow run, when known.
    pub run_url: Option<String>,
    /// The plan was not compared with live AWS.
    pub model_only: bool,
    /// What a reviewer does to consent to deletions (`None`: nothing to say).
    pub consent_hint: Option<String>,
}

fn context_line(plan: &Plan, context: &Context) -> String {
    let mut parts = Vec::new();
    if let Some(commit) = &plan.commit {
        parts.push(format!("for commit `{}`", &commit[..12.min(commit.len())]));
    }
    if let Some(url) = &context.run_url {
        parts.push(format!("[workflow run]({url})"));
    }
    parts.join(" · ")
}

/// The document of a plan: the summary table, then deletions, replacements,
/// security-widening changes, changes to existing resources, new resources, notes and
/// unit diffs last.
pub fn plan_document(plan: &Plan, context: &Context) -> Document {
    let mut intro = String::new();
    let _ = writeln!(intro, "### strata plan");
    let line = context_line(plan, context);
    if !line.is_empty() {
        let _ = writeln!(intro, "\n{line}");
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
            "\n**No changes.** {}",
            if context.model_only {
                "The desired state is the same at the base and the head."
            } else {
                "The live state matches the repository."
            }
        );
    }
    super::render::summary_table(&mut intro, plan, true);
    let all: Vec<(&str, &str, &Action)> = plan
        .actions()
        .map(|(e, l, a)| (e.name.as_str(), l.layer.as_str(), a))
        .collect();
    let label =
        |env: &str, a: &Action| format!("`{env}`: {} {} `{}`", a.action, a.kind.describe(), a.id);
    let deletes: Vec<String> = all
        .iter()
        .filter(|(_, _, a)| a.action == ActionKind::Delete)
        .map(|(e, _, a)| format!("- {}", label(e, a)))
        .collect();
    let replaces: Vec<String> = all
        .iter()
        .filter(|(_, _, a)| a.action == ActionKind::Replace)
        .map(|(e, _, a)| {
            let why = a
                .forced_by
                .as_ref()
                .map(|f| format!(", because of {f}"))
                .unwrap_or_default();
            let rollout = if a.needs_consent() {
                ""
            } else {
                " (a rollout, one at a time)"
            };
            format!("- {}{why}{rollout}", label(e, a))
        })
        .collect();
    let consent = context
        .consent_hint
        .as_deref()
        .map(|h| format!(" {h}"))
        .unwrap_or_default();
    let mut sections = vec![
        Section {
            heading: format!(
                "> [!CAUTION]\n> This plan **deletes {} resource{}**.{consent}",
                deletes.len(),
                plural(deletes.len())
            ),
            items: deletes,
        },
        Section {
            heading: format!(
                "> [!WARNING]\n> This plan **replaces {} resource{}**.{}",
                replaces.len(),
                plural(replaces.len()),
                if all
                    .iter()
                    .any(|(_, _, a)| a.action == ActionKind::Replace && a.needs_consent())
                {
                    consent.as_str()
                } else {
                    ""
                }
            ),
            items: replaces,
        },
        Section {
            heading: "#### ⚠️ Security-widening changes".to_owned(),
            items: all
                .iter()
                .flat_map(|(e, _, a)| {
                    a.widens_security()
                        .into_iter()
                        .map(move |w| format!("- `{e}`: {w}"))
                })
                .collect(),
        },
    ];
    let block = |(env, layer, a): &(&str, &str, &Action)| action_block(env, layer, a);
    sections.push(Section {
        heading: "#### Changes to existing resources".to_owned(),
        items: all
            .iter()
            .filter(|(_, _, a)| a.action != ActionKind::Create)
            .map(block)
            .collect(),
    });
    sections.push(Section {
        heading: "#### New resources".to_owned(),
        items: all
            .iter()
            .filter(|(_, _, a)| a.action == ActionKind::Create)
            .map(block)
            .collect(),
    });
    sections.push(Section {
        heading: "#### Notes".to_owned(),
        items: plan
            .environments
            .iter()
            .flat_map(|e| {
                e.layers.iter().flat_map(move |l| {
                    l.forced_by
                        .iter()
                        .map(|r| format!("planned because {r}"))
                        .chain(l.notes.iter().cloned())
                        .map(move |n| format!("- `{}` · {}: {n}", e.name, l.layer))
                })
            })
            .collect(),
    });
    sections.push(Section {
        heading: "#### Unit diffs".to_owned(),
        items: all
            .iter()
            .filter(|(_, _, a)| !a.detail.is_empty())
            .map(|(e, _, a)| {
                format!(
                    "`{e}`: {} `{}`\n```diff\n{}\n```",
                    a.kind.describe(),
                    a.id,
                    a.detail.join("\n")
                )
            })
            .collect(),
    });
    Document {
        header: Some(Header::of(plan, context.model_only)),
        intro,
        sections,
    }
}

/// One action as a diff block: what is done, then each field change.
pub fn action_block(env: &str, layer: &str, a: &Action) -> String {
    let prefix = render::diff_marker(a.action);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "```diff\n{prefix} {env} · {layer}: {}",
        render::action_line(a)
    );
    for line in a.changes.iter().filter_map(render::change_line) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layer;
    use crate::plan::{EnvironmentPlan, FieldChange, Kind, LayerPlan, Summary};

    fn create(n: usize, detail_lines: usize) -> Action {
        Action {
            refresh: None,
            origin: None,
            action: ActionKind::Create,
            kind: Kind::SecurityGroup,
            id: crate::plan::LogicalId::SecurityGroup(format!("g{n}")),
            aws_id: None,
            changes: (0..20)
                .map(|p| FieldChange {
                    origin: None,
                    field: "ingress".to_owned(),
                    from: None,
                    to: Some(format!("tcp {p} from 10.0.0.0/8")),
                })
                .collect(),
            forced_by: None,
            detail: (0..detail_lines).map(|l| format!("+ line {l}")).collect(),
            desired: None,
            observed: None,
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        let summary = Summary::of(&actions);
        Plan {
            version: 1,
            commit: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
            summary,
            environments: vec![EnvironmentPlan {
                name: "big".to_owned(),
                region: "eu-west-1".to_owned(),
                removed: false,
                summary,
                layers: vec![LayerPlan {
                    layer: Layer::Network,
                    forced_by: None,
                    summary,
                    actions,
                    notes: Vec::new(),
                }],
            }],
        }
    }

    #[test]
    fn a_plan_over_the_budget_is_cut_by_section_and_says_what_it_left_out() {
        let big = plan((0..2000).map(|n| create(n, 3)).collect());
        let body = plan_document(&big, &Context::default()).comment();
        assert!(body.len() <= COMMENT_BUDGET, "{} bytes", body.len());
        assert!(body.starts_with(MARKER));
        assert!(body.contains("| big | network | 2000 | 0 | 0 | 0 |"));
        assert!(
            body.contains("more in “New resources”: see the job summary._"),
            "{}",
            &body[body.len() - 300..]
        );
        assert!(body.contains("_2000 more in “Unit diffs”: see the job summary._"));
        let header = Header::parse(&body).expect("the header survives the cut");
        assert_eq!(header.digests.len(), 1);
        let whole = plan_document(&big, &Context::default()).summary();
        assert!(whole.len() > COMMENT_BUDGET && whole.len() <= SUMMARY_BUDGET);
    }

    #[test]
    fn a_plan_that_fits_is_whole_and_its_header_round_trips() {
        let small = plan(vec![create(1, 2)]);
        let document = plan_document(&small, &Context::default());
        let body = document.comment();
        assert!(!body.contains("more in"));
        assert!(body.contains("+ big · network: create security group sg/g1"));
        assert!(body.contains("+ line 1"));
        assert_eq!(Header::parse(&body), document.header);
    }

    #[test]
    fn a_tiny_budget_still_gives_a_body_within_it() {
        let big = plan((0..50).map(|n| create(n, 1)).collect());
        let body = plan_document(&big, &Context::default()).render(300, "the job summary");
        assert!(body.len() <= 300);
    }
}
