//! The Action's image as its users run it: built from the repository's Dockerfile with
//! the binary this test build made (`scripts/image --binary`), started the way the
//! runner starts a Docker action (`scripts/podman run`), it plans a pull request against
//! moto and a wiremock GitHub on loopback, posts its comment and writes its outputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use crate::action::pull_request_repo;
use crate::cloud::binary_vars;
use crate::github::{GitHub, RunnerPaths, Trigger, pull_request_event, read_outputs, runner_vars};
use crate::harness::project_root;
use strata::plan::comment::{Header, MARKER};

const IMAGE: &str = "localhost/strata:test";

/// The runner's user on GitHub's hosted runners: it owns the checkout and the files
/// it hands the container, which runs as root.
const RUNNER_UID: &str = "1001";

/// Where the image is saved as an archive (`scripts/image --save`).
fn archive() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("strata-image.tar")
}

/// Builds the image once per test run, from this build's binary, and saves it.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(project_root().join("scripts/image"))
            .args(["--binary", env!("CARGO_BIN_EXE_strata"), "--tag", IMAGE])
            .arg("--save")
            .arg(archive())
            .output()
            .expect("run scripts/image");
        assert!(
            out.status.success(),
            "scripts/image failed (scripts/setup installs podman and runc):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

/// Gives `path`, and all it holds, to the runner's user, as a checkout on GitHub is.
fn give_to_runner(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{RUNNER_UID}:{RUNNER_UID}")])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_plans_a_pull_request_started_as_the_runner_starts_a_docker_action() {
    let image = image();
    let (repo, base, head) = pull_request_repo("image-pr", 190);
    let github = GitHub::start().await;
    github.comments(2, vec![]).await;
    github.accept_create(2, 501).await;

    // The runner's temporary directory, laid out as it is for a Docker action step.
    let temp = tempfile::tempdir().unwrap();
    let home = temp.path().join("_github_home");
    let workflow = temp.path().join("_github_workflow");
    let commands = temp.path().join("_runner_file_commands");
    for dir in [&home, &workflow, &commands] {
        std::fs::create_dir(dir).unwrap();
    }
    let event = pull_request_event("opened", 2, &base, &head, &[]);
    std::fs::write(
        workflow.join("event.json"),
        serde_json::to_vec(&event).unwrap(),
    )
    .unwrap();
    let output = "set_output_4c4f0d6e-2f7a-4a55-9e0f-1a9b2b3c4d5e";
    let summary = "step_summary_4c4f0d6e-2f7a-4a55-9e0f-1a9b2b3c4d5e";
    std::fs::write(commands.join(output), "").unwrap();
    std::fs::write(commands.join(summary), "").unwrap();
    give_to_runner(repo.path());
    give_to_runner(temp.path());

    let git_ref = "refs/pull/2/merge";
    let trigger = Trigger {
        name: "pull_request",
        payload: &event,
        sha: &head,
        git_ref,
    };
    let paths = RunnerPaths {
        workspace: "/github/workspace".to_owned(),
        event: "/github/workflow/event.json".to_owned(),
        output: format!("/github/file_commands/{output}"),
        summary: format!("/github/file_commands/{summary}"),
    };
    let mut command = Command::new(project_root().join("scripts/podman"));
    command.args(["run", "--rm", "--workdir", "/github/workspace"]);
    for (name, value) in runner_vars(&github, &trigger, &paths, &[], &binary_vars()) {
        command.arg("-e").arg(format!("{name}={value}"));
    }
    command.args(["-e", "HOME=/github/home"]);
    for (host, inside) in [
        (&home, "/github/home"),
        (&workflow, "/github/workflow"),
        (&commands, "/github/file_commands"),
        (&repo.path().to_path_buf(), "/github/workspace"),
    ] {
        command
            .arg("-v")
            .arg(format!("{}:{inside}", host.display()));
    }
    command.arg(image);
    let started = Instant::now();
    let run = command.output().expect("run scripts/podman");
    // A figure for the notes, never asserted: the container's start to its exit, the
    // comment posted.
    eprintln!("image: start to comment in {:.2?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");

    let written = github.written().await;
    assert_eq!(written.len(), 1, "{written:?}");
    let (verb, body) = &written[0];
    assert_eq!(verb, "POST");
    assert!(body.starts_with(MARKER), "{body}");
    assert!(
        body.contains("| `image-pr` | 4 | 0 | 0 | 0 | 0 |"),
        "{body}"
    );
    assert!(
        Header::parse(body)
            .unwrap()
            .digests
            .contains_key("image-pr")
    );

    let outputs = read_outputs(&std::fs::read_to_string(commands.join(output)).unwrap());
    assert_eq!(outputs["changed_environments"], "[\"image-pr\"]");
    assert_eq!(outputs["has_changes"], "true");
    assert_eq!(outputs["failure_reason"], "");
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join(&outputs["plan_json"])).unwrap(),
    )
    .unwrap();
    assert_eq!(plan["summary"]["create"], 4);
    let summary = std::fs::read_to_string(commands.join(summary)).unwrap();
    assert!(
        summary.contains("create security group sg/web"),
        "{summary}"
    );
    assert!(
        stdout.contains("::group::image-pr · network layer"),
        "{stdout}"
    );
}

#[test]
fn the_saved_image_loads_into_another_storage_and_runs() {
    image();
    let storage = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let out = Command::new(project_root().join("scripts/podman"))
            .arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("run"))
            .args(args)
            .output()
            .expect("run scripts/podman");
        assert!(
            out.status.success(),
            "podman {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let archive = archive();
    let loaded = podman(&["load", "--quiet", "--input", archive.to_str().unwrap()]);
    assert!(loaded.contains(IMAGE), "{loaded}");
    let version = podman(&[
        "run",
        "--rm",
        "--entrypoint",
        "/usr/local/bin/strata",
        IMAGE,
        "--version",
    ]);
    assert_eq!(
        version.trim(),
        format!("strata {}", env!("CARGO_PKG_VERSION"))
    );
}
