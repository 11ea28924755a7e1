//! The words of a plan comment: the verdict that names the riskiest effect, one line
//! per action, and field changes in human words (no digests, no placeholders, no
//! filler).

use super::super::render::{diff_marker, plural};
use super::super::{Action, ActionKind, EnvironmentPlan, FieldChange, Kind, Origin, Plan};

/// The verdict: the riskiest effect of the plan with its count (deletions, then
/// replacements that need consent, then machines rolled, then security widened), then
/// what else it does. Starts with an icon.
pub fn verdict(plan: &Plan) -> String {
    let planned = planned_verdict(plan);
    match plan.unplanned.as_slice() {
        [] => planned,
        [one] => format!("❌ `{}` could not be planned · {planned}", one.name),
        many => format!(
            "❌ {} environments could not be planned · {planned}",
            many.len()
        ),
    }
}

/// The verdict of what was planned.
fn planned_verdict(plan: &Plan) -> String {
    let s = plan.summary;
    if plan.is_empty() {
        return "✅ No changes".to_owned();
    }
    let envs = |pick: &dyn Fn(&EnvironmentPlan) -> bool| {
        let names: Vec<&str> = plan
            .environments
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.name.as_str())
            .collect();
        match names.as_slice() {
            [one] => format!("`{one}`"),
            many => format!("{} environments", many.len()),
        }
    };
    let changed = plan
        .environments
        .iter()
        .filter(|e| e.summary.total() > 0)
        .count();
    let removed: Vec<&EnvironmentPlan> = plan
        .environments
        .iter()
        .filter(|e| e.removed && e.summary.total() > 0)
        .collect();
    let widening = plan
        .actions()
        .filter(|(_, _, a)| !a.widens_security().is_empty())
        .count();
    let risk = if let [env] = removed.as_slice() {
        Some(format!(
            "🛑 Tears down `{}`: deletes {} resource{}",
            env.name,
            env.summary.delete,
            plural(env.summary.delete)
        ))
    } else if s.delete > 0 {
        Some(format!(
            "🛑 Deletes {} resource{} in {}",
            s.delete,
            plural(s.delete),
            envs(&|e| e.summary.delete > 0)
        ))
    } else if s.replace > 0 {
        Some(format!(
            "⚠️ Replaces {} resource{} in {}",
            s.replace,
            plural(s.replace),
            envs(&|e| e.summary.replace > 0)
        ))
    } else if s.rollout > 0 {
        Some(format!(
            "🔄 Rolls {} machine{} of {}, one at a time",
            s.rollout,
            plural(s.rollout),
            envs(&|e| e.summary.rollout > 0)
        ))
    } else if widening > 0 {
        Some(format!(
            "🔓 Opens {widening} resource{} to the internet",
            plural(widening)
        ))
    } else {
        None
    };
    let mut rest = Vec::new();
    if s.create > 0 {
        rest.push(format!("creates {}", s.create));
    }
    if s.update > 0 {
        rest.push(format!("updates {}", s.update));
    }
    let rest = match (rest.is_empty(), changed) {
        (true, _) => String::new(),
        // The risk names the one environment already.
        (false, 1) if risk.is_some() => format!(
            "{} resource{}",
            rest.join(", "),
            plural(s.create + s.update)
        ),
        (false, _) => format!(
            "{} resource{} in {}",
            rest.join(", "),
            plural(s.create + s.update),
            envs(&|e| e.summary.create + e.summary.update > 0)
        ),
    };
    match (risk, rest.is_empty()) {
        (Some(risk), true) => risk,
        (Some(risk), false) => format!("{risk} · {rest}"),
        (None, _) => {
            let mut first = rest.chars();
            let rest = first
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + first.as_str())
                .unwrap_or_default();
            format!("✅ {rest}")
        }
    }
}

/// The counts of a summary in words, only those not zero: `3 created, 1 updated, 3
/// machines rolled`.
pub fn counts(s: super::super::Summary) -> String {
    let mut parts = Vec::new();
    for (n, word) in [
        (s.create, "created"),
        (s.update, "updated"),
        (s.replace, "replaced"),
        (s.delete, "deleted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if s.rollout > 0 {
        parts.push(format!("{} machine{} rolled", s.rollout, plural(s.rollout)));
    }
    match parts.is_empty() {
        true => "no changes".to_owned(),
        false => parts.join(", "),
    }
}

/// The verb of an action: a replacement that needs no consent is a roll.
pub fn verb(a: &Action) -> &'static str {
    match a.action {
        ActionKind::Replace if !a.needs_consent() => "roll",
        other => other.as_str(),
    }
}

/// The field changes of `a` from `origin` (all, with `None`), in words, joined.
pub fn changes(a: &Action, origin: Option<Origin>) -> String {
    if matches!(a.action, ActionKind::Create | ActionKind::Delete) {
        return String::new();
    }
    // A group's refresh is said once, by the line (`rolls 3 machines ...`).
    let said_by_line = |c: &&FieldChange| {
        a.refresh.is_some() && matches!(c.field.as_str(), "launch_template_version" | "rollout")
    };
    let words: Vec<String> = a
        .changes
        .iter()
        .filter(|c| origin.is_none() || c.origin.is_none() || c.origin == origin)
        .filter(|c| !said_by_line(c))
        .filter_map(|c| change(a, c))
        .collect();
    // A line a reviewer reads at a glance: what fits in about 80 characters, then a count.
    const ROOM: usize = 80;
    let mut shown = Vec::new();
    let mut length = 0;
    for w in &words {
        if !shown.is_empty() && length + w.len() > ROOM {
            break;
        }
        length += w.len() + 2;
        shown.push(w.as_str());
    }
    match words.len() - shown.len() {
        0 => shown.join("; "),
        n => format!("{}; and {n} more", shown.join("; ")),
    }
}

/// One field change in words: `cidr 10.0.0.0/20 → 10.0.0.0/21`, `ingress + tcp 443
/// from 0.0.0.0/0`; a digest is said as what it stands for.
pub fn change(a: &Action, c: &FieldChange) -> Option<String> {
    let field = c.field.as_str();
    let digest = |v: &Option<String>| v.as_deref().is_some_and(|v| v.starts_with("sha256:"));
    if digest(&c.from) || digest(&c.to) {
        return Some(
            match (field, a.kind) {
                ("config", Kind::NodeConfig) => "new config (unit diff below)",
                ("config", _) => "boots the new config",
                ("volumes_and_profile", _) => "new root volume or instance profile",
                _ => "changed",
            }
            .to_owned(),
        );
    }
    match (field, &c.from, &c.to) {
        ("launch_template_version", Some(from), Some(_)) => Some(format!(
            "template version {from} → the one this apply makes"
        )),
        ("rollout", _, Some(how)) => Some(format!("then {how}")),
        ("depends_on", Some(_), Some(to)) => {
            Some(format!("follows the new {}", to.trim_end_matches(" (new)")))
        }
        (_, Some(from), Some(to)) if *to == format!("{from} (new)") => {
            Some(format!("{field}: the new {from}"))
        }
        (_, Some(from), Some(to)) => Some(format!("{field} {from} → {to}")),
        (_, None, Some(to)) => Some(format!("{field} + {to}")),
        (_, Some(from), None) => Some(format!("{field} − {from}")),
        (_, None, None) => None,
    }
}

/// An action's line in an environment's change list: marker, verb, id, then what
/// changes (or, when no change of its own says it, why); ids padded to `width` so the
/// list reads as columns. A replacement a field of its own forces says no more: its
/// verb and the field's change say it.
pub fn line(a: &Action, origin: Option<Origin>, width: usize) -> String {
    let mut tail = changes(a, origin);
    if tail.is_empty()
        && let Some(why) = a.forced_by.as_deref().filter(|w| w.contains(' '))
    {
        tail = format!("because {why}");
    }
    if let Some(refresh) = refresh(a) {
        tail = match tail.is_empty() {
            true => refresh,
            false => format!("{tail}; {refresh}"),
        };
    }
    let id = a.id.to_string();
    format!(
        "{} {:<7} {:<width$}  {tail}",
        diff_marker(a.action),
        verb(a),
        id
    )
    .trim_end()
    .to_owned()
}

/// One field change of `a` as a line of a layer's details: every value, in words
/// where it is a digest; a new resource's fields without those it leaves unset.
pub fn detail(a: &Action, c: &FieldChange) -> Option<String> {
    match a.action {
        ActionKind::Create => match c.to.as_deref() {
            None | Some("none") | Some("") => None,
            Some(v) if v.starts_with("sha256:") => Some(format!("+   {}: rendered", c.field)),
            Some(v) => Some(format!("+   {}: {v}", c.field)),
        },
        ActionKind::Delete => None,
        ActionKind::Update | ActionKind::Replace => {
            let words = change(a, c)?;
            let origin = match c.origin {
                Some(Origin::Drift) => "   (drift)",
                _ => "",
            };
            Some(format!("    {words}{origin}"))
        }
    }
}

/// A group's instance refresh in words: how many machines, onto what, how.
fn refresh(a: &Action) -> Option<String> {
    use super::super::spec::AutoScalingGroup;
    let machines = a.refresh?;
    let how = match a.desired.as_ref().map(|d| &d.spec) {
        Some(super::super::Spec::AutoScalingGroup(AutoScalingGroup {
            min_healthy_percent,
            warmup_seconds,
            ..
        })) => format!(" ({min_healthy_percent}% kept in service, {warmup_seconds}s warm-up)"),
        _ => String::new(),
    };
    Some(format!(
        "rolls {machines} machine{} onto the new template version{how}",
        plural(usize::from(machines))
    ))
}
