//! The comment's budget, and the comment as reviewers see it in each situation
//! (snapshots of the example environments planned by the one planner).

use std::collections::BTreeSet;

use super::*;
use crate::config::Layer;
use crate::plan::desired::DesiredState;
use crate::plan::testing::{Side, examples};
use crate::plan::{Action, ActionKind, EnvironmentPlan, FieldChange, Kind, LayerPlan, Summary};

fn create(n: usize, detail_lines: usize) -> Action {
    Action {
        refresh: None,
        origin: None,
        action: ActionKind::Create,
        kind: Kind::SecurityGroup,
        id: crate::plan::LogicalId::SecurityGroup(format!("g{n}")),
        aws_id: None,
        changes: (0..20)
            .map(|p| FieldChange {
                origin: None,
                field: "ingress".to_owned(),
                from: None,
                to: Some(format!("tcp {p} from 10.0.0.0/8")),
            })
            .collect(),
        forced_by: None,
        detail: (0..detail_lines).map(|l| format!("+ line {l}")).collect(),
        desired: None,
        observed: None,
    }
}

fn plan(actions: Vec<Action>) -> Plan {
    let summary = Summary::of(&actions);
    Plan {
        version: 1,
        commit: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
        summary,
        unplanned: Vec::new(),
        environments: vec![EnvironmentPlan {
            account: None,
            resources: Vec::new(),
            data_volumes: Vec::new(),
            trust: Vec::new(),
            name: "big".to_owned(),
            region: "eu-west-1".to_owned(),
            removed: false,
            summary,
            layers: vec![LayerPlan {
                layer: Layer::Network,
                forced_by: None,
                summary,
                actions,
                notes: Vec::new(),
            }],
        }],
    }
}

#[test]
fn a_plan_over_the_budget_is_cut_by_section_and_says_what_it_left_out() {
    let big = plan((0..2000).map(|n| create(n, 3)).collect());
    let body = plan_document(&big, &Context::default()).comment();
    assert!(body.len() <= COMMENT_BUDGET, "{} bytes", body.len());
    assert!(body.starts_with(MARKER));
    assert!(body.contains("| `big` | 2000 | 0 | 0 | 0 | 0 |"));
    // The details go first, then the change list, block by block.
    assert!(
        body.contains("_50 more in “the details of `big`”: see the job summary._"),
        "{}",
        &body[body.len() - 300..]
    );
    // The one-line list of 2000 creations fits, whole.
    assert!(body.contains("+ create  sg/g0") && body.contains("+ create  sg/g999"));
    assert!(!body.contains("more in “the changes of `big`”"));
    let header = Header::parse(&body).expect("the header survives the cut");
    assert_eq!(header.digests.len(), 1);
    let whole = plan_document(&big, &Context::default()).summary();
    assert!(whole.len() > COMMENT_BUDGET && whole.len() <= SUMMARY_BUDGET);
}

#[test]
fn a_plan_that_fits_is_whole_and_its_header_round_trips() {
    let small = plan(vec![create(1, 2)]);
    let document = plan_document(&small, &Context::default());
    let body = document.comment();
    assert!(!body.contains("more in"));
    assert!(body.contains("+ create  sg/g1"), "{body}");
    assert!(body.contains("+ line 1"));
    assert_eq!(Header::parse(&body), document.header);
}

#[test]
fn a_tiny_budget_still_gives_a_body_within_it() {
    let big = plan((0..50).map(|n| create(n, 1)).collect());
    let body = plan_document(&big, &Context::default()).render(300, "the job summary");
    assert!(body.len() <= 300);
}

const HEAD: &str = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";
const BASE: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b";

fn context() -> Context {
    Context {
        run_url: Some("https://github.com/acme/infra/actions/runs/4242".to_owned()),
        model_only: false,
        consent_hint: Some(
            "Applying it on merge needs the label `strata:allow-destroy` on this pull request."
                .to_owned(),
        ),
        repository_url: Some("https://github.com/acme/infra".to_owned()),
        base: Some(BASE.to_owned()),
    }
}

/// The examples with `edit` applied to their files.
fn edited(edit: impl FnOnce(&mut crate::repo::RepoFiles)) -> Side {
    let mut files = examples();
    edit(&mut files);
    Side::load(&files).expect("the edited examples load")
}

fn replace(file: &str, from: &str, to: &str) -> impl FnOnce(&mut crate::repo::RepoFiles) {
    let (file, from, to) = (file.to_owned(), from.to_owned(), to.to_owned());
    move |files| {
        let key = match file.strip_prefix("units/") {
            Some(unit) => unit.to_owned(),
            None => file.clone(),
        };
        let map = match file.starts_with("units/") {
            true => &mut files.units,
            false => &mut files.environments,
        };
        let text = String::from_utf8(map[&key].clone()).unwrap();
        assert!(text.contains(&from), "{file} holds no {from:?}");
        map.insert(key, text.replace(&from, &to).into_bytes());
    }
}

/// The plan of `names` from `base` to `head` with live AWS as `live` has it (the
/// base's state when `None`), `changed` the layers the diff changed, origins marked.
fn planned(
    base: &Side,
    head: &Side,
    names: &[&str],
    changed: &[Layer],
    live: Option<&dyn Fn(&str) -> DesiredState>,
) -> Plan {
    let all: BTreeSet<Layer> = Layer::ALL.into_iter().collect();
    let changed: BTreeSet<Layer> = changed.iter().copied().collect();
    let environments = names
        .iter()
        .map(|name| {
            let (base_state, _) = base.state(name);
            let live_state = live.map(|l| l(name));
            let mut p = head.plan(
                name,
                live_state.as_ref().unwrap_or(&base_state),
                &all,
                &changed,
            );
            let own = head.plan(name, &base_state, &all, &changed);
            crate::plan::origin::mark(&mut p, &own);
            p
        })
        .collect();
    Plan::new(Some(HEAD.to_owned()), environments)
}

fn comment(plan: &Plan) -> String {
    plan_document(plan, &context()).comment()
}

#[test]
fn a_new_environment() {
    let base = edited(|f| {
        f.environments.remove("environments/web-prod.yaml");
    });
    let head = edited(|_| {});
    let plan = planned(&base, &head, &["web-prod"], &Layer::ALL, None);
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn a_teardown() {
    let base = edited(|_| {});
    let head = edited(|f| {
        f.environments.remove("environments/etcd-prod.yaml");
    });
    let plan = planned(&base, &head, &["etcd-prod"], &Layer::ALL, None);
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn a_rollout() {
    let base = edited(|_| {});
    let head = edited(replace("units/etcd.service", "v3.5", "v3.6"));
    let plan = planned(&base, &head, &["etcd-prod"], &[Layer::Node], None);
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn an_environment_that_could_not_be_planned_beside_one_that_was() {
    let base = edited(|_| {});
    let head = edited(replace("units/etcd.service", "v3.5", "v3.6"));
    let mut plan = planned(&base, &head, &["etcd-prod"], &[Layer::Node], None);
    plan.unplanned = vec![crate::plan::Unplanned {
        name: "web-prod".to_owned(),
        region: "eu-west-1".to_owned(),
        error: "environment `web-prod`: fetching the flatcar stable image feed https://stable.release.flatcar-linux.net/amd64-usr/current/flatcar_production_ami_all.json: HTTP 503\n  hint: check the network, or point os.feed_url at a mirror".to_owned(),
    }];
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn a_network_change_that_moves_a_fixed_cluster() {
    let base = edited(|_| {});
    let head = edited(replace(
        "environments/etcd-prod.yaml",
        "subnet_bits: 4",
        "subnet_bits: 5",
    ));
    let plan = planned(&base, &head, &["etcd-prod"], &[Layer::Network], None);
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn a_pull_request_with_drift() {
    let base = edited(|_| {});
    let head = edited(replace(
        "environments/web-prod.yaml",
        "desired: 3",
        "desired: 4",
    ));
    // By hand, in AWS: ssh opened to the load balancer's group, and the group at 5.
    let by_hand = edited(|f| {
        replace(
            "environments/web-prod.yaml",
            "ingress: [http, https]",
            "ingress: [http, https, ssh]",
        )(f);
        replace("environments/web-prod.yaml", "desired: 3", "desired: 5")(f);
    });
    let live = |name: &str| by_hand.state(name).0;
    let plan = planned(&base, &head, &["web-prod"], &[Layer::Cluster], Some(&live));
    insta::assert_snapshot!(comment(&plan));
}

#[test]
fn three_environments_at_once() {
    let base = edited(|_| {});
    let head = edited(|f| {
        replace(
            "environments/web-prod.yaml",
            "instance_type: t3.small",
            "instance_type: t3.medium",
        )(f);
        replace(
            "environments/jenkins.yaml",
            "size_gb: 200, type: gp3",
            "size_gb: 300, type: gp3",
        )(f);
        replace(
            "environments/rabbitmq-prod.yaml",
            "ingress_cidrs: [10.0.0.0/8]",
            "ingress_cidrs: [10.0.0.0/8, 0.0.0.0/0]",
        )(f);
    });
    let plan = planned(
        &base,
        &head,
        &["jenkins", "rabbitmq-prod", "web-prod"],
        &[Layer::Network, Layer::Cluster],
        None,
    );
    insta::assert_snapshot!(comment(&plan));
}

/// The drift report of the examples with changes made by hand to web-prod, a volume a
/// replaced machine of jenkins left behind, and etcd-prod's file gone.
fn drift_report() -> crate::plan::drift::Report {
    use crate::plan::drift::{Machines, Report};
    let checkout = edited(|f| {
        f.environments.remove("environments/etcd-prod.yaml");
    });
    let examples = edited(|_| {});
    let by_hand = edited(|f| {
        replace(
            "environments/web-prod.yaml",
            "ingress: [http, https]",
            "ingress: [http, https, ssh]",
        )(f);
        replace("environments/web-prod.yaml", "desired: 3", "desired: 5")(f);
        replace("environments/web-prod.yaml", "nat: per_zone", "nat: single")(f);
    });
    let all: BTreeSet<Layer> = Layer::ALL.into_iter().collect();
    let environments = ["etcd-prod", "jenkins", "web-prod"]
        .iter()
        .map(|name| {
            let live = match *name {
                "web-prod" => by_hand.state(name).0,
                _ => examples.state(name).0,
            };
            checkout.plan(name, &live, &all, &all)
        })
        .collect();
    let plan = Plan::new(Some(HEAD.to_owned()), environments);
    let machines = |name: &str| Machines {
        stopped: Vec::new(),
        left_behind: match name {
            "jenkins" => vec![("vol-0a1b2c3d4e5f60718".to_owned(), "200 GiB gp3".to_owned())],
            _ => Vec::new(),
        },
    };
    Report::of(&plan, &machines)
}

fn drift_context() -> drift::Context {
    drift::Context {
        branch: "main".to_owned(),
        commit: Some(HEAD.to_owned()),
        repository_url: Some("https://github.com/acme/infra".to_owned()),
        run_url: Some("https://github.com/acme/infra/actions/runs/4244".to_owned()),
        apply_workflow: Some("strata apply".to_owned()),
    }
}

#[test]
fn a_drift_issue() {
    let report = drift_report();
    assert_eq!(report.drifted(), ["jenkins", "web-prod"]);
    let web = report
        .environments
        .iter()
        .find(|e| e.name == "web-prod")
        .unwrap();
    let body = drift::environment_issue(web, &report, &drift_context())
        .render(COMMENT_BUDGET, "the job summary");
    assert!(body.starts_with(&drift::marker("web-prod")));
    insta::assert_snapshot!(body);
}

#[test]
fn an_orphans_issue() {
    let report = drift_report();
    let body =
        drift::orphans_issue(&report, &drift_context()).render(COMMENT_BUDGET, "the job summary");
    assert!(body.starts_with(drift::ORPHANS_MARKER));
    insta::assert_snapshot!(body);
}
