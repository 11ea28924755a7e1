//! Workflow runs: whether an attempt has ended, so an apply lock its run left behind
//! is taken at once (`aws::lock`).

use std::future::Future;
use std::pin::Pin;

use http::Method;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{GitHub, GitHubError};
use crate::aws::lock::{Runs, WorkflowRun};

/// A workflow run's attempt (the fields strata reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunAttempt {
    /// `queued`, `in_progress`, `completed`, ...
    pub status: String,
    /// `success`, `failure`, `cancelled`, ... once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
}

impl GitHub {
    /// Attempt `attempt` of workflow run `id` of the repository.
    pub async fn run_attempt(&mut self, id: u64, attempt: u32) -> Result<RunAttempt, GitHubError> {
        let path = format!(
            "/repos/{}/{}/actions/runs/{id}/attempts/{attempt}",
            self.owner, self.repo
        );
        self.request(
            &format!("reading workflow run {id} (attempt {attempt})"),
            Method::GET,
            &path,
            None,
            false,
        )
        .await
    }
}

/// The repository's workflow runs, as the apply lock asks about them.
pub struct RunsOf<'a>(pub Mutex<&'a mut GitHub>);

impl Runs for RunsOf<'_> {
    fn completed<'a>(
        &'a self,
        run: &'a WorkflowRun,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut github = self.0.lock().await;
            github
                .run_attempt(run.id, run.attempt)
                .await
                .map(|a| a.status == "completed")
                .map_err(|e| e.to_string())
        })
    }
}
