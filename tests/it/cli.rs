//! What the binary says when AWS or the image feed cannot be had: which call, why, and
//! what to do, each said once.

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{GitRepo, example_with_feed, project_root, strata_with};

#[test]
fn without_credentials_the_hint_says_so_and_where_strata_looked() {
    let home = tempfile::tempdir().unwrap();
    // No keys, no profile (an empty home), no web identity, no instance metadata; and
    // nothing listens at the endpoint: the request must not be sent at all.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--repo", &project_root().display().to_string()])
        .args(["plan", "--env", "web-prod", "--layer", "network"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(": NoCredentials: "), "{stderr}");
    assert!(
        stderr.contains("hint: no AWS credentials were found; strata looks where the AWS CLI does"),
        "{stderr}"
    );
    assert!(stderr.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{stderr}");
    assert!(!stderr.contains("check the network"), "{stderr}");
}

#[tokio::test]
async fn an_answer_that_is_not_aws_s_names_the_call_the_status_and_the_body() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(500).set_body_string("<html>upstream connect error</html>"),
        )
        .mount(&server)
        .await;
    let mut vars = crate::cloud::binary_vars();
    vars.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    vars.push(("AWS_ENDPOINT_URL", server.uri()));
    let args = ["plan", "--env", "web-prod", "--layer", "network"];
    let out = strata_with(&project_root(), &args, &vars);
    assert_eq!(out.code, 1, "{out:?}");
    // One of the concurrent reads is reported: which, is a race; what it says is not.
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(": Http500: AWS answered HTTP 500: <html>upstream connect error</html>"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: AWS (or what AWS_ENDPOINT_URL points at) answered something that is not an AWS answer"), "{}", out.stderr);
    assert!(!out.stderr.contains("Unknown"), "{}", out.stderr);
}

#[tokio::test]
async fn an_image_feed_out_of_reach_is_said_once_with_its_hint_once() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    repo.write(
        "environments/web-prod.yaml",
        example_with_feed("web-prod", &server.uri()),
    );
    repo.commit("web-prod, its feed on a local server");
    let args = ["plan", "--env", "web-prod", "--layer", "cluster"];
    let out = strata_with(repo.path(), &args, &crate::cloud::binary_vars());
    assert_eq!(out.code, 1, "{out:?}");
    let feed = format!(
        "fetching the flatcar stable image feed {}/stable.json: HTTP 503",
        server.uri()
    );
    assert_eq!(out.stderr.matches(&feed).count(), 1, "{}", out.stderr);
    assert_eq!(out.stderr.matches("hint:").count(), 1, "{}", out.stderr);
}
