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

use super::Plan;

pub mod drift;
mod picture;
mod plan;
mod words;

pub use plan::{Context, layer_block, plan_document};

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

/// A body in sections: the title and intro always appear; sections follow in document
/// order, and when the budget runs out their items are kept by priority (a lower
/// number first), each section cut from its end.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The hidden header, when there is one.
    pub header: Option<Header>,
    /// Markdown that always appears (title, context, summary table).
    pub intro: String,
    /// Sections in document order.
    pub sections: Vec<Section>,
}

/// One section: a heading shown with its first item, and items cut whole.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Markdown before the items (a heading or a banner).
    pub heading: String,
    /// Markdown blocks, each kept or cut whole.
    pub items: Vec<String>,
    /// Which sections keep their items first when the budget runs out: lower first.
    pub priority: u8,
    /// The name a cut says it left items out of (default: from the heading).
    pub name: Option<String>,
}

impl Section {
    /// A section of `items` under `heading`, kept first (priority 0).
    pub fn new(heading: impl Into<String>, items: Vec<String>) -> Section {
        Section {
            heading: heading.into(),
            items,
            priority: 0,
            name: None,
        }
    }

    /// The same section, kept after those of a lower `priority`.
    pub fn priority(mut self, priority: u8) -> Section {
        self.priority = priority;
        self
    }

    /// The same section, called `name` where a cut says what it left out.
    pub fn named(mut self, name: impl Into<String>) -> Section {
        self.name = Some(name.into());
        self
    }
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
    /// job summary"). Items are kept by section priority, then in order; once an item
    /// of a section does not fit, it and the rest of that section are cut, and each
    /// section cut says how many of its items it left out.
    pub fn render(&self, budget: usize, elsewhere: &str) -> String {
        let mut out = String::new();
        if let Some(header) = &self.header {
            out.push_str(&header.render());
            out.push('\n');
        }
        out.push_str(&self.intro);
        let kept = self.fit(budget.saturating_sub(out.len()));
        for (section, kept) in self.sections.iter().zip(kept) {
            if kept > 0 && !section.heading.is_empty() {
                let _ = writeln!(out, "\n{}", section.heading);
            }
            for item in &section.items[..kept] {
                let _ = writeln!(out, "\n{item}");
            }
            let left = section.items.len() - kept;
            if left > 0 {
                let what = match &section.name {
                    Some(name) => format!("in “{name}”"),
                    None => section_name(&section.heading),
                };
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

    /// How many items of each section fit in `room` bytes, kept by priority.
    fn fit(&self, room: usize) -> Vec<usize> {
        let with_items = self.sections.iter().filter(|s| !s.items.is_empty()).count();
        let mut used = OVERFLOW_ROOM * with_items;
        let mut kept = vec![0; self.sections.len()];
        let mut order: Vec<usize> = (0..self.sections.len()).collect();
        order.sort_by_key(|&i| (self.sections[i].priority, i));
        for i in order {
            let section = &self.sections[i];
            for item in &section.items {
                let heading = match (kept[i], section.heading.is_empty()) {
                    (0, false) => section.heading.len() + 2,
                    _ => 0,
                };
                let cost = heading + item.len() + 2;
                if used + cost > room {
                    break;
                }
                used += cost;
                kept[i] += 1;
            }
        }
        kept
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

#[cfg(test)]
mod tests;
