//! The bad-input corpus: every case under `tests/data/invalid/<case>/` exits 1 with
//! exactly the expected message, and never panics.
//!
//! A case holds `repo/` (the user's files), an optional `args` line (default
//! `validate`), an optional `git` marker (turn `repo/` into a git repository with one
//! commit first) and `expected` (the exact stderr; `{repo}` stands for the path).
//! `STRATA_BLESS=1 cargo test` rewrites `expected` from the current output.

use crate::harness::{self, GitRepo};

#[test]
fn every_invalid_case_fails_with_its_expected_message() {
    let root = harness::project_root().join("tests/data/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 90,
        "the corpus holds {} cases; keep at least 90",
        cases.len()
    );
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let args =
            std::fs::read_to_string(case.join("args")).unwrap_or_else(|_| "validate".to_owned());
        let args: Vec<&str> = args.split_whitespace().collect();
        // Each case runs in a fresh temporary directory, outside the project's own git
        // repository, so "not a git repository" means what it says.
        let work = GitRepo::new_plain();
        if case.join("repo").exists() {
            work.copy_dir(&case.join("repo"), ".");
        }
        if case.join("git").exists() {
            work.init();
            work.commit("case");
        }
        let repo = work.path().to_path_buf();
        let out = harness::strata(&repo, &args);
        let stderr = out.stderr.replace(&repo.display().to_string(), "{repo}");
        assert!(!stderr.contains("panicked"), "{name}: panicked:\n{stderr}");
        if bless {
            std::fs::write(case.join("expected"), &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(case.join("expected")).unwrap_or_default();
        if out.code != 1 || stderr != expected {
            failures.push(format!(
                "── {name}: exit {}\n── expected:\n{expected}── got:\n{stderr}",
                out.code
            ));
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
