//! The commands that read live AWS: `plan`, `apply` (under the apply locks) and
//! `drift`.

use std::io::Write;

use super::{ApplyArgs, Cli, DriftArgs, Format, PlanArgs, PlanFormat, Selection, report};
use crate::aws::Connector;
use crate::aws::lock::{self, LockSettings};
use crate::engine;
use crate::exit::Outcome;
use crate::plan::render;
use crate::selection::{self, SelectError, Work};

/// What `selection` picks, and the AWS connection to plan it with.
async fn selected(
    cli: &Cli,
    selection: &Selection,
    err: &mut dyn Write,
) -> anyhow::Result<Result<(Work, Connector), Outcome>> {
    let work = match selection::select(&cli.repo, &selection.into()) {
        Ok(w) => w,
        Err(SelectError::Invalid(diagnostics)) => return report(err, &diagnostics).map(Err),
        Err(e) => return Err(e.into()),
    };
    Ok(Ok((work, Connector::from_env().await)))
}

/// `strata drift`: the checkout's environments (those asked for) against live AWS,
/// with the orphans; exit 2 when anything drifted.
pub(super) async fn drift(
    cli: &Cli,
    args: &DriftArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let asked = Selection {
        envs: args.envs.clone(),
        ..Default::default()
    };
    let (work, connector) = match selected(cli, &asked, err).await? {
        Ok((work, connector)) => (work, connector.read_only()),
        Err(outcome) => return Ok(outcome),
    };
    // Every environment checked: those without a file are looked for too.
    let regions = match args.envs.is_empty() {
        true => Some(selection::orphan_regions(
            &cli.repo,
            connector.default_region(),
        )?),
        false => None,
    };
    let report = engine::drift(
        &connector,
        &work.targets,
        &work.units,
        work.commit.as_deref(),
        regions.as_deref(),
    )
    .await?;
    match args.format {
        Format::Text => out.write_all(crate::plan::drift::text(&report).as_bytes())?,
        Format::Json => {
            let json = serde_json::to_string_pretty(&report).expect("a report serialises");
            writeln!(out, "{json}")?;
        }
    }
    // The others are checked and reported; an environment that could not be is an
    // error.
    if !report.unchecked.is_empty() {
        return Err(engine::EngineError::Unplanned(report.unchecked).into());
    }
    Ok(match report.has_drift() {
        true => Outcome::Changes,
        false => Outcome::Success,
    })
}

/// The plan `strata plan` shows, made through a connector that reads only.
async fn planned(
    cli: &Cli,
    selection: &Selection,
    err: &mut dyn Write,
) -> anyhow::Result<Result<(Work, Connector, crate::plan::Plan, engine::Observations), Outcome>> {
    let (work, connector) = match selected(cli, selection, err).await? {
        Ok((work, connector)) => (work, connector.read_only()),
        Err(outcome) => return Ok(Err(outcome)),
    };
    let (plan, observations) = engine::plan(
        &connector,
        &work.targets,
        &work.units,
        work.base.as_ref(),
        work.commit.as_deref(),
    )
    .await?;
    Ok(Ok((work, connector, plan, observations)))
}

pub(super) async fn plan(
    cli: &Cli,
    args: &PlanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let (_, _, plan, _) = match planned(cli, &args.selection, err).await? {
        Ok(planned) => planned,
        Err(outcome) => return Ok(outcome),
    };
    match args.format {
        PlanFormat::Markdown => out.write_all(render::markdown(&plan).as_bytes())?,
        PlanFormat::Json => out.write_all(render::json(&plan).as_bytes())?,
    }
    // The others are planned and shown; the run still fails.
    if !plan.unplanned.is_empty() {
        return Err(engine::EngineError::Unplanned(plan.unplanned).into());
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

pub(super) async fn apply(
    cli: &Cli,
    args: &ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let (work, connector) = match selected(cli, &args.selection, err).await? {
        Ok(selected) => selected,
        Err(outcome) => return Ok(outcome),
    };
    // The plan is made under the lock, so it sees what an apply before it left.
    let settings = LockSettings::from_env(std::time::Duration::from_secs(args.lock_wait));
    let mut say = |line: &str| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let locks = lock::acquire(&connector, &work.targets, &settings, None, &mut say).await?;
    let result = locks
        .guard(plan_and_apply(&work, &connector, args, out))
        .await;
    if let Err(e) = locks.release().await {
        writeln!(err, "warning: {e}\n  the lock ends with its lease")?;
    }
    result?
}

/// `strata apply` once its environments are locked: plan, then apply.
async fn plan_and_apply(
    work: &Work,
    connector: &Connector,
    args: &ApplyArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let (plan, observations) = engine::plan(
        connector,
        &work.targets,
        &work.units,
        work.base.as_ref(),
        work.commit.as_deref(),
    )
    .await?;
    out.write_all(render::markdown(&plan).as_bytes())?;
    let applied = if plan.is_empty() {
        // Nothing to change, but the commit is still recorded where an earlier apply
        // stopped after its last change and before recording it.
        engine::apply(
            connector,
            &plan,
            &observations,
            &work.targets,
            false,
            usize::from(args.parallel),
            &mut |_| {},
        )
        .await
        .map(|_| None)
    } else {
        writeln!(out, "\nApplying:")?;
        let mut progress = |line: &str| {
            // Progress is best effort: a closed stdout must not abort an apply half-way.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        engine::apply(
            connector,
            &plan,
            &observations,
            &work.targets,
            args.allow_destroy,
            usize::from(args.parallel),
            &mut progress,
        )
        .await
        .map(Some)
    };
    match &applied {
        Ok(None) => writeln!(out, "\nNothing to apply.")?,
        Ok(Some(applied)) => {
            writeln!(
                out,
                "\nApplied {} change{}.",
                applied.actions,
                render::plural(applied.actions)
            )?;
            // Nothing lost silently: the volumes the plan said go or stay, said again.
            for env in &plan.environments {
                for v in &env.data_volumes {
                    writeln!(out, "{}: {}", env.name, render::data_volume(v))?;
                }
            }
        }
        Err(_) => {}
    }
    // Environments that could not be planned were not applied: the run fails with
    // them, after the others.
    let unplanned = (!plan.unplanned.is_empty())
        .then(|| engine::EngineError::Unplanned(plan.unplanned.clone()));
    match (applied, unplanned) {
        (Ok(_), None) => Ok(Outcome::Success),
        (Ok(_), Some(unplanned)) => Err(unplanned.into()),
        (Err(e), None) => Err(e.into()),
        (Err(e), Some(unplanned)) => Err(engine::EngineError::Several(vec![e, unplanned]).into()),
    }
}
