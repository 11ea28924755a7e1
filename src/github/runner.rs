//! The runner's side of the contract: the `GITHUB_*` variables, the action's inputs
//! (`INPUT_<NAME>`), and the files and workflow commands a step talks back through
//! (`::error::`, `::group::`, `::add-mask::`, `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Layer;
use crate::diagnostic::Diagnostic;

/// A variable or input the runner gave wrongly, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}\n  hint: {hint}")]
pub struct ContractError {
    /// The variable or input.
    pub name: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

fn contract_error(
    name: &str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ContractError {
    ContractError {
        name: name.to_owned(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// What the runner tells a step about its run.
#[derive(Debug, Clone)]
pub struct Runner {
    /// `GITHUB_EVENT_NAME`.
    pub event_name: String,
    /// `GITHUB_EVENT_PATH`.
    pub event_path: PathBuf,
    /// `GITHUB_REPOSITORY` split into owner and name.
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// `GITHUB_SHA`: the commit checked out.
    pub sha: String,
    /// `GITHUB_REF`.
    pub git_ref: String,
    /// `GITHUB_API_URL`.
    pub api_url: String,
    /// `GITHUB_GRAPHQL_URL`.
    pub graphql_url: String,
    /// `GITHUB_WORKSPACE`: the checkout.
    pub workspace: PathBuf,
    /// `GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `GITHUB_WORKFLOW`: the running workflow's name, what a person picks to run it by hand.
    pub workflow: Option<String>,
}

impl Runner {
    /// Reads the contract through `var` (the process environment in production).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Runner, ContractError> {
        let required = |name: &str| {
            var(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                contract_error(
                    name,
                    "is not set",
                    "`strata action` runs inside a GitHub Actions job; use `strata plan` or `strata apply` elsewhere",
                )
            })
        };
        let repository = required("GITHUB_REPOSITORY")?;
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| {
                contract_error(
                    "GITHUB_REPOSITORY",
                    format!("`{repository}` is not `owner/name`"),
                    "the runner sets it; do not override it",
                )
            })?;
        let api_url = var("GITHUB_API_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "https://api.github.com".to_owned());
        Ok(Runner {
            event_name: required("GITHUB_EVENT_NAME")?,
            event_path: required("GITHUB_EVENT_PATH")?.into(),
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            sha: required("GITHUB_SHA")?,
            git_ref: var("GITHUB_REF").unwrap_or_default(),
            graphql_url: var("GITHUB_GRAPHQL_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| format!("{}/graphql", api_url.trim_end_matches('/'))),
            api_url,
            workspace: required("GITHUB_WORKSPACE")?.into(),
            output: var("GITHUB_OUTPUT")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            step_summary: var("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(Into::into),
            server_url: var("GITHUB_SERVER_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "https://github.com".to_owned()),
            run_id: var("GITHUB_RUN_ID").filter(|v| !v.is_empty()),
            workflow: var("GITHUB_WORKFLOW").filter(|v| !v.is_empty()),
        })
    }

    /// The repository's web address, `https://github.com/owner/repo`.
    pub fn repository_url(&self) -> String {
        format!(
            "{}/{}/{}",
            self.server_url.trim_end_matches('/'),
            self.owner,
            self.repo
        )
    }

    /// The workflow run's web address, when the run id is known.
    pub fn run_url(&self) -> Option<String> {
        self.run_id.as_ref().map(|id| {
            format!(
                "{}/{}/{}/actions/runs/{id}",
                self.server_url.trim_end_matches('/'),
                self.owner,
                self.repo
            )
        })
    }

    /// The pull request number of a `refs/pull/<n>/merge` checkout.
    pub fn merge_ref_number(&self) -> Option<u64> {
        self.git_ref
            .strip_prefix("refs/pull/")?
            .strip_suffix("/merge")?
            .parse()
            .ok()
    }
}

/// `mode`: what the action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plan on a pull request, apply on a push, as asked on a manual run.
    Auto,
    /// Plan only.
    Plan,
    /// Apply.
    Apply,
    /// Compare live AWS with the default branch, keep one issue per drifted
    /// environment (the default on `schedule`).
    Drift,
}

/// The action's inputs, validated (the runner passes any text through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// `mode`.
    pub mode: Mode,
    /// `environment` (`None`: what changed).
    pub environment: Option<String>,
    /// `layer` (empty: all).
    pub layers: Vec<Layer>,
    /// `allow_destroy`.
    pub allow_destroy: bool,
    /// `github_token`.
    pub github_token: Option<String>,
    /// `comment`.
    pub comment: bool,
    /// `require_approved_plan`.
    pub require_approved_plan: bool,
    /// `lock_wait`: seconds an apply waits for another apply of its environments.
    pub lock_wait: u64,
    /// `parallel`: how many environments an apply works on at once.
    pub parallel: usize,
    /// `fail_on_drift`: a drift check that finds drift fails the job.
    pub fail_on_drift: bool,
}

impl Inputs {
    /// Reads `INPUT_<NAME>` through `var`; an empty input takes its default.
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Inputs, ContractError> {
        let input = |name: &str| {
            var(&format!("INPUT_{}", name.to_uppercase()))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let flag = |name: &str, default: bool| match input(name).as_deref() {
            None => Ok(default),
            Some("true" | "True" | "TRUE") => Ok(true),
            Some("false" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(contract_error(
                &format!("input `{name}`"),
                format!("`{other}` is not a boolean"),
                "use true or false",
            )),
        };
        let mode = match input("mode").as_deref() {
            None | Some("auto") => Mode::Auto,
            Some("plan") => Mode::Plan,
            Some("apply") => Mode::Apply,
            Some("drift") => Mode::Drift,
            Some(other) => {
                return Err(contract_error(
                    "input `mode`",
                    format!("unknown mode `{other}`"),
                    "use auto, plan, apply or drift",
                ));
            }
        };
        let layers = parse_layers(input("layer").as_deref().unwrap_or("all"))?;
        let lock_wait = match input("lock_wait") {
            None => 300,
            Some(text) => text.parse::<u64>().map_err(|_| {
                contract_error(
                    "input `lock_wait`",
                    format!("`{text}` is not a number of seconds"),
                    "use a whole number of seconds, such as 300",
                )
            })?,
        };
        let parallel = match input("parallel") {
            None => usize::from(crate::engine::DEFAULT_PARALLEL),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    contract_error(
                        "input `parallel`",
                        format!("`{text}` is not a number of environments from 1 to 256"),
                        "use a whole number such as 4 (1 applies one environment at a time)",
                    )
                })?,
        };
        Ok(Inputs {
            mode,
            environment: input("environment"),
            layers,
            allow_destroy: flag("allow_destroy", false)?,
            github_token: input("github_token"),
            comment: flag("comment", true)?,
            require_approved_plan: flag("require_approved_plan", false)?,
            lock_wait,
            parallel,
            fail_on_drift: flag("fail_on_drift", false)?,
        })
    }
}

/// `layer`: `all`, or layers separated by commas (`all`: an empty list).
pub fn parse_layers(text: &str) -> Result<Vec<Layer>, ContractError> {
    if text.trim() == "all" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|l| match l.trim() {
            "network" => Ok(Layer::Network),
            "cluster" => Ok(Layer::Cluster),
            "node" => Ok(Layer::Node),
            other => Err(contract_error(
                "input `layer`",
                format!("unknown layer `{other}`"),
                "use network, cluster, node or all",
            )),
        })
        .collect()
}

/// Escapes a workflow command's message (`%`, CR, LF).
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=…,line=…,col=…::message` for a problem in a file (the path relative
/// to the workspace, as the runner wants it).
pub fn error_annotation(d: &Diagnostic, path: &str) -> String {
    let mut properties = vec![format!("file={}", escape_property(path))];
    if let Some(line) = d.line {
        properties.push(format!("line={line}"));
    }
    if let Some(col) = d.column {
        properties.push(format!("col={col}"));
    }
    properties.push("title=strata".to_owned());
    let message = match &d.hint {
        Some(hint) => format!("{}\nhint: {hint}", d.message),
        None => d.message.clone(),
    };
    format!(
        "::error {}::{}",
        properties.join(","),
        escape_data(&message)
    )
}

/// `::add-mask::value`: the runner hides the value in every later log line.
pub fn mask(value: &str) -> String {
    format!("::add-mask::{}", escape_data(value))
}

/// A workflow command with a message: `::<name>::message` (`notice`, `warning`, `error`, `group`).
pub fn command(name: &str, message: &str) -> String {
    format!("::{name}::{}", escape_data(message))
}

/// Appends `name=value` pairs to `$GITHUB_OUTPUT`, each in the multi-line form with a
/// delimiter of its own that the value does not contain.
pub fn write_outputs(path: &Path, outputs: &[(&str, String)]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for (n, (name, value)) in outputs.iter().enumerate() {
        let mut delimiter = delimiter(n);
        while value.contains(&delimiter) {
            delimiter.push('_');
        }
        writeln!(file, "{name}<<{delimiter}\n{value}\n{delimiter}")?;
    }
    Ok(())
}

/// A delimiter no one can predict, so a value cannot end its own output early.
fn delimiter(n: usize) -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = Sha256::digest(format!("{nanos}\0{}\0{n}", std::process::id()));
    let hex: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("ghadelimiter_{hex}")
}

/// Appends markdown to `$GITHUB_STEP_SUMMARY`.
pub fn append_summary(path: &Path, markdown: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(markdown.as_bytes())?;
    if !markdown.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn inputs_take_their_defaults_when_empty_and_refuse_unknown_values() {
        let inputs =
            Inputs::from_vars(&vars(&[("INPUT_MODE", ""), ("INPUT_COMMENT", "")])).unwrap();
        assert_eq!(inputs.mode, Mode::Auto);
        assert!(inputs.comment && !inputs.allow_destroy && !inputs.require_approved_plan);
        assert!(inputs.layers.is_empty());
        let err = Inputs::from_vars(&vars(&[("INPUT_MODE", "destroy")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `mode`: unknown mode `destroy`\n  hint: use auto, plan, apply or drift"
        );
        let err = Inputs::from_vars(&vars(&[("INPUT_LAYER", "nodes")])).unwrap_err();
        assert!(err.to_string().contains("unknown layer `nodes`"));
        let err = Inputs::from_vars(&vars(&[("INPUT_ALLOW_DESTROY", "yes")])).unwrap_err();
        assert!(err.to_string().contains("`yes` is not a boolean"));
        let inputs = Inputs::from_vars(&vars(&[
            ("INPUT_LAYER", "cluster"),
            ("INPUT_ALLOW_DESTROY", "true"),
        ]))
        .unwrap();
        assert_eq!(inputs.layers, vec![Layer::Cluster]);
        assert!(inputs.allow_destroy);
    }

    #[test]
    fn annotations_escape_their_properties_and_message() {
        let d = Diagnostic::at("environments/a,b.yaml", 3, Some(7), "50% off\nnext")
            .with_hint("do: this");
        assert_eq!(
            error_annotation(&d, "environments/a,b.yaml"),
            "::error file=environments/a%2Cb.yaml,line=3,col=7,title=strata::50%25 off%0Anext%0Ahint: do: this"
        );
    }

    #[test]
    fn outputs_use_a_delimiter_the_value_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        write_outputs(&path, &[("a", "one\ntwo".to_owned()), ("b", String::new())]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("a<<ghadelimiter_"));
        assert_eq!(&lines[1..3], &["one", "two"]);
        assert_eq!(lines[3], lines[0].trim_start_matches("a<<"));
    }

    #[test]
    fn the_runner_contract_names_what_is_missing() {
        let err = Runner::from_vars(&vars(&[("GITHUB_REPOSITORY", "o/r")])).unwrap_err();
        assert_eq!(err.name, "GITHUB_EVENT_NAME");
        let runner = Runner::from_vars(&vars(&[
            ("GITHUB_REPOSITORY", "octo/infra"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", "/e.json"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_WORKSPACE", "/w"),
            ("GITHUB_API_URL", "https://ghe.example/api/v3"),
            ("GITHUB_RUN_ID", "42"),
        ]))
        .unwrap();
        assert_eq!(runner.merge_ref_number(), Some(7));
        assert_eq!(runner.graphql_url, "https://ghe.example/api/v3/graphql");
        assert_eq!(
            runner.run_url().unwrap(),
            "https://github.com/octo/infra/actions/runs/42"
        );
    }
}
