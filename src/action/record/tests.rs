//! The apply record and the config-error comment as reviewers see them (snapshots).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::config::Layer;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::plan::testing::{Side, examples};

const HEAD: &str = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

fn origin() -> Origin {
    Origin {
        run: "[run 4243](https://github.com/acme/infra/actions/runs/4243)".to_owned(),
        workflow: Some("strata apply".to_owned()),
        context: comment::Context {
            run_url: Some("https://github.com/acme/infra/actions/runs/4243".to_owned()),
            repository_url: Some("https://github.com/acme/infra".to_owned()),
            ..Default::default()
        },
    }
}

/// The examples' plan of `names` after `edit`, live AWS at the examples.
fn planned(names: &[&str], edit: &dyn Fn(&mut crate::repo::RepoFiles)) -> Plan {
    let base = Side::load(&examples()).unwrap();
    let mut files = examples();
    edit(&mut files);
    let head = Side::load(&files).unwrap();
    let all: BTreeSet<Layer> = Layer::ALL.into_iter().collect();
    let environments = names
        .iter()
        .map(|name| head.plan(name, &base.state(name).0, &all, &all))
        .collect();
    Plan::new(Some(HEAD.to_owned()), environments)
}

fn replace(files: &mut crate::repo::RepoFiles, path: &str, from: &str, to: &str) {
    let map = match path.strip_prefix("units/") {
        Some(_) => &mut files.units,
        None => &mut files.environments,
    };
    let key = path.strip_prefix("units/").unwrap_or(path).to_owned();
    let text = String::from_utf8(map[&key].clone()).unwrap();
    assert!(text.contains(from), "{path} holds no {from:?}");
    map.insert(key, text.replace(from, to).into_bytes());
}

/// Every action of environment `name` in `plan`, as an apply reports them.
fn refs(plan: &Plan, name: &str) -> Vec<ActionRef> {
    plan.actions()
        .filter(|(e, _, _)| e.name == name)
        .map(|(e, l, a)| ActionRef::new(&e.name, l.layer, a))
        .collect()
}

fn record(plan: &Plan, outcomes: BTreeMap<String, Outcome>) -> String {
    super::record(&origin(), plan, &outcomes, &[], &[], None)
        .document()
        .comment()
}

#[test]
fn an_apply_record_of_a_rollout_applied() {
    let plan = planned(&["etcd-prod"], &|f| {
        replace(f, "units/etcd.service", "v3.5.17", "v3.5.18")
    });
    let done = refs(&plan, "etcd-prod");
    let body = record(
        &plan,
        [("etcd-prod".to_owned(), Outcome::Applied(done))].into(),
    );
    insta::assert_snapshot!(body);
}

#[test]
fn an_apply_record_partly_failed() {
    let plan = planned(&["jenkins", "rabbitmq-prod", "web-prod"], &|f| {
        replace(f, "environments/jenkins.yaml", "size_gb: 30", "size_gb: 40");
        replace(
            f,
            "environments/rabbitmq-prod.yaml",
            "public_subnets: 1\n  subnet_bits: 4\n  nat: single",
            "public_subnets: 3\n  subnet_bits: 4\n  nat: per_zone",
        );
        replace(f, "environments/web-prod.yaml", "desired: 3", "desired: 4");
    });
    let rabbit = refs(&plan, "rabbitmq-prod");
    let (done, not_done) = rabbit.split_at(1);
    let outcomes = [
        (
            "jenkins".to_owned(),
            Outcome::Applied(refs(&plan, "jenkins")),
        ),
        (
            "rabbitmq-prod".to_owned(),
            Outcome::Failed {
                error: "creating NAT gateway nat/1: Http503: Service Unavailable\n  hint: fix the cause and run apply again; it continues from what exists".to_owned(),
                done: done.to_vec(),
                not_done: not_done.to_vec(),
            },
        ),
        (
            "web-prod".to_owned(),
            Outcome::Applied(refs(&plan, "web-prod")),
        ),
    ]
    .into();
    insta::assert_snapshot!(record(&plan, outcomes));
}

#[test]
fn an_apply_record_not_applied() {
    let plan = planned(&["etcd-prod", "web-prod"], &|f| {
        replace(
            f,
            "environments/etcd-prod.yaml",
            "subnet_bits: 4",
            "subnet_bits: 5",
        );
        replace(
            f,
            "environments/web-prod.yaml",
            "instance_type: t3.small",
            "instance_type: t3.medium",
        );
    });
    let consent: Vec<ActionRef> = refs(&plan, "etcd-prod")
        .into_iter()
        .filter(|r| {
            r.action == crate::plan::ActionKind::Replace && r.kind != crate::plan::Kind::Instance
        })
        .collect();
    let outcomes = [
        ("etcd-prod".to_owned(), Outcome::NeedsConsent(consent)),
        (
            "web-prod".to_owned(),
            Outcome::PlanChanged(
                "the plan differs from the one reviewed on the pull request (AWS or the default branch moved since)".to_owned(),
            ),
        ),
    ]
    .into();
    insta::assert_snapshot!(record(&plan, outcomes));
}

#[test]
fn a_config_error_comment() {
    let problem = |path: &str, line, column, message: &str, hint: &str| Diagnostic {
        path: path.to_owned(),
        line: Some(line),
        column: Some(column),
        message: message.to_owned(),
        hint: Some(hint.to_owned()),
    };
    let diagnostics = Diagnostics(vec![
        problem(
            "environments/web-prod.yaml",
            8,
            9,
            "invalid CIDR `10.69.0.0/33`: the prefix length is at most 32",
            "write a block such as 10.69.0.0/16",
        ),
        problem(
            "environments/web-prod.yaml",
            41,
            3,
            "unknown key `instance_typ`",
            "did you mean `instance_type`?",
        ),
        problem(
            "units/web.service",
            4,
            1,
            "expected `Key=Value` or a `[Section]` header",
            "systemd would refuse this line",
        ),
    ]);
    let body = super::super::problems_document(&diagnostics, HEAD).comment();
    insta::assert_snapshot!(body);
}

#[test]
fn an_apply_record_with_an_environment_that_could_not_be_planned() {
    let mut plan = planned(&["jenkins"], &|f| {
        replace(f, "environments/jenkins.yaml", "size_gb: 30", "size_gb: 40");
    });
    let error = "environment `web-prod`: reading secret strata/web-prod/ssh-public-key in eu-west-1: ResourceNotFoundException: Secrets Manager can't find the specified secret.\n  hint: create it: aws secretsmanager create-secret --region eu-west-1 --name strata/web-prod/ssh-public-key --secret-string \"$(cat ~/.ssh/id_ed25519.pub)\"";
    plan.unplanned = vec![crate::plan::Unplanned {
        name: "web-prod".to_owned(),
        region: "eu-west-1".to_owned(),
        error: error.to_owned(),
    }];
    let outcomes = [
        (
            "jenkins".to_owned(),
            Outcome::Applied(refs(&plan, "jenkins")),
        ),
        (
            "web-prod".to_owned(),
            Outcome::Failed {
                error: error.to_owned(),
                done: Vec::new(),
                not_done: Vec::new(),
            },
        ),
    ]
    .into();
    insta::assert_snapshot!(record(&plan, outcomes));
}
