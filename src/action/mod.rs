//! `strata action`: the GitHub Action. Reads the runner's contract and the event,
//! then plans a pull request (`pull_request`) or a merge queue's entry
//! (`merge_group`), applies a merge (`push`), or does what a manual run asks
//! (`workflow_dispatch`, in `push`), and reports through the log,
//! the step's outputs, the job summary and one comment per pull request.

mod drift;
mod lock;
mod merge_group;
mod pull_request;
mod push;
mod record;

use std::io::Write;

use crate::diagnostic::Diagnostics;
use crate::exit::Outcome;
use crate::github::client::Upserted;
use crate::github::event::{self, Event};
use crate::github::runner::{self, Mode, command};
use crate::github::{GitHub, GitHubError, Inputs, RetryPolicy, Runner};
use crate::plan::comment::{self, Document};
use crate::plan::{Plan, render};
use crate::redact;

/// Why a run failed, as the `failure_reason` output says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The repository or the action's inputs have problems.
    ConfigError,
    /// The plan could not be made (an AWS read, the image feed).
    PlanFailed,
    /// The plan differs from the one reviewed on the pull request.
    PlanChanged,
    /// The plan deletes or replaces resources and consent was not given.
    NeedsConsent,
    /// Apply failed part-way; the next run converges.
    ApplyFailed,
    /// Another apply of the same environment held its lock past `lock_wait`.
    Locked,
    /// A drift check found drift and `fail_on_drift` is set.
    Drift,
}

impl FailureReason {
    /// The output's value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ConfigError => "config-error",
            FailureReason::PlanFailed => "plan-failed",
            FailureReason::PlanChanged => "plan-changed",
            FailureReason::NeedsConsent => "needs-consent",
            FailureReason::ApplyFailed => "apply-failed",
            FailureReason::Locked => "locked",
            FailureReason::Drift => "drift",
        }
    }
}

/// The step's outputs.
#[derive(Debug, Clone, Default)]
struct Outputs {
    changed_environments: Vec<String>,
    has_changes: bool,
    plan_json: Option<String>,
    failure_reason: Option<FailureReason>,
    /// A drift check's findings: whether anything drifted, and which environments.
    drift: Option<Vec<String>>,
}

/// One run of the action: the runner's contract, the inputs, the log and GitHub.
pub(crate) struct Run<'a> {
    runner: Runner,
    inputs: Inputs,
    log: &'a mut dyn Write,
    outputs: Outputs,
    github: Option<GitHub>,
    login: Option<String>,
    /// How many of the registered secrets the runner was told to mask.
    masked: usize,
}

/// The label that consents, on the merged pull request, to deletions and replacements.
pub const ALLOW_DESTROY_LABEL: &str = "strata:allow-destroy";

/// What a reviewer does to consent to deletions and replacements on merge.
const CONSENT_HINT: &str = "Applying it on merge needs the label `strata:allow-destroy` on this pull request \
     (or `allow_destroy: true` in the workflow).";

/// The file the JSON plan is written to, in the workspace (a Docker action's
/// `RUNNER_TEMP` is not mounted), for `actions/upload-artifact`.
const PLAN_JSON: &str = "strata-plan.json";

/// Runs the action with the process environment; everything goes to `log`.
pub fn run(log: &mut dyn Write) -> anyhow::Result<Outcome> {
    let var = |name: &str| std::env::var(name).ok();
    let runner = match Runner::from_vars(&var) {
        Ok(r) => r,
        Err(e) => {
            writeln!(log, "{}", command("error", &e.to_string()))?;
            return Ok(Outcome::Failed);
        }
    };
    let inputs = match Inputs::from_vars(&var) {
        Ok(i) => i,
        Err(e) => return refuse(log, &runner, &e.to_string()),
    };
    let event = std::fs::read(&runner.event_path)
        .map_err(|e| {
            format!(
                "reading the event payload {}: {e}",
                runner.event_path.display()
            )
        })
        .and_then(|payload| event::parse(&runner.event_name, &payload).map_err(|e| e.to_string()));
    let event = match event {
        Ok(e) => e,
        Err(message) => return refuse(log, &runner, &message),
    };
    if let Some(token) = &inputs.github_token {
        redact::register(token);
    }
    let mut run = Run {
        runner,
        inputs,
        log,
        outputs: Outputs::default(),
        github: None,
        login: None,
        masked: 0,
    };
    let runtime = crate::runtime::new()?;
    let result = runtime.block_on(async {
        match (&event, run.inputs.mode) {
            (_, Mode::Drift) | (Event::Schedule, Mode::Auto) => drift::run(&mut run).await,
            (Event::PullRequest(pr), _) => pull_request::run(&mut run, pr).await,
            (Event::MergeGroup(group), _) => merge_group::run(&mut run, group).await,
            (Event::Push(push), _) => push::run_push(&mut run, push).await,
            (Event::WorkflowDispatch(dispatch), _) => push::run_dispatch(&mut run, dispatch).await,
            (Event::Schedule, _) => Err(
                "a schedule runs a drift check\n  hint: use mode: drift (or auto) on schedule"
                    .to_owned(),
            ),
        }
    });
    if let Err(e) = &result {
        run.say(&command("error", &e.to_string()));
    }
    write_outputs(&run.runner, &run.outputs)?;
    Ok(match (result, run.outputs.failure_reason) {
        (Ok(()), None) => Outcome::Success,
        _ => Outcome::Failed,
    })
}

/// Ends a run that cannot start (its inputs or event are wrong): the error, and
/// `failure_reason: config-error`.
fn refuse(log: &mut dyn Write, runner: &Runner, message: &str) -> anyhow::Result<Outcome> {
    writeln!(log, "{}", command("error", message))?;
    write_outputs(
        runner,
        &Outputs {
            failure_reason: Some(FailureReason::ConfigError),
            ..Outputs::default()
        },
    )?;
    Ok(Outcome::Failed)
}

fn write_outputs(runner: &Runner, outputs: &Outputs) -> std::io::Result<()> {
    let Some(path) = &runner.output else {
        return Ok(());
    };
    let changed =
        serde_json::to_string(&outputs.changed_environments).expect("a list of names serialises");
    runner::write_outputs(
        path,
        &[
            ("changed_environments", changed),
            ("has_changes", outputs.has_changes.to_string()),
            ("plan_json", outputs.plan_json.clone().unwrap_or_default()),
            (
                "failure_reason",
                outputs
                    .failure_reason
                    .map(FailureReason::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            (
                "has_drift",
                outputs
                    .drift
                    .as_ref()
                    .map(|d| (!d.is_empty()).to_string())
                    .unwrap_or_default(),
            ),
            (
                "drifted_environments",
                outputs
                    .drift
                    .as_ref()
                    .map(|d| serde_json::to_string(d).expect("a list of names serialises"))
                    .unwrap_or_default(),
            ),
        ],
    )
}

impl Run<'_> {
    /// The work of `selection` in the workspace; `None` when the repository has
    /// problems, which are reported (annotations and the summary).
    async fn select(
        &mut self,
        selection: &crate::selection::Selection,
    ) -> Result<Option<crate::selection::Work>, String> {
        use crate::selection::SelectError;
        match crate::selection::select(&self.runner.workspace.clone(), selection) {
            Ok(work) => Ok(Some(work)),
            Err(SelectError::Invalid(diagnostics)) => {
                let sha = self.runner.sha.clone();
                self.report_problems(&diagnostics, &sha, None).await;
                Ok(None)
            }
            Err(e) => {
                self.outputs.failure_reason = Some(FailureReason::ConfigError);
                Err(e.to_string())
            }
        }
    }

    /// The AWS connector, or the run stops when the job has no credentials: `needs`
    /// says what needs them (`a drift check reads live AWS`), `role` which role to give.
    async fn credentials(
        &mut self,
        needs: &str,
        role: &str,
    ) -> Result<crate::aws::Connector, String> {
        let connector = crate::aws::Connector::from_env().await;
        if !connector.has_credentials().await {
            self.outputs.failure_reason = Some(FailureReason::PlanFailed);
            return Err(format!(
                "no AWS credentials: {needs}\n  hint: give the job {role} (aws-actions/configure-aws-credentials)"
            ));
        }
        Ok(connector)
    }

    /// One log line, with every secret read so far hidden; newly read secrets are
    /// registered with the runner first.
    fn say(&mut self, line: &str) {
        self.mask_secrets();
        // The log is best effort: a closed stdout must not stop an apply half-way.
        let _ = writeln!(self.log, "{}", redact::apply(line));
        let _ = self.log.flush();
    }

    /// `::add-mask::` for each secret not yet registered with the runner.
    fn mask_secrets(&mut self) {
        let secrets = redact::registered();
        for secret in secrets.iter().skip(self.masked) {
            let _ = writeln!(self.log, "{}", runner::mask(secret));
        }
        self.masked = secrets.len();
    }

    fn group(&mut self, title: &str, lines: &str) {
        self.say(&command("group", title));
        for line in lines.lines() {
            self.say(line);
        }
        self.say("::endgroup::");
    }

    /// Logs each environment's and layer's plan in a group of its own.
    fn log_plan(&mut self, plan: &Plan) {
        for env in &plan.environments {
            for layer in &env.layers {
                // This layer alone, without copying the rest of the plan.
                let single = Plan::new(
                    plan.commit.clone(),
                    vec![crate::plan::EnvironmentPlan {
                        account: None,
                        resources: Vec::new(),
                        data_volumes: Vec::new(),
                        trust: Vec::new(),
                        name: env.name.clone(),
                        region: env.region.clone(),
                        removed: env.removed,
                        summary: layer.summary,
                        layers: vec![layer.clone()],
                    }],
                );
                let text = render::markdown(&single);
                self.group(&format!("{} · {} layer", env.name, layer.layer), &text);
            }
        }
    }

    /// Writes the plan JSON into the workspace and names it in the outputs.
    fn write_plan_json(&mut self, plan: &Plan) {
        let path = self.runner.workspace.join(PLAN_JSON);
        match std::fs::write(&path, redact::apply(&render::json(plan))) {
            Ok(()) => self.outputs.plan_json = Some(PLAN_JSON.to_owned()),
            Err(e) => self.say(&command(
                "warning",
                &format!("could not write the JSON plan to {}: {e}", path.display()),
            )),
        }
    }

    /// Appends to the job summary (whole, within GitHub's 1 MiB).
    fn summary(&mut self, document: &Document) {
        let Some(path) = self.runner.step_summary.clone() else {
            return;
        };
        let text = redact::apply(&document.summary());
        if let Err(e) = runner::append_summary(&path, &text) {
            self.say(&command(
                "warning",
                &format!("could not write the job summary: {e}"),
            ));
        }
    }

    /// Error annotations on the files' lines (GitHub shows the first 10 of a step;
    /// the summary lists them all).
    fn annotate(&mut self, diagnostics: &Diagnostics, commit_short: &str) {
        for d in diagnostics.0.iter().take(10) {
            let prefix = format!("{commit_short}:");
            let path = d.path.strip_prefix(&prefix).unwrap_or(&d.path).to_owned();
            self.say(&runner::error_annotation(d, &path));
        }
    }

    /// Reports configuration problems at `commit`: annotations, the summary listing
    /// them all, and the comment on pull request `pull`; the run fails as a
    /// configuration error.
    async fn report_problems(
        &mut self,
        diagnostics: &Diagnostics,
        commit: &str,
        pull: Option<u64>,
    ) {
        self.outputs.failure_reason = Some(FailureReason::ConfigError);
        self.annotate(diagnostics, &commit[..12.min(commit.len())]);
        let document = problems_document(diagnostics, commit);
        self.report(&document, pull).await;
    }

    /// Reports that no plan could be made, and why; the run fails with `reason`.
    async fn report_failure(&mut self, reason: FailureReason, error: &str, pull: Option<u64>) {
        self.outputs.failure_reason = Some(reason);
        let document = Document {
            header: None,
            intro: format!("### strata plan could not be made\n\n```\n{error}\n```\n"),
            sections: Vec::new(),
        };
        self.report(&document, pull).await;
    }

    /// Reports a plan: the outputs, a log group per environment and layer, the JSON
    /// plan and the job summary; returns its document for a comment.
    /// What a plan's document links to; `base` is the commit a pull request's changes
    /// are told from drift against.
    fn plan_context(&self, model_only: bool, base: Option<&str>) -> comment::Context {
        comment::Context {
            run_url: self.runner.run_url(),
            model_only,
            consent_hint: Some(CONSENT_HINT.to_owned()),
            repository_url: Some(self.runner.repository_url()),
            base: base.map(str::to_owned),
        }
    }

    /// Where an apply record is written from.
    fn record_origin(&self) -> record::Origin {
        record::Origin {
            run: match (&self.runner.run_id, self.runner.run_url()) {
                (Some(id), Some(url)) => format!("[run {id}]({url})"),
                _ => "this run".to_owned(),
            },
            workflow: self.runner.workflow.clone(),
            context: self.plan_context(false, None),
        }
    }

    /// `base` is the commit a pull request's changes are told from drift against.
    fn report_plan(&mut self, plan: &Plan, model_only: bool, base: Option<&str>) -> Document {
        self.outputs.has_changes = !plan.is_empty();
        self.log_plan(plan);
        self.write_plan_json(plan);
        let context = self.plan_context(model_only, base);
        let document = comment::plan_document(plan, &context);
        self.summary(&document);
        document
    }

    /// The job summary and, for pull request `pull`, its comment.
    async fn report(&mut self, document: &Document, pull: Option<u64>) {
        self.summary(document);
        if let Some(number) = pull {
            self.keep_comment(number, document, false).await;
        }
    }

    /// The GitHub client and the token's login, made on first use; `None` without a
    /// token or when comments are off.
    async fn github(&mut self) -> Option<(&mut GitHub, String)> {
        if self.github.is_none() {
            let token = self.inputs.github_token.clone()?;
            match GitHub::new(
                &self.runner.api_url,
                &self.runner.graphql_url,
                &token,
                &self.runner.owner,
                &self.runner.repo,
                RetryPolicy::default(),
            ) {
                Ok(client) => self.github = Some(client),
                Err(e) => {
                    self.say(&command("warning", &e.to_string()));
                    return None;
                }
            }
        }
        let github = self.github.as_mut()?;
        if self.login.is_none() {
            self.login = Some(github.viewer_login().await);
        }
        Some((self.github.as_mut()?, self.login.clone()?))
    }

    /// The body of strata's comment on pull request `number` as GitHub has it now;
    /// `None` without one, without a token, with comments off, or when it cannot be
    /// read.
    async fn comment_body(&mut self, number: u64) -> Option<String> {
        if !self.inputs.comment {
            return None;
        }
        let (github, login) = self.github().await?;
        let found = github.find_comment(number, comment::MARKER, &login).await;
        found.ok().flatten().and_then(|c| c.body)
    }

    /// Keeps strata's one comment on pull request `number`: creates or edits it with
    /// `document`; with `only_update`, edits an existing one and creates none. A
    /// comment that cannot be posted never fails the run: the summary has it all.
    async fn keep_comment(&mut self, number: u64, document: &Document, only_update: bool) {
        self.keep_comment_over(number, &|_| document.clone(), only_update)
            .await;
    }

    /// [`Run::keep_comment`] with the document made from the comment as it is
    /// (`None` when there is none yet), read in the same look that finds it.
    async fn keep_comment_over(
        &mut self,
        number: u64,
        compose: &dyn Fn(Option<&str>) -> Document,
        only_update: bool,
    ) {
        if !self.inputs.comment {
            return;
        }
        let Some((github, login)) = self.github().await else {
            self.say(&command(
                "notice",
                "no github_token: the plan is in the job summary only",
            ));
            return;
        };
        let result: Result<Option<Upserted>, GitHubError> = async {
            let existing = github.find_comment(number, comment::MARKER, &login).await?;
            if only_update && existing.is_none() {
                return Ok(None);
            }
            let document = compose(existing.as_ref().and_then(|c| c.body.as_deref()));
            let body = redact::apply(&document.comment());
            github
                .upsert_comment(
                    number,
                    comment::MARKER,
                    &login,
                    existing.map(|c| c.id),
                    &body,
                )
                .await
                .map(Some)
        }
        .await;
        match result {
            Ok(Some(Upserted::Created(id))) => self.say(&format!("comment {id} posted on #{number}")),
            Ok(Some(Upserted::Updated(id))) => self.say(&format!("comment {id} on #{number} updated")),
            Ok(None) => {}
            Err(e) if e.is_forbidden() => self.say(&command(
                "notice",
                &format!(
                    "strata could not comment on #{number} (the token is read-only, as on a fork's pull request); the plan is in the job summary\n{e}"
                ),
            )),
            Err(e) => self.say(&command(
                "warning",
                &format!("strata could not comment on #{number}; the plan is in the job summary\n{e}"),
            )),
        }
    }
}

/// The document saying why no plan could be made: configuration problems, all of
/// them, each at its file and line.
fn problems_document(diagnostics: &Diagnostics, commit: &str) -> Document {
    let n = diagnostics.0.len();
    let files: std::collections::BTreeSet<&str> =
        diagnostics.0.iter().map(|d| d.path.as_str()).collect();
    let mut intro = format!(
        "### ❌ No plan: {n} problem{} in {} file{}\n",
        render::plural(n),
        files.len(),
        render::plural(files.len())
    );
    intro.push_str(&format!(
        "\nThe repository at `{}` has {n} problem{}; nothing was planned and nothing in AWS was read. Fix {} and push again (`strata validate` shows the same, locally).\n",
        &commit[..12.min(commit.len())],
        render::plural(n),
        if n == 1 { "it" } else { "them" },
    ));
    // One block per file, its problems in order.
    let items = files
        .iter()
        .map(|file| {
            let lines: Vec<String> = diagnostics
                .0
                .iter()
                .filter(|d| d.path == *file)
                .map(ToString::to_string)
                .collect();
            format!("`{file}`\n```\n{}\n```", lines.join("\n"))
        })
        .collect();
    Document {
        header: None,
        intro,
        sections: vec![comment::Section::new("#### Problems", items)],
    }
}
