//! Environments in other AWS accounts: `account.role_arn` is assumed through STS from
//! the job's credentials (moto hands out credentials of the role's account), and the
//! environment is planned, applied and locked there; a role that cannot be assumed
//! stops only its environment.

use aws_sdk_ec2::types::Filter;

use crate::action::environment;
use crate::cloud::Cloud;
use crate::harness::GitRepo;
use crate::proxy::{Fault, Proxy, Requests};

/// The VPCs of environment `name` in `cloud`'s account.
async fn vpcs(cloud: &Cloud, name: &str) -> usize {
    let aws = cloud.connector().await.connect("eu-west-1");
    aws.ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:strata:environment")
                .values(name)
                .build(),
        )
        .send()
        .await
        .expect("describe VPCs")
        .vpcs()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_in_another_account_is_planned_applied_and_locked_there() {
    let own = Cloud::new();
    let other = Cloud::new();
    let proxy = Proxy::new(&own.account);
    let repo = GitRepo::new();
    repo.write("environments/acct-home.yaml", environment(197, &[22]));
    let role = format!("arn:aws:iam::{}:role/strata-apply", other.account);
    repo.write(
        "environments/acct-away.yaml",
        format!(
            "account: {{ role_arn: \"{role}\", external_id: strata-tests }}\n{}",
            environment(198, &[22])
        ),
    );
    repo.commit("one environment here, one in another account");

    let plan = proxy.run(&repo, &["plan", "--format", "json"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let env = |name: &str| {
        json["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        env("acct-away")["account"],
        other.account.as_str(),
        "{json}"
    );
    assert!(env("acct-home").get("account").is_none(), "{json}");

    let applied = proxy.run(&repo, &["apply"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    assert_eq!(vpcs(&other, "acct-away").await, 1);
    assert_eq!(vpcs(&own, "acct-away").await, 0);
    assert_eq!(vpcs(&own, "acct-home").await, 1);
    assert_eq!(vpcs(&other, "acct-home").await, 0);
    // Its lock lives there too, next to what it guards.
    let lock = other
        .connector()
        .await
        .connect("eu-west-1")
        .secrets
        .describe_secret()
        .secret_id("strata/acct-away/apply-lock")
        .send()
        .await;
    assert!(lock.is_ok(), "{lock:?}");
    // The role was assumed once per run (the plan, then the apply with its lock), not
    // once per call.
    let assumed = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "AssumeRole")
        .count();
    assert_eq!(assumed, 2, "{:?}", proxy.calls());
    let again = proxy.run(&repo, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(again.code, 0, "{}", again.stdout);

    // A role that cannot be assumed stops only its environment.
    proxy.inject(
        Requests::Operation("AssumeRole".to_owned()),
        &[Fault::Status(403)],
    );
    let refused = proxy.run(&repo, &["plan", "--format", "json"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with(&format!(
            "error: environment `acct-away`: assuming role {role} (STS in eu-west-1): AssumeRoleFailed: "
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("hint: the role's trust policy"),
        "{}",
        refused.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(json["environments"][0]["name"], "acct-home", "{json}");
    assert_eq!(json["unplanned"][0]["name"], "acct-away", "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_drift_checks_read_there_through_a_session_that_may_only_read() {
    let own = Cloud::new();
    let other = Cloud::new();
    let proxy = Proxy::new(&own.account);
    let repo = GitRepo::new();
    let role = format!("arn:aws:iam::{}:role/strata-apply", other.account);
    repo.write(
        "environments/acct-read.yaml",
        format!(
            "account: {{ role_arn: \"{role}\" }}\n{}",
            environment(199, &[22])
        ),
    );
    repo.commit("an environment in another account");
    // Sessions asked with a session policy are refused here: a run that asks for one
    // cannot reach the account.
    proxy.inject(
        Requests::Carrying("AssumeRole".to_owned(), "Policy=".to_owned()),
        &[Fault::Status(403)],
    );
    for command in [&["plan"][..], &["drift"]] {
        let run = proxy.run(&repo, command).await;
        assert_eq!(run.code, 1, "{command:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("environment `acct-read`")
                && run.stderr.contains(&format!("assuming role {role}")),
            "{command:?} asks for a read-only session:\n{}",
            run.stderr
        );
    }
    // An apply assumes the role as it is.
    let applied = proxy.run(&repo, &["apply"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    assert_eq!(vpcs(&other, "acct-read").await, 1);
}
