//! Many runners: a merge applied by a matrix, one job per environment (the
//! `environment` input), each recording into the pull request's one comment at the
//! same time. GitHub's comments have no conditional write, so each job reads, merges
//! its blocks in, writes and reads back; here the comment is kept as GitHub keeps it,
//! and reads answer late so that both jobs read the same text before either writes.

use std::time::Duration;

use crate::action::{environment, reviewed_plan};
use crate::cloud::binary_vars;
use crate::github::{BOT_REST, GitHub, Trigger, comment, merged_pull, push_event, run_action};
use crate::harness::GitRepo;
use strata::plan::comment::Header;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_recording_into_one_comment_at_once_lose_nothing() {
    let repo = GitRepo::new();
    repo.write("README.md", "infrastructure\n");
    let base = repo.commit("base");
    repo.write("environments/matrix-a.yaml", environment(199, &[22]));
    repo.write("environments/matrix-b.yaml", environment(200, &[22]));
    let head = repo.commit("two environments");
    let reviewed = reviewed_plan(&repo, 30, &base, &head).await;

    let github = GitHub::start().await;
    github.pulls_of(&head, merged_pull(30, &[])).await;
    let store = github
        .keep_comments(
            30,
            vec![comment(930, BOT_REST, &reviewed)],
            Duration::from_millis(400),
        )
        .await;
    let event = push_event("0000000000000000000000000000000000000000", &head);
    let job = |name: &'static str| {
        let (repo, github, event, head) = (&repo, &github, &event, &head);
        move || {
            run_action(
                repo.path(),
                github,
                Trigger {
                    name: "push",
                    payload: event,
                    sha: head,
                    git_ref: "refs/heads/main",
                },
                &[("environment", name)],
                &binary_vars(),
            )
        }
    };
    let (a, b) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let a = s.spawn(job("matrix-a"));
            let b = s.spawn(job("matrix-b"));
            (a.join().unwrap(), b.join().unwrap())
        })
    });
    assert_eq!(a.out.code, 0, "{}", a.out.stdout);
    assert_eq!(b.out.code, 0, "{}", b.out.stdout);

    let bodies = store.bodies();
    assert_eq!(bodies.len(), 1, "one comment: {bodies:?}");
    let record = &bodies[0];
    for name in ["matrix-a", "matrix-b"] {
        assert!(
            record.contains(&format!("- ✅ `{name}`: applied 4 changes")),
            "{record}\n--- a:\n{}\n--- b:\n{}",
            a.out.stdout,
            b.out.stdout
        );
    }
    assert!(
        record.contains("### ✅ Applied 8 changes in 2 environments"),
        "{record}"
    );
    assert_eq!(Header::parse(record), Header::parse(&reviewed));
}
