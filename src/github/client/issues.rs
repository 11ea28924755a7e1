//! The issues strata keeps (one per drifted environment): found again by a hidden
//! marker at the start of the body *and* the token's own login, never one written by
//! someone else; opened (never by a blindly retried POST), edited, closed with a
//! comment.

use http::Method;
use serde::Deserialize;

use super::{Comment, GitHub, GitHubError, User, same_login};

/// An issue (the fields strata reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// Its number.
    pub number: u64,
    /// Its title.
    pub title: String,
    /// Its text.
    #[serde(default)]
    pub body: Option<String>,
    /// Who opened it.
    pub user: Option<User>,
    /// `open` or `closed`.
    pub state: String,
    /// Present when the "issue" is a pull request (the issues API lists both).
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
    /// Its page.
    #[serde(default)]
    pub html_url: Option<String>,
}

impl Issue {
    /// True when `login` opened it and its body starts with `marker`: strata's own.
    pub fn is_ours(&self, marker: &str, login: &str) -> bool {
        self.body.as_deref().is_some_and(|b| b.starts_with(marker))
            && self
                .user
                .as_ref()
                .is_some_and(|u| same_login(&u.login, login))
    }
}

impl GitHub {
    /// Every open issue of the repository (pull requests left out), across pages.
    pub async fn open_issues(&mut self) -> Result<Vec<Issue>, GitHubError> {
        const PER_PAGE: usize = 100;
        let mut all = Vec::new();
        for page in 1.. {
            let path = format!(
                "/repos/{}/{}/issues?state=open&per_page={PER_PAGE}&page={page}",
                self.owner, self.repo
            );
            let batch: Vec<Issue> = self
                .request("listing the open issues", Method::GET, &path, None, false)
                .await?;
            let last = batch.len() < PER_PAGE;
            all.extend(batch.into_iter().filter(|i| i.pull_request.is_none()));
            if last {
                break;
            }
        }
        Ok(all)
    }

    /// The open issue `login` opened whose body starts with `marker`, if any.
    pub async fn find_issue(
        &mut self,
        marker: &str,
        login: &str,
    ) -> Result<Option<Issue>, GitHubError> {
        let open = self.open_issues().await?;
        Ok(open.into_iter().find(|i| i.is_ours(marker, login)))
    }

    /// Keeps one open issue with `marker` by `login`: edits it (`existing`, or found
    /// again) when there is one, else opens it. An open that fails for a passing
    /// reason is not retried blindly: the issues are read again first, in case GitHub
    /// made it.
    pub async fn upsert_issue(
        &mut self,
        marker: &str,
        login: &str,
        existing: Option<u64>,
        title: &str,
        body: &str,
    ) -> Result<Issue, GitHubError> {
        if let Some(number) = existing {
            return self.edit_issue(number, title, body).await;
        }
        let path = format!("/repos/{}/{}/issues", self.owner, self.repo);
        let payload = serde_json::json!({ "title": title, "body": body });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened = self
                .request::<Issue>(
                    &format!("opening the issue “{title}”"),
                    Method::POST,
                    &path,
                    Some(&payload),
                    true,
                )
                .await;
            match opened {
                Ok(issue) => return Ok(issue),
                Err(e) if attempt < self.policy.attempts && e.passing => {
                    self.pause(e.wait, attempt).map_err(|_| e)?;
                    if let Some(found) = self.find_issue(marker, login).await? {
                        return self.edit_issue(found.number, title, body).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets issue `number`'s title and body.
    pub async fn edit_issue(
        &mut self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<Issue, GitHubError> {
        let path = format!("/repos/{}/{}/issues/{number}", self.owner, self.repo);
        let payload = serde_json::json!({ "title": title, "body": body });
        self.request(
            &format!("editing issue #{number}"),
            Method::PATCH,
            &path,
            Some(&payload),
            false,
        )
        .await
    }

    /// Comments `why` on issue `number`, then closes it as completed.
    pub async fn close_issue(&mut self, number: u64, why: &str) -> Result<Issue, GitHubError> {
        let comments = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.owner, self.repo
        );
        let comment = serde_json::json!({ "body": why });
        self.request::<Comment>(
            &format!("commenting on issue #{number}"),
            Method::POST,
            &comments,
            Some(&comment),
            true,
        )
        .await?;
        let path = format!("/repos/{}/{}/issues/{number}", self.owner, self.repo);
        let payload = serde_json::json!({ "state": "closed", "state_reason": "completed" });
        self.request(
            &format!("closing issue #{number}"),
            Method::PATCH,
            &path,
            Some(&payload),
            false,
        )
        .await
    }
}
