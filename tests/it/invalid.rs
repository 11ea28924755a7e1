//! The bad-input corpus: every case under `tests/data/invalid/<case>/` exits 1 with
//! exactly the expected message, never panics, and sends no write to AWS.
//!
//! A case holds:
//! - `repo/`: the user's files; `{feed}` in them stands for the case's image feed;
//! - `args` (default `validate`): the command line;
//! - `git` (optional): turn `repo/` into a git repository with one commit first; with
//!   `shallow` in it, a second commit and a clone of depth 1 to run in, and with
//!   `unrelated`, a commit on a history of its own besides; `{base}` in `args` is the
//!   commit the clone lacks, or the unrelated one;
//! - `huge` (optional): lines `PATH BYTES`, a file of that size written into the
//!   repository (too big to keep in the corpus);
//! - `secrets/` (optional): secrets to store first, the path of each file its name and
//!   its contents the value; a case with secrets, a feed or an `aws` marker runs with
//!   credentials, against an account of its own behind the counting proxy, and fails
//!   if any write request reaches it;
//! - `feed/` (optional): files an image feed serves on loopback at `{feed}/<name>`;
//! - `vars` (optional): `NAME=value` lines for the environment (`{repo}`, `{case}`,
//!   `{head}` for the commit made);
//! - `stream` (optional): `stdout` to compare that instead (`strata action` reports
//!   on stdout, in workflow commands);
//! - `expected`: the exact stderr (`{repo}`, `{feed}` and `{aws}` stand for the paths
//!   and addresses of the run).
//!
//! A case without AWS runs without credentials, so any AWS call shows as
//! `NoCredentials` in its output. `STRATA_BLESS=1 cargo test` rewrites `expected` from
//! the current output.

use std::path::Path;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cloud::Cloud;
use crate::harness::{self, GitRepo};
use crate::proxy::Proxy;

/// How many cases the corpus keeps at least.
const AT_LEAST: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_case_fails_with_its_expected_message() {
    let root = harness::project_root().join("tests/data/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= AT_LEAST,
        "the corpus holds {} cases; keep at least {AT_LEAST}",
        cases.len()
    );
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        if let Some(failure) = run_case(case, bless).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Runs one case; what differs from its expectations, if anything.
async fn run_case(case: &Path, bless: bool) -> Option<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let feed = match case.join("feed").is_dir() {
        true => Some(serve(&case.join("feed")).await),
        false => None,
    };
    let feed_url = feed.as_ref().map(MockServer::uri).unwrap_or_default();
    // Each case runs in a fresh temporary directory, outside the project's own git
    // repository, so "not a git repository" means what it says.
    let work = GitRepo::new_plain();
    let repo = work.path().to_path_buf();
    let fill = |text: &str| {
        text.replace("{feed}", &feed_url)
            .replace("{repo}", &repo.display().to_string())
            .replace("{case}", &case.display().to_string())
    };
    if case.join("repo").exists() {
        for file in harness::walk(&case.join("repo")) {
            let relative = file.strip_prefix(case.join("repo")).unwrap();
            let bytes = std::fs::read(&file).unwrap();
            let bytes = match String::from_utf8(bytes) {
                Ok(text) => fill(&text).into_bytes(),
                Err(raw) => raw.into_bytes(),
            };
            work.write(&relative.to_string_lossy(), bytes);
        }
    }
    if let Ok(huge) = std::fs::read_to_string(case.join("huge")) {
        for line in huge.lines() {
            let (path, bytes) = line.split_once(' ').expect("PATH BYTES");
            let bytes: usize = bytes.trim().parse().expect("a size");
            let filler = "# padding\n".repeat(bytes / 10 + 1);
            work.write(path, &filler.as_bytes()[..bytes]);
        }
    }
    let mut base = String::new();
    let mut clone = None;
    if let Ok(mode) = std::fs::read_to_string(case.join("git")) {
        work.init();
        match mode.trim() {
            "shallow" => {
                base = work.commit("base");
                work.write("README.md", "the second commit\n");
                work.commit("case");
                let shallow = GitRepo::new_plain();
                let from = format!("file://{}", repo.display());
                let to = shallow.path().display().to_string();
                work.git(&["clone", "-q", "--depth", "1", &from, &to]);
                clone = Some(shallow);
            }
            "unrelated" => {
                work.commit("case");
                work.git(&["checkout", "-q", "--orphan", "elsewhere"]);
                work.write("README.md", "another history\n");
                base = work.commit("unrelated");
                work.git(&["checkout", "-q", "-f", "main"]);
            }
            _ => {
                work.commit("case");
            }
        }
    }
    let args = std::fs::read_to_string(case.join("args")).unwrap_or_else(|_| "validate".to_owned());
    let args = fill(&args).replace("{base}", &base);
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    let mut vars: Vec<(&str, String)> = Vec::new();
    let var_text = std::fs::read_to_string(case.join("vars")).unwrap_or_default();
    let head = match case.join("git").exists() {
        true => work.git(&["rev-parse", "HEAD"]).trim().to_owned(),
        false => String::new(),
    };
    let var_text = fill(&var_text).replace("{head}", &head);
    for line in var_text.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once('=').expect("NAME=value");
        vars.push((k, v.to_owned()));
    }
    let repo = clone
        .as_ref()
        .map_or(repo.clone(), |c| c.path().to_path_buf());
    let uses_aws = feed.is_some() || case.join("secrets").is_dir() || case.join("aws").exists();
    let proxy = match uses_aws {
        true => {
            let cloud = Cloud::new();
            if case.join("secrets").is_dir() {
                for file in harness::walk(&case.join("secrets")) {
                    let secret = file.strip_prefix(case.join("secrets")).unwrap();
                    let value = std::fs::read_to_string(&file).unwrap();
                    cloud
                        .put_secret(
                            "eu-west-1",
                            &secret.to_string_lossy(),
                            value.trim_end_matches('\n'),
                        )
                        .await;
                }
            }
            Some(Proxy::new(&cloud.account))
        }
        false => None,
    };
    if let Some(p) = &proxy {
        vars.extend(p.binary_vars(Some(1)));
    }
    let out = tokio::task::block_in_place(|| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        harness::strata_with(&repo, &args, &vars)
    });
    let stream = std::fs::read_to_string(case.join("stream")).unwrap_or_default();
    let shown = match stream.trim() {
        "stdout" => &out.stdout,
        _ => &out.stderr,
    };
    let mut stderr = shown.replace(&repo.display().to_string(), "{repo}");
    if !base.is_empty() {
        stderr = stderr
            .replace(&base, "{base}")
            .replace(&base[..12], "{base}");
    }
    if !head.is_empty() {
        stderr = stderr
            .replace(&head, "{head}")
            .replace(&head[..12], "{head}");
    }
    if !feed_url.is_empty() {
        stderr = stderr.replace(&feed_url, "{feed}");
    }
    if let Some(p) = &proxy {
        stderr = stderr.replace(&p.url(), "{aws}");
    }
    if stderr.contains("panicked") {
        return Some(format!("── {name}: panicked:\n{stderr}"));
    }
    let writes = proxy.as_ref().map(Proxy::writes).unwrap_or_default();
    if !writes.is_empty() {
        return Some(format!("── {name}: wrote to AWS: {writes:?}"));
    }
    if bless {
        std::fs::write(case.join("expected"), &stderr).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(case.join("expected")).unwrap_or_default();
    (out.code != 1 || stderr != expected).then(|| {
        format!(
            "── {name}: exit {}\n── expected:\n{expected}── got:\n{stderr}",
            out.code
        )
    })
}

/// Serves the files of `dir` at `/<name>`.
async fn serve(dir: &Path) -> MockServer {
    let server = MockServer::start().await;
    for file in harness::walk(dir) {
        let name = file
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        Mock::given(method("GET"))
            .and(path(format!("/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(std::fs::read(&file).unwrap()))
            .mount(&server)
            .await;
    }
    server
}
