//! `merge_group`: a merge queue's check. strata plans the queue's commit (its
//! `head_sha` against its `base_sha`, diffed with git) as the pull request's plan is
//! made, so the queue keeps only entries that plan; it applies nothing and posts no
//! comment (the reviewed plan stays the pull request's comment), and reports through
//! the job summary and the outputs.

use super::pull_request::{Subject, plan_change};
use super::{FailureReason, Run};
use crate::git::GitRepo;
use crate::github::event::MergeGroup;

/// Plans merge queue entry `group`; refuses a checkout that is not the queue's commit.
pub(super) async fn run(run: &mut Run<'_>, group: &MergeGroup) -> Result<(), String> {
    let workspace = run.runner.workspace.clone();
    let git = GitRepo::open(&workspace).map_err(|e| e.to_string())?;
    let resolve = |rev: &str| git.commit(rev).map_err(|e| e.to_string());
    let (checkout, head) = match (resolve("HEAD"), resolve(&group.head_sha)) {
        (Ok(checkout), Ok(head)) => (checkout, head),
        (Err(e), _) | (_, Err(e)) => {
            run.outputs.failure_reason = Some(FailureReason::ConfigError);
            return Err(format!(
                "{e}\n  hint: check out the merge queue's commit with its history (actions/checkout with `fetch-depth: 0` and no `ref`)"
            ));
        }
    };
    if checkout.reference.id != head.reference.id {
        run.outputs.failure_reason = Some(FailureReason::ConfigError);
        return Err(format!(
            "the checkout is at {}, not at the merge queue's commit {} ({})\n  hint: let actions/checkout check out the event's commit (no `ref`), so strata plans what the queue merges",
            checkout.reference.id, head.reference.id, group.head_ref
        ));
    }
    let base = resolve(&group.base_sha).map_err(|e| {
        run.outputs.failure_reason = Some(FailureReason::ConfigError);
        format!("{e}\n  hint: fetch the queue's base too (actions/checkout with `fetch-depth: 0`)")
    })?;
    run.say(&format!(
        "merge queue {}: planning what {} changes since {}; nothing is applied and no comment is posted",
        group.head_ref, head.reference.short, base.reference.short
    ));
    plan_change(run, &git, &head, &base.reference.id, Subject::MergeQueue).await
}
