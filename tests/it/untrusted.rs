//! A repository's files are untrusted input (a pull request's above all): strata never
//! follows a symbolic link in `environments/` or `units/`, in a checkout or in a
//! commit, and names each link as a configuration error at its path.

use crate::harness::{self, GitRepo};

const SECRET: &str = "host-secret-that-must-stay-on-the-runner";

/// A repository whose `units/` holds a link to a file outside it.
fn repo_with_linked_unit(outside: &std::path::Path) -> GitRepo {
    let repo = GitRepo::new();
    repo.write(
        "environments/demo.yaml",
        std::fs::read(harness::project_root().join("tests/data/untrusted/demo.yaml")).unwrap(),
    );
    repo.write("units/web.service", "[Service]\nExecStart=/usr/bin/true\n");
    std::os::unix::fs::symlink(outside, repo.path().join("units/stolen.service")).unwrap();
    repo
}

fn outside_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("[Service]\nExecStart=/bin/echo {SECRET}\n"),
    )
    .unwrap();
    file
}

#[test]
fn a_unit_linked_outside_the_checkout_is_an_error_and_is_not_read() {
    let outside = outside_file();
    let repo = repo_with_linked_unit(outside.path());
    for args in [
        &["validate"][..],
        &["render", "--env", "demo", "--offline"],
        &["plan", "--env", "demo"],
    ] {
        let out = harness::strata(repo.path(), args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(
                "units/stolen.service: is a symbolic link; strata reads only regular files inside the repository"
            ),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    }
}

#[test]
fn a_linked_unit_in_a_commit_is_an_error_at_its_path() {
    let outside = outside_file();
    let repo = repo_with_linked_unit(outside.path());
    let head = repo.commit("a unit that is a link");
    let out = harness::strata(repo.path(), &["plan", "--head", &head, "--env", "demo"]);
    assert_eq!(out.code, 1, "{out:?}");
    let short = &head[..12];
    assert!(
        out.stderr
            .contains(&format!("{short}:units/stolen.service: is a symbolic link")),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
}

#[test]
fn linked_environment_files_and_directories_are_errors() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), "region: eu-west-1\n").unwrap();
    let repo = GitRepo::new();
    repo.write("units/web.service", "[Service]\nExecStart=/usr/bin/true\n");
    std::fs::create_dir_all(repo.path().join("environments")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("x.yaml"),
        repo.path().join("environments/x.yaml"),
    )
    .unwrap();
    let out = harness::strata(repo.path(), &["validate"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("environments/x.yaml: is a symbolic link"),
        "{}",
        out.stderr
    );

    // The directory itself, in the checkout and in a commit.
    std::fs::remove_dir_all(repo.path().join("environments")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("environments")).unwrap();
    let out = harness::strata(repo.path(), &["validate"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("environments: is a symbolic link"),
        "{}",
        out.stderr
    );
    let head = repo.commit("environments is a link");
    let out = harness::strata(repo.path(), &["plan", "--head", &head]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(&format!("{}:environments: is a symbolic link", &head[..12])),
        "{}",
        out.stderr
    );
}
