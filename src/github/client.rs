//! GitHub's REST and GraphQL APIs through octocrab, at `GITHUB_API_URL` and
//! `GITHUB_GRAPHQL_URL` (so GitHub Enterprise Server and a local test server work).
//!
//! Requests are serial. strata decides retries itself (octocrab's retry layer is not
//! compiled in): 5xx, 429, and 403s of a rate limit are retried with backoff, waiting
//! `retry-after` or until `x-ratelimit-reset` when GitHub says so, under a capped total
//! wait. A wait GitHub asks for is the client's, not one request's: it is kept as the
//! instant before which no request of any kind is sent (a retry, the next call, a
//! fallback such as REST after GraphQL), and a request that would have to wait past
//! the capped total fails without being sent. A comment is never created by a retried
//! POST: [`GitHub::upsert_comment`] looks for its own comment again before posting anew.

use std::time::Duration;

mod issues;
mod runs;
pub use issues::Issue;
pub use runs::{RunAttempt, RunsOf};

use http::{HeaderMap, Method, StatusCode};
use octocrab::Octocrab;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// A comment on an issue or pull request (the fields strata reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// Its text.
    #[serde(default)]
    pub body: Option<String>,
    /// Who wrote it.
    pub user: Option<User>,
    /// Its page.
    #[serde(default)]
    pub html_url: Option<String>,
}

/// A GitHub account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// Login, e.g. `github-actions[bot]`.
    pub login: String,
}

/// A pull request (the fields strata reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// `open` or `closed`.
    #[serde(default)]
    pub state: Option<String>,
    /// When it was merged.
    #[serde(default)]
    pub merged_at: Option<String>,
}

/// A label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// Its name.
    pub name: String,
}

/// A GitHub request that failed for good.
#[derive(Debug, thiserror::Error)]
#[error("GitHub: {what}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct GitHubError {
    /// What strata was doing, e.g. `listing the comments of #12`.
    pub what: String,
    /// The status, when GitHub answered.
    pub status: Option<u16>,
    /// What GitHub (or the connection) said.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// GitHub or the connection failed for a passing reason (5xx, 429, a rate limit,
    /// no answer): the same request may succeed later.
    pub passing: bool,
    /// How long GitHub asked to wait before trying again.
    pub wait: Option<Duration>,
}

impl GitHubError {
    /// True when the token may not do this (a fork's read-only token).
    pub fn is_forbidden(&self) -> bool {
        matches!(self.status, Some(401 | 403 | 404))
    }
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles after each attempt.
    pub backoff: Duration,
    /// The most strata waits in all, over every retry of the run.
    pub total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(1),
            total_wait: Duration::from_secs(120),
        }
    }
}

/// A client for one repository.
pub struct GitHub {
    rest: Octocrab,
    graphql: Octocrab,
    graphql_path: String,
    owner: String,
    repo: String,
    policy: RetryPolicy,
    waited: Duration,
    /// No request is sent before this instant: the end of the last wait GitHub asked
    /// for (a secondary rate limit, an exhausted primary one) or of a backoff.
    not_before: Option<Instant>,
}

/// Where a comment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new comment.
    Created(u64),
    /// An existing one, edited in place.
    Updated(u64),
}

impl GitHub {
    /// A client for `owner/repo` at `api_url` and `graphql_url`, with `token`.
    pub fn new(
        api_url: &str,
        graphql_url: &str,
        token: &str,
        owner: &str,
        repo: &str,
        policy: RetryPolicy,
    ) -> Result<GitHub, GitHubError> {
        let build = |base: &str| {
            Octocrab::builder()
                .base_uri(base)
                .and_then(|b| {
                    b.personal_token(token.to_owned())
                        .set_connect_timeout(Some(Duration::from_secs(10)))
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .build()
                })
                .map_err(|e| GitHubError {
                    what: format!("connecting to {base}"),
                    status: None,
                    message: e.to_string(),
                    hint: Some("check GITHUB_API_URL and GITHUB_GRAPHQL_URL".to_owned()),
                    passing: false,
                    wait: None,
                })
        };
        // octocrab sends the token only to paths under its base, so GraphQL gets a
        // client of its own: GitHub Enterprise Server serves it beside, not under, /api/v3.
        let graphql_url = graphql_url.trim_end_matches('/');
        let (graphql_base, graphql_path) = match graphql_url.strip_suffix("/graphql") {
            Some(base) => (base.to_owned(), "/graphql".to_owned()),
            None => (graphql_url.to_owned(), "/".to_owned()),
        };
        Ok(GitHub {
            rest: build(api_url.trim_end_matches('/'))?,
            graphql: build(&graphql_base)?,
            graphql_path,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            policy,
            waited: Duration::ZERO,
            not_before: None,
        })
    }

    /// The token's own login: GraphQL `viewer` (an installation token may not read
    /// `GET /user`), then `GET /user`, else the Actions bot.
    pub async fn viewer_login(&mut self) -> String {
        let query = serde_json::json!({ "query": "query { viewer { login } }" });
        #[derive(Deserialize)]
        struct Data {
            data: Option<Viewer>,
        }
        #[derive(Deserialize)]
        struct Viewer {
            viewer: User,
        }
        let path = self.graphql_path.clone();
        if let Ok(Data {
            data: Some(Viewer { viewer }),
        }) = self
            .request::<Data>(
                "asking who the token is",
                Method::POST,
                &path,
                Some(&query),
                true,
            )
            .await
        {
            return viewer.login;
        }
        if let Ok(user) = self
            .request::<User>(
                "reading the token's user",
                Method::GET,
                "/user",
                None,
                false,
            )
            .await
        {
            return user.login;
        }
        "github-actions[bot]".to_owned()
    }

    /// Every comment of issue or pull request `number`, across all pages.
    pub async fn comments(&mut self, number: u64) -> Result<Vec<Comment>, GitHubError> {
        const PER_PAGE: usize = 100;
        let mut all = Vec::new();
        for page in 1.. {
            let path = format!(
                "/repos/{}/{}/issues/{number}/comments?per_page={PER_PAGE}&page={page}",
                self.owner, self.repo
            );
            let batch: Vec<Comment> = self
                .request(
                    &format!("listing the comments of #{number}"),
                    Method::GET,
                    &path,
                    None,
                    false,
                )
                .await?;
            let last = batch.len() < PER_PAGE;
            all.extend(batch);
            if last {
                break;
            }
        }
        Ok(all)
    }

    /// The comment on `number` that `login` wrote with `marker`, if any; a marked
    /// comment by anyone else is not strata's.
    pub async fn find_comment(
        &mut self,
        number: u64,
        marker: &str,
        login: &str,
    ) -> Result<Option<Comment>, GitHubError> {
        Ok(self.comments(number).await?.into_iter().find(|c| {
            c.body.as_deref().is_some_and(|b| b.starts_with(marker))
                && c.user.as_ref().is_some_and(|u| same_login(&u.login, login))
        }))
    }

    /// Edits the comment `id`.
    pub async fn update_comment(&mut self, id: u64, body: &str) -> Result<Comment, GitHubError> {
        let path = format!("/repos/{}/{}/issues/comments/{id}", self.owner, self.repo);
        let payload = serde_json::json!({ "body": body });
        self.request(
            &format!("editing comment {id}"),
            Method::PATCH,
            &path,
            Some(&payload),
            false,
        )
        .await
    }

    /// Keeps one comment with `marker` by `login` on `number`: edits it when there is
    /// one (`existing`, or found again), else creates it. A create that fails for a
    /// passing reason is not retried blindly: the comments are read again first, in
    /// case GitHub made it before failing the request.
    pub async fn upsert_comment(
        &mut self,
        number: u64,
        marker: &str,
        login: &str,
        existing: Option<u64>,
        body: &str,
    ) -> Result<Upserted, GitHubError> {
        if let Some(id) = existing {
            return self
                .update_comment(id, body)
                .await
                .map(|c| Upserted::Updated(c.id));
        }
        let path = format!(
            "/repos/{}/{}/issues/{number}/comments",
            self.owner, self.repo
        );
        let payload = serde_json::json!({ "body": body });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .request::<Comment>(
                    &format!("commenting on #{number}"),
                    Method::POST,
                    &path,
                    Some(&payload),
                    true,
                )
                .await;
            match result {
                Ok(comment) => return Ok(Upserted::Created(comment.id)),
                Err(e) if attempt < self.policy.attempts && e.passing => {
                    self.pause(e.wait, attempt).map_err(|_| e)?;
                    if let Some(found) = self.find_comment(number, marker, login).await? {
                        return self
                            .update_comment(found.id, body)
                            .await
                            .map(|c| Upserted::Updated(c.id));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The pull requests a commit belongs to (a merged PR's merge commit names it).
    pub async fn pulls_of_commit(&mut self, sha: &str) -> Result<Vec<PullRequest>, GitHubError> {
        let path = format!("/repos/{}/{}/commits/{sha}/pulls", self.owner, self.repo);
        self.request(
            &format!("finding the pull request of {sha}"),
            Method::GET,
            &path,
            None,
            false,
        )
        .await
    }

    /// Sends one request; with `once`, a failure is returned at once (the caller
    /// decides), otherwise passing failures are retried under the policy.
    async fn request<T: DeserializeOwned>(
        &mut self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        once: bool,
    ) -> Result<T, GitHubError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.hold(what).await?;
            let client = if method == Method::POST && path == self.graphql_path {
                &self.graphql
            } else {
                &self.rest
            };
            let sent = match method {
                Method::GET => client._get(path).await,
                Method::PATCH => client._patch(path, body).await,
                _ => client._post(path, body).await,
            };
            let (status, headers, text) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match client.body_to_string(response).await {
                        Ok(text) => (Some(status), headers, text),
                        Err(e) => (None, headers, e.to_string()),
                    }
                }
                Err(e) => (None, HeaderMap::new(), crate::diagnostic::error_chain(&e)),
            };
            if let Some(status) = status.filter(StatusCode::is_success) {
                return serde_json::from_str(&text).map_err(|e| GitHubError {
                    what: what.to_owned(),
                    status: Some(status.as_u16()),
                    message: format!("unexpected answer: {e}: {}", start_of(&text)),
                    hint: None,
                    passing: false,
                    wait: None,
                });
            }
            let error = GitHubError {
                what: what.to_owned(),
                status: status.map(|s| s.as_u16()),
                message: match status {
                    Some(s) => format!("HTTP {}: {}", s.as_u16(), start_of(&text)),
                    None => text.clone(),
                },
                hint: hint(status, &text),
                passing: passing(status, &headers, &text),
                wait: wait_from_headers(&headers),
            };
            // A wait GitHub asked for binds every later request, whoever sends it.
            if error.passing
                && let Some(wait) = error.wait
            {
                self.defer(wait);
            }
            if once || !error.passing || attempt >= self.policy.attempts {
                return Err(error);
            }
            self.pause(error.wait, attempt).map_err(|_| error)?;
        }
    }

    /// Sends nothing before `wait` from now (nor before an earlier, longer wait).
    fn defer(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        self.not_before = Some(self.not_before.map_or(until, |t| t.max(until)));
    }

    /// How long the next request must wait.
    fn pending_wait(&self) -> Duration {
        self.not_before
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Prepares attempt `attempt + 1`: GitHub's own wait when it asked for one
    /// (already the client's), else the backoff; refuses when the wait would pass
    /// the total. The next request waits it out in [`GitHub::hold`].
    fn pause(&mut self, asked: Option<Duration>, attempt: u32) -> Result<(), ()> {
        if asked.is_none() {
            self.defer(self.policy.backoff * 2u32.saturating_pow(attempt.saturating_sub(1)));
        }
        if self.waited + self.pending_wait() > self.policy.total_wait {
            return Err(());
        }
        Ok(())
    }

    /// Waits until a request may be sent; fails without sending when that wait would
    /// pass the capped total.
    async fn hold(&mut self, what: &str) -> Result<(), GitHubError> {
        let wait = self.pending_wait();
        if wait.is_zero() {
            return Ok(());
        }
        if self.waited + wait > self.policy.total_wait {
            return Err(GitHubError {
                what: what.to_owned(),
                status: None,
                message: format!(
                    "not sent: GitHub asked strata to wait {} s more, past the {} s strata waits in all",
                    wait.as_secs_f64().ceil(),
                    self.policy.total_wait.as_secs()
                ),
                hint: Some("GitHub's rate limit held for longer than strata waits; run the job again later".to_owned()),
                passing: true,
                wait: Some(wait),
            });
        }
        self.waited += wait;
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Logins compared as GitHub shows them: GraphQL names a bot without the `[bot]`
/// suffix that REST comments carry.
pub fn same_login(a: &str, b: &str) -> bool {
    a.trim_end_matches("[bot]")
        .eq_ignore_ascii_case(b.trim_end_matches("[bot]"))
}

fn passing(status: Option<StatusCode>, headers: &HeaderMap, body: &str) -> bool {
    let Some(status) = status else {
        // No answer at all: the connection failed.
        return true;
    };
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (headers.contains_key("retry-after")
                || header(headers, "x-ratelimit-remaining") == Some("0")
                || body.to_ascii_lowercase().contains("rate limit")))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What GitHub asked for: `retry-after` seconds, or until `x-ratelimit-reset` when
/// no requests remain.
fn wait_from_headers(headers: &HeaderMap) -> Option<Duration> {
    if let Some(seconds) = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header(headers, "x-ratelimit-remaining") == Some("0") {
        let reset = header(headers, "x-ratelimit-reset")?.parse::<u64>().ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    None
}

fn hint(status: Option<StatusCode>, body: &str) -> Option<String> {
    Some(match status.map(|s| s.as_u16()) {
        None => "could not reach GitHub; check GITHUB_API_URL".to_owned(),
        Some(401) => "the token is not valid; pass `github_token`".to_owned(),
        Some(403) if body.to_ascii_lowercase().contains("rate limit") => {
            "GitHub's rate limit held for longer than strata waits; run the job again later".to_owned()
        }
        Some(403 | 404) => "the token may not do this: give the job `pull-requests: write` (a fork's pull request gets a read-only token)".to_owned(),
        _ => return None,
    })
}

fn start_of(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
