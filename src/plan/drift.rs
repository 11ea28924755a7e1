//! Drift and orphans (pure): what live AWS holds that the repository does not say, read
//! off a plan of every layer of every environment against the checkout, and what the
//! plan does not touch (stopped machines, volumes left behind, whole environments whose
//! file is gone).

use std::fmt::Write as _;

use serde::Serialize;

use super::{ActionKind, EnvironmentPlan, FieldChange, Kind, LogicalId, Plan};
use crate::config::Layer;

/// The JSON of `strata drift --format json` (see README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Schema version of this JSON.
    pub version: u32,
    /// The commit compared with, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Every environment checked, drifted or not.
    pub environments: Vec<EnvironmentDrift>,
    /// Resources strata tagged that no file declares.
    pub orphans: Vec<Orphan>,
    /// Environments that could not be checked (their key, image or role could not be
    /// had), each with why; the others are checked all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<super::Unplanned>,
}

/// One environment's drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentDrift {
    /// Environment name.
    pub name: String,
    /// Region.
    pub region: String,
    /// What differs; empty when it matches its file.
    pub items: Vec<Item>,
}

/// What was found of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// It differs from its file, field by field.
    Changed,
    /// The file declares it; AWS does not have it.
    Missing,
    /// A machine that is stopped.
    Stopped,
    /// Machines run another config than the one rendered from the repository.
    Config,
}

/// One drifted resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The layer it belongs to.
    pub layer: Layer,
    /// What was found.
    pub found: Found,
    /// Resource type.
    pub kind: Kind,
    /// Logical id.
    pub id: LogicalId,
    /// AWS id, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_id: Option<String>,
    /// What differs (live → file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

/// A resource strata tagged that no file declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// The environment its tags name.
    pub environment: String,
    /// Region.
    pub region: String,
    /// True when the environment itself has no file.
    pub environment_removed: bool,
    /// Resource type.
    pub kind: Kind,
    /// Logical id, from its `strata:id` tag.
    pub id: LogicalId,
    /// AWS id.
    pub aws_id: String,
    /// What to know of it (a volume's size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the plan does not show of an environment's machines.
#[derive(Debug, Clone, Default)]
pub struct Machines {
    /// Stopped (or stopping) instances: logical id, AWS id.
    pub stopped: Vec<(LogicalId, String)>,
    /// Volumes a group's instances left behind: AWS id, size and type.
    pub left_behind: Vec<(String, String)>,
}

impl Report {
    /// The report of `plan` (every layer of every environment against the checkout,
    /// and environments without a file as teardowns), with what `machines` says of
    /// each environment that the plan does not.
    pub fn of(plan: &Plan, machines: &dyn Fn(&str) -> Machines) -> Report {
        let mut environments = Vec::new();
        let mut orphans = Vec::new();
        for env in &plan.environments {
            let seen = machines(&env.name);
            for (aws_id, disk) in &seen.left_behind {
                orphans.push(Orphan {
                    environment: env.name.clone(),
                    region: env.region.clone(),
                    environment_removed: env.removed,
                    kind: Kind::Volume,
                    id: LogicalId::Launched,
                    aws_id: aws_id.clone(),
                    detail: Some(format!("{disk}, left behind by a replaced machine")),
                });
            }
            orphans.extend(deleted(env));
            if env.removed {
                continue;
            }
            let mut items = drifted(env);
            items.extend(seen.stopped.iter().map(|(id, aws_id)| Item {
                layer: Layer::Cluster,
                found: Found::Stopped,
                kind: Kind::Instance,
                id: id.clone(),
                aws_id: Some(aws_id.clone()),
                changes: Vec::new(),
            }));
            environments.push(EnvironmentDrift {
                name: env.name.clone(),
                region: env.region.clone(),
                items,
            });
        }
        Report {
            version: 1,
            commit: plan.commit.clone(),
            environments,
            orphans,
            unchecked: plan.unplanned.clone(),
        }
    }

    /// True when anything drifted or is orphaned.
    pub fn has_drift(&self) -> bool {
        !self.orphans.is_empty() || self.environments.iter().any(|e| !e.items.is_empty())
    }

    /// The names of the environments that drifted: something differs, or something
    /// tagged for them is declared by no file.
    pub fn drifted(&self) -> Vec<&str> {
        self.environments
            .iter()
            .filter(|e| {
                !e.items.is_empty()
                    || self
                        .orphans
                        .iter()
                        .any(|o| o.environment == e.name && !o.environment_removed)
            })
            .map(|e| e.name.as_str())
            .collect()
    }
}

/// An environment's actions other than deletions, as drift.
fn drifted(env: &EnvironmentPlan) -> Vec<Item> {
    env.layers
        .iter()
        .flat_map(|l| l.actions.iter().map(move |a| (l.layer, a)))
        .filter(|(_, a)| a.action != ActionKind::Delete)
        .map(|(layer, a)| {
            let config_only =
                !a.changes.is_empty() && a.changes.iter().all(|c| c.field == "config");
            let found = match (a.action, a.kind) {
                (ActionKind::Create, _) => Found::Missing,
                (_, Kind::NodeConfig) => Found::Config,
                (_, Kind::Instance) if config_only => Found::Config,
                _ => Found::Changed,
            };
            Item {
                layer,
                found,
                kind: a.kind,
                id: a.id.clone(),
                aws_id: a.aws_id.clone(),
                changes: a.changes.clone(),
            }
        })
        .collect()
}

/// An environment's deletions: resources its tags name that its file does not declare
/// (all of them, for an environment whose file is gone).
fn deleted(env: &EnvironmentPlan) -> Vec<Orphan> {
    env.layers
        .iter()
        .flat_map(|l| &l.actions)
        // The node config is the template's user data, not a resource of its own.
        .filter(|a| a.action == ActionKind::Delete && a.kind != Kind::NodeConfig)
        .map(|a| Orphan {
            environment: env.name.clone(),
            region: env.region.clone(),
            environment_removed: env.removed,
            kind: a.kind,
            id: a.id.clone(),
            aws_id: a.aws_id.clone().unwrap_or_default(),
            detail: match a.observed.as_ref().map(|o| &o.spec) {
                Some(super::Spec::Volume(v)) => {
                    Some(format!("{} GiB {}", v.size_gb, v.volume_type))
                }
                _ => None,
            },
        })
        .collect()
}

/// `strata drift`'s text: a line per drifted resource and orphan, or that all matches.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for u in &report.unchecked {
        let _ = writeln!(out, "{} ({}): could not be checked", u.name, u.region);
    }
    for env in &report.environments {
        if env.items.is_empty() {
            let _ = writeln!(out, "{} ({}): matches its file", env.name, env.region);
            continue;
        }
        let _ = writeln!(
            out,
            "{} ({}): {} drifted",
            env.name,
            env.region,
            env.items.len()
        );
        for item in &env.items {
            let what = match item.found {
                Found::Changed => "changed",
                Found::Missing => "missing",
                Found::Stopped => "stopped",
                Found::Config => "runs another config",
            };
            let aws = item
                .aws_id
                .as_ref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {what}: {} {}{aws}", item.kind.describe(), item.id);
            for line in item.changes.iter().filter_map(super::render::change_line) {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if !report.orphans.is_empty() {
        let _ = writeln!(
            out,
            "orphans: {} tagged by strata, declared by no file",
            report.orphans.len()
        );
        for o in &report.orphans {
            let whose = match o.environment_removed {
                true => format!("{} (no file)", o.environment),
                false => o.environment.clone(),
            };
            let detail = o
                .detail
                .as_ref()
                .map(|d| format!(", {d}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {whose} ({}): {} {} ({}{detail})",
                o.region,
                o.kind.describe(),
                o.id,
                o.aws_id
            );
        }
    }
    if !report.has_drift() {
        let _ = writeln!(out, "no drift: AWS matches the repository");
    }
    out
}
