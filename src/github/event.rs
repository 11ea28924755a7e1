//! The event that started the run, read from `$GITHUB_EVENT_PATH`: only the fields
//! strata acts on, so a payload GitHub extends keeps working.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The events `strata action` handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `pull_request`.
    PullRequest(PullRequest),
    /// `push`.
    Push(Push),
    /// `workflow_dispatch`.
    WorkflowDispatch(Dispatch),
    /// `merge_group`: a merge queue's entry to check.
    MergeGroup(MergeGroup),
    /// `schedule`: a drift check.
    Schedule,
}

/// A `pull_request` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `opened`, `synchronize`, `reopened`, ...
    pub action: String,
    /// The pull request number.
    pub number: u64,
    /// `pull_request.base.sha` (stale when the base moved without a sync).
    pub base_sha: String,
    /// `pull_request.head.sha`.
    pub head_sha: String,
    /// Label names.
    pub labels: Vec<String>,
}

/// A `push` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `ref`, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// `after`: the pushed commit.
    pub after: String,
    /// `repository.default_branch`.
    pub default_branch: String,
}

/// A `workflow_dispatch` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The workflow's inputs as given (strings, booleans or numbers, as text).
    pub inputs: BTreeMap<String, String>,
    /// `ref`.
    pub git_ref: String,
}

/// A `merge_group` event (`checks_requested`): the commit a merge queue made of its
/// base and the pull requests ahead of and in this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeGroup {
    /// `merge_group.base_sha`: the target branch the queue builds on.
    pub base_sha: String,
    /// `merge_group.head_sha`: the queue's commit, what the merge makes the branch.
    pub head_sha: String,
    /// `merge_group.head_ref`, e.g. `refs/heads/gh-readonly-queue/main/pr-104-…`.
    pub head_ref: String,
}

/// Why the event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// An event strata has nothing to do for.
    #[error(
        "event `{0}` is not one strata handles\n  hint: run strata on pull_request, merge_group, push, workflow_dispatch or schedule"
    )]
    Unsupported(String),
    /// The payload is not what GitHub sends.
    #[error(
        "reading the {event} event payload: {message}\n  hint: the runner writes it to $GITHUB_EVENT_PATH; do not replace it"
    )]
    Malformed {
        /// The event.
        event: String,
        /// What is wrong, with the field.
        message: String,
    },
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    pull_request: PullRequestBody,
}

#[derive(Deserialize)]
struct PullRequestBody {
    base: GitRef,
    head: GitRef,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct GitRef {
    sha: String,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: Repository,
}

#[derive(Deserialize)]
struct Repository {
    default_branch: String,
}

#[derive(Deserialize)]
struct MergeGroupPayload {
    merge_group: MergeGroupBody,
}

#[derive(Deserialize)]
struct MergeGroupBody {
    base_sha: String,
    head_sha: String,
    head_ref: String,
}

#[derive(Deserialize)]
struct DispatchPayload {
    #[serde(default)]
    inputs: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "ref")]
    git_ref: String,
}

/// Reads the payload of event `name`.
pub fn parse(name: &str, payload: &[u8]) -> Result<Event, EventError> {
    let malformed = |e: serde_json::Error| EventError::Malformed {
        event: name.to_owned(),
        message: e.to_string(),
    };
    Ok(match name {
        "pull_request" => {
            let p: PullRequestPayload = serde_json::from_slice(payload).map_err(malformed)?;
            Event::PullRequest(PullRequest {
                action: p.action,
                number: p.number,
                base_sha: p.pull_request.base.sha,
                head_sha: p.pull_request.head.sha,
                labels: p.pull_request.labels.into_iter().map(|l| l.name).collect(),
            })
        }
        "push" => {
            let p: PushPayload = serde_json::from_slice(payload).map_err(malformed)?;
            Event::Push(Push {
                git_ref: p.git_ref,
                after: p.after,
                default_branch: p.repository.default_branch,
            })
        }
        // The payload names the cron line only: nothing to read.
        "schedule" => Event::Schedule,
        "workflow_dispatch" => {
            let p: DispatchPayload = serde_json::from_slice(payload).map_err(malformed)?;
            Event::WorkflowDispatch(Dispatch {
                inputs: p
                    .inputs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, text)
                    })
                    .collect(),
                git_ref: p.git_ref,
            })
        }
        "merge_group" => {
            let p: MergeGroupPayload = serde_json::from_slice(payload).map_err(malformed)?;
            Event::MergeGroup(MergeGroup {
                base_sha: p.merge_group.base_sha,
                head_sha: p.merge_group.head_sha,
                head_ref: p.merge_group.head_ref,
            })
        }
        other => return Err(EventError::Unsupported(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_events_and_missing_fields_are_named() {
        assert_eq!(
            parse("issues", b"{}").unwrap_err(),
            EventError::Unsupported("issues".to_owned())
        );
        let err = parse("push", br#"{"ref": "refs/heads/main"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `after`"), "{err}");
        let err = parse("pull_request", b"not json").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("reading the pull_request event payload: "),
            "{err}"
        );
    }

    #[test]
    fn a_merge_group_names_its_base_and_head() {
        let event = parse(
            "merge_group",
            br#"{"action": "checks_requested", "merge_group": {"head_sha": "2ffea6db", "head_ref": "refs/heads/gh-readonly-queue/main/pr-104-929f8209", "base_sha": "380387fb", "base_ref": "refs/heads/main"}}"#,
        )
        .unwrap();
        let Event::MergeGroup(group) = event else {
            panic!("a merge group")
        };
        assert_eq!(
            (group.base_sha.as_str(), group.head_sha.as_str()),
            ("380387fb", "2ffea6db")
        );
        let err = parse(
            "merge_group",
            br#"{"merge_group": {"head_sha": "2ffea6db"}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("missing field `base_sha`"),
            "{err}"
        );
    }

    #[test]
    fn dispatch_inputs_become_text() {
        let event = parse(
            "workflow_dispatch",
            br#"{"ref": "refs/heads/main", "inputs": {"environment": "web", "allow_destroy": true}}"#,
        )
        .unwrap();
        let Event::WorkflowDispatch(d) = event else {
            panic!("a dispatch")
        };
        assert_eq!(d.inputs["allow_destroy"], "true");
        assert_eq!(d.inputs["environment"], "web");
    }
}
