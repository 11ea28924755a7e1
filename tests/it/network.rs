//! The network layer against moto: plans, applies, and the state read back through
//! the SDK (never trusting strata's own report).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use strata::aws::Connector;
use strata::config::{Environment, Layer};
use strata::engine::{self, EngineError};
use strata::plan::render;

use crate::cloud::Cloud;
use crate::fixtures::{COMMIT, NO_UNITS, Planned, Scope, actions};
use crate::harness::{GitRepo, project_root};

const BASE: &str = "\
region: eu-west-1
tags: { team: tests }
network:
  cidr: 10.10.0.0/16
  zones: 2
  private_subnets: 2
  public_subnets: 2
  nat: single
  security_groups:
    app:
      ingress: [ssh, https]
      egress: [all-traffic]
    lb:
      ingress: [http]
      ingress_cidrs: [0.0.0.0/0]
  load_balancers:
    api:
      type: application
      subnets: public
      security_groups: [lb]
      listeners:
        - { front: http, back: 8080 }
";

fn env(name: &str, yaml: &str) -> Environment {
    strata::config::load(&format!("environments/{name}.yaml"), yaml, &BTreeSet::new())
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

/// Network tests plan the network layer alone, from a known commit.
const NETWORK: Scope<'static> = Scope::units(&NO_UNITS)
    .layers(&[Layer::Network])
    .commit(COMMIT);

fn tag(env: &str) -> Filter {
    Filter::builder()
        .name("tag:strata:environment")
        .values(env)
        .build()
}

/// A subnet as EC2 reports it.
#[derive(Debug, PartialEq, Eq)]
struct SubnetSeen {
    /// Its address block.
    cidr: String,
    /// Whether instances launched in it get a public address.
    public: bool,
}

/// The subnets of environment `env`, by logical id (`subnet/private/0`, ...).
async fn subnets(connector: &Connector, env: &str) -> BTreeMap<String, SubnetSeen> {
    let ec2 = connector.connect("eu-west-1").ec2;
    let out = ec2
        .describe_subnets()
        .filters(tag(env))
        .send()
        .await
        .unwrap();
    out.subnets()
        .iter()
        .map(|s| {
            let id = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("strata:id"))
                .and_then(|t| t.value())
                .unwrap()
                .to_owned();
            let seen = SubnetSeen {
                cidr: s.cidr_block().unwrap().to_owned(),
                public: s.map_public_ip_on_launch().unwrap_or(false),
            };
            (id, seen)
        })
        .collect()
}

async fn count_vpcs(connector: &Connector, env: &str) -> usize {
    connector
        .connect("eu-west-1")
        .ec2
        .describe_vpcs()
        .filters(tag(env))
        .send()
        .await
        .unwrap()
        .vpcs()
        .len()
}

async fn live_nat_gateways(connector: &Connector, env: &str) -> usize {
    let state = Filter::builder()
        .name("state")
        .values("available")
        .values("pending")
        .build();
    let out = connector
        .connect("eu-west-1")
        .ec2
        .describe_nat_gateways()
        .filter(tag(env))
        .filter(state)
        .send()
        .await
        .unwrap();
    out.nat_gateways().len()
}

async fn ingress(connector: &Connector, env: &str, group: &str) -> BTreeSet<String> {
    let ec2 = connector.connect("eu-west-1").ec2;
    let name = Filter::builder()
        .name("group-name")
        .values(format!("{env}-{group}"))
        .build();
    let out = ec2
        .describe_security_groups()
        .filters(name)
        .send()
        .await
        .unwrap();
    let g = &out.security_groups()[0];
    g.ip_permissions()
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                format!(
                    "{} {:?} {}",
                    p.ip_protocol().unwrap(),
                    p.from_port(),
                    r.cidr_ip().unwrap()
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn create_from_empty_then_nothing_to_do() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let e = env("net", BASE);

    let first = NETWORK.plan(&connector, &[&e]).await;
    assert_eq!(first.summary.create, 16, "{}", render::markdown(&first));
    NETWORK.apply(&connector, &[&e], false).await.unwrap();

    // Read back through the SDK.
    let ec2 = connector.connect("eu-west-1").ec2;
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag("net"))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.10.0.0/16"));
    let tags: BTreeMap<_, _> = vpc
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags["strata:layer"], "network");
    assert_eq!(tags["strata:id"], "vpc");
    assert_eq!(tags["Name"], "net-vpc");
    assert_eq!(tags["team"], "tests");
    assert_eq!(
        tags["strata:commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    let got = subnets(&connector, "net").await;
    let want: BTreeMap<String, SubnetSeen> = [
        ("subnet/private/0", "10.10.0.0/20", false),
        ("subnet/private/1", "10.10.16.0/20", false),
        ("subnet/public/0", "10.10.32.0/20", true),
        ("subnet/public/1", "10.10.48.0/20", true),
    ]
    .into_iter()
    .map(|(id, cidr, public)| {
        let cidr = cidr.to_owned();
        (id.to_owned(), SubnetSeen { cidr, public })
    })
    .collect();
    assert_eq!(got, want);
    assert_eq!(live_nat_gateways(&connector, "net").await, 1);
    let igws = ec2
        .describe_internet_gateways()
        .filters(tag("net"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        igws.internet_gateways()[0].attachments()[0].vpc_id(),
        vpc.vpc_id()
    );
    let tables = ec2
        .describe_route_tables()
        .filters(tag("net"))
        .send()
        .await
        .unwrap();
    let defaults: BTreeSet<String> = tables
        .route_tables()
        .iter()
        .flat_map(|t| {
            t.routes()
                .iter()
                .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        })
        .map(|r| r.gateway_id().or(r.nat_gateway_id()).unwrap()[..4].to_owned())
        .collect();
    assert_eq!(
        defaults,
        BTreeSet::from(["igw-".to_owned(), "nat-".to_owned()])
    );
    assert_eq!(
        ingress(&connector, "net", "app").await,
        BTreeSet::from([
            "tcp Some(22) 10.10.0.0/16".to_owned(),
            "tcp Some(443) 10.10.0.0/16".to_owned()
        ])
    );
    let lbs = connector
        .connect("eu-west-1")
        .elb
        .describe_load_balancers()
        .names("net-api")
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    let listeners = connector
        .connect("eu-west-1")
        .elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners()[0].port(), Some(80));

    // A second plan finds nothing to do, and a second apply writes nothing.
    let second = NETWORK.plan(&connector, &[&e]).await;
    assert!(second.is_empty(), "{}", render::markdown(&second));
    let writes_before = connector.metrics().writes().len();
    NETWORK.apply(&connector, &[&e], false).await.unwrap();
    assert_eq!(
        connector.metrics().writes()[writes_before..],
        [] as [String; 0]
    );
}

#[tokio::test]
async fn adding_and_removing_a_rule_touches_only_that_rule() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    NETWORK
        .apply(&connector, &[&env("rules", BASE)], false)
        .await
        .unwrap();

    let changed = env(
        "rules",
        &BASE.replace("ingress: [ssh, https]", "ingress: [https, postgres]"),
    );
    let p = NETWORK.plan(&connector, &[&changed]).await;
    assert_eq!(actions(&p, Layer::Network), ["update sg/app"]);
    let changes: Vec<String> = p.environments[0].layers[0].actions[0]
        .changes
        .iter()
        .map(|c| format!("{:?} -> {:?}", c.from, c.to))
        .collect();
    assert_eq!(
        changes,
        [
            "Some(\"tcp 22 from 10.10.0.0/16\") -> None",
            "None -> Some(\"tcp 5432 from 10.10.0.0/16\")"
        ]
    );

    let before = connector.metrics().writes().len();
    NETWORK.apply(&connector, &[&changed], false).await.unwrap();
    assert_eq!(
        connector.metrics().writes()[before..],
        [
            "RevokeSecurityGroupIngress",
            "AuthorizeSecurityGroupIngress"
        ]
    );
    assert_eq!(
        ingress(&connector, "rules", "app").await,
        BTreeSet::from([
            "tcp Some(443) 10.10.0.0/16".to_owned(),
            "tcp Some(5432) 10.10.0.0/16".to_owned()
        ])
    );
}

#[tokio::test]
async fn more_subnets_are_added_and_fewer_need_consent() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    NETWORK
        .apply(&connector, &[&env("grow", BASE)], false)
        .await
        .unwrap();

    let three = env(
        "grow",
        &BASE.replace("private_subnets: 2", "private_subnets: 3"),
    );
    let p = NETWORK.plan(&connector, &[&three]).await;
    // The new private block comes before the public ones, so the public subnets move:
    // a carving change is a replacement, shown as such.
    assert!(
        actions(&p, Layer::Network).contains(&"create subnet/private/2".to_owned()),
        "{:?}",
        actions(&p, Layer::Network)
    );
    assert!(
        actions(&p, Layer::Network).contains(&"replace subnet/public/0".to_owned()),
        "{:?}",
        actions(&p, Layer::Network)
    );
    let err = NETWORK
        .apply(&connector, &[&three], false)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NeedsConsent(_)), "{err}");

    // Growing without moving public blocks: public subnets keep their blocks only if
    // they come first, so use an environment without public subnets to grow in place.
    let private_only =
        "region: eu-west-1\nnetwork:\n  cidr: 10.20.0.0/16\n  zones: 2\n  private_subnets: 2\n";
    NETWORK
        .apply(&connector, &[&env("inplace", private_only)], false)
        .await
        .unwrap();
    let grown = env(
        "inplace",
        &private_only.replace("private_subnets: 2", "private_subnets: 3"),
    );
    let p = NETWORK.plan(&connector, &[&grown]).await;
    assert_eq!(
        actions(&p, Layer::Network),
        ["create subnet/private/2", "update rtb/private/0"]
    );
    NETWORK.apply(&connector, &[&grown], false).await.unwrap();
    assert_eq!(subnets(&connector, "inplace").await.len(), 3);

    // Shrinking deletes a subnet: refused without consent, before any write.
    let before = connector.metrics().writes().len();
    let shrunk = env("inplace", private_only);
    let err = NETWORK
        .apply(&connector, &[&shrunk], false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("delete subnet subnet/private/2"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-destroy"), "{err}");
    assert_eq!(
        connector.metrics().writes().len(),
        before,
        "no write before consent"
    );
    NETWORK.apply(&connector, &[&shrunk], true).await.unwrap();
    assert_eq!(subnets(&connector, "inplace").await.len(), 2);
}

#[tokio::test]
async fn nat_mode_changes_add_and_remove_gateways() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    NETWORK
        .apply(&connector, &[&env("nat", BASE)], false)
        .await
        .unwrap();
    assert_eq!(live_nat_gateways(&connector, "nat").await, 1);

    let per_zone = env("nat", &BASE.replace("nat: single", "nat: per_zone"));
    let p = NETWORK.plan(&connector, &[&per_zone]).await;
    assert_eq!(
        actions(&p, Layer::Network),
        ["create eip/nat/1", "create nat/1", "update rtb/private/1"]
    );
    NETWORK
        .apply(&connector, &[&per_zone], false)
        .await
        .unwrap();
    assert_eq!(live_nat_gateways(&connector, "nat").await, 2);

    let none = env("nat", &BASE.replace("nat: single", "nat: none"));
    let p = NETWORK.plan(&connector, &[&none]).await;
    assert_eq!(
        actions(&p, Layer::Network),
        [
            "delete eip/nat/0",
            "delete eip/nat/1",
            "delete nat/0",
            "delete nat/1",
            "update rtb/private/0",
            "update rtb/private/1"
        ]
    );
    NETWORK.apply(&connector, &[&none], true).await.unwrap();
    assert_eq!(live_nat_gateways(&connector, "nat").await, 0);
    assert!(NETWORK.plan(&connector, &[&none]).await.is_empty());
}

#[tokio::test]
async fn removing_a_load_balancer_needs_consent() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    NETWORK
        .apply(&connector, &[&env("lbs", BASE)], false)
        .await
        .unwrap();

    let without = env("lbs", BASE.split("  load_balancers:").next().unwrap());
    let p = NETWORK.plan(&connector, &[&without]).await;
    assert_eq!(
        actions(&p, Layer::Network),
        [
            "delete tg/api/8080",
            "delete lb/api",
            "delete listener/api/80"
        ]
    );
    let markdown = render::markdown(&p);
    assert!(markdown.contains("> [!CAUTION]"), "{markdown}");

    let before = connector.metrics().writes().len();
    let err = NETWORK
        .apply(&connector, &[&without], false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NeedsConsent(ref l) if l.len() == 3),
        "{err}"
    );
    assert_eq!(connector.metrics().writes().len(), before);

    NETWORK.apply(&connector, &[&without], true).await.unwrap();
    let lbs = connector
        .connect("eu-west-1")
        .elb
        .describe_load_balancers()
        .send()
        .await
        .unwrap();
    assert!(lbs.load_balancers().is_empty());
    assert!(NETWORK.plan(&connector, &[&without]).await.is_empty());
}

#[tokio::test]
async fn an_interrupted_apply_converges_without_duplicates() {
    let cloud = Cloud::new();
    let e = env("cut", BASE);
    // Cut the connection at the 9th write: the VPC, subnets and more exist, tagged.
    let failing = cloud.failing_connector(8).await;
    let err = NETWORK.apply(&failing, &[&e], false).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");

    let connector = cloud.connector().await;
    let p = NETWORK.plan(&connector, &[&e]).await;
    assert!(
        p.summary.create < 16,
        "the resources made before the cut are found: {}",
        render::markdown(&p)
    );
    assert_eq!(p.summary.delete, 0);
    NETWORK.apply(&connector, &[&e], false).await.unwrap();
    assert_eq!(count_vpcs(&connector, "cut").await, 1);
    assert_eq!(subnets(&connector, "cut").await.len(), 4);
    assert!(NETWORK.plan(&connector, &[&e]).await.is_empty());
}

#[tokio::test]
async fn two_environments_in_one_run() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let a = env("alpha", BASE);
    let b = env("beta", &BASE.replace("10.10.0.0/16", "10.11.0.0/16"));
    NETWORK.apply(&connector, &[&a, &b], false).await.unwrap();
    assert_eq!(count_vpcs(&connector, "alpha").await, 1);
    assert_eq!(count_vpcs(&connector, "beta").await, 1);
    assert_eq!(
        subnets(&connector, "beta").await["subnet/private/0"].cidr,
        "10.11.0.0/20"
    );

    let before = connector.metrics().reads();
    let p = NETWORK.plan(&connector, &[&a, &b]).await;
    assert!(p.is_empty(), "{}", render::markdown(&p));
    let reads = connector.metrics().reads() - before;
    assert!(reads <= 13, "two environments planned in {reads} reads");
}

#[tokio::test]
async fn a_network_plan_costs_a_fixed_number_of_reads() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let e = env("reads", BASE);
    NETWORK.apply(&connector, &[&e], false).await.unwrap();
    let before = connector.metrics().reads();
    NETWORK.plan(&connector, &[&e]).await;
    let reads = connector.metrics().reads() - before;
    assert!(
        reads <= 12,
        "one environment planned in {reads} reads: {:?}",
        connector.metrics().by_operation()
    );

    // Twice the subnets and rules cost no more reads.
    let bigger = env(
        "reads",
        &BASE
            .replace("private_subnets: 2", "private_subnets: 2\n  subnet_bits: 5")
            .replace("[ssh, https]", "[ssh, https, postgres, redis, kafka]"),
    );
    let before = connector.metrics().reads();
    NETWORK.plan(&connector, &[&bigger]).await;
    assert_eq!(connector.metrics().reads() - before, reads);
}

#[tokio::test]
async fn a_removed_environment_file_is_torn_down_with_consent() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let repo = GitRepo::new();
    repo.write("environments/gone.yaml", BASE);
    let base = repo.commit("add");
    NETWORK
        .apply(&connector, &[&env("gone", BASE)], false)
        .await
        .unwrap();
    repo.remove("environments/gone.yaml");
    let head = repo.commit("remove");

    let git = strata::git::GitRepo::open(repo.path()).unwrap();
    let (b, h) = (git.commit(&base).unwrap(), git.commit(&head).unwrap());
    let set = strata::changes::detect(
        &git.diff(&b, &h).unwrap(),
        &mut strata::git::GitSource {
            repo: &git,
            head: &h,
        },
    )
    .unwrap();
    let old: BTreeMap<String, Environment> = [("gone".to_owned(), env("gone", BASE))].into();
    let targets = engine::from_changes(&set, &BTreeMap::new(), &old, &[]);
    assert!(targets[0].environment.is_none());

    let teardown = Planned::of(&connector, &targets, &NO_UNITS).await.unwrap();
    let p = &teardown.plan;
    assert!(p.environments[0].removed);
    assert_eq!(p.summary.delete, 16);
    assert_eq!(p.summary.create + p.summary.update + p.summary.replace, 0);
    let err = teardown.apply(&connector, false).await.unwrap_err();
    assert!(matches!(err, EngineError::NeedsConsent(_)));
    teardown.apply(&connector, true).await.unwrap();
    assert_eq!(count_vpcs(&connector, "gone").await, 0);
    assert!(subnets(&connector, "gone").await.is_empty());
}

#[tokio::test]
async fn example_web_environment_plan_snapshot() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let text = std::fs::read_to_string(project_root().join("environments/web-prod.yaml")).unwrap();
    let units: BTreeSet<String> = ["web.service", "docker-prune.service", "docker-prune.timer"]
        .map(String::from)
        .into();
    let e = strata::config::load("environments/web-prod.yaml", &text, &units).unwrap();
    // From no known commit: the snapshot names none.
    let p = Scope::units(&NO_UNITS)
        .layers(&[Layer::Network])
        .plan(&connector, &[&e])
        .await;
    insta::assert_snapshot!("web_prod_plan_markdown", render::markdown(&p));
    insta::assert_snapshot!("web_prod_plan_json", render::json(&p));
}

#[tokio::test]
async fn https_listeners_and_redirects_are_created() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let certificate = cloud.certificate("eu-west-1");
    let text = std::fs::read_to_string(project_root().join("environments/web-prod.yaml")).unwrap();
    let text = text.replace(
        "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        &certificate,
    );
    let units: BTreeSet<String> = ["web.service", "docker-prune.service", "docker-prune.timer"]
        .map(String::from)
        .into();
    let e = strata::config::load("environments/web-prod.yaml", &text, &units).unwrap();
    NETWORK.apply(&connector, &[&e], false).await.unwrap();

    let elb = connector.connect("eu-west-1").elb;
    let lb = elb
        .describe_load_balancers()
        .names("web-prod-web")
        .send()
        .await
        .unwrap();
    let arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_owned();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&arn)
        .send()
        .await
        .unwrap();
    let by_port: BTreeMap<i32, _> = listeners
        .listeners()
        .iter()
        .map(|l| (l.port().unwrap(), l))
        .collect();
    assert_eq!(by_port[&443].protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        by_port[&443].certificates()[0].certificate_arn(),
        Some(certificate.as_str())
    );
    let redirect = by_port[&80].default_actions()[0].redirect_config().unwrap();
    assert_eq!(
        (redirect.protocol(), redirect.port()),
        (Some("HTTPS"), Some("443"))
    );
    assert!(NETWORK.plan(&connector, &[&e]).await.is_empty());
}

#[test]
fn the_command_line_plans_applies_and_reports_changes_in_its_exit_code() {
    // The binary talks to moto's default account; the environment name keeps it apart.
    let vars = crate::cloud::binary_vars();
    let repo = GitRepo::new();
    repo.write(
        "environments/cli.yaml",
        BASE.replace("10.10.0.0/16", "10.99.0.0/16"),
    );
    let commit = repo.commit("cli");
    let run = |args: &[&str]| crate::harness::strata_with(repo.path(), args, &vars);

    let before = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(before.code, 2, "{}", before.stderr);
    assert!(before.stdout.contains("16 to create"), "{}", before.stdout);
    assert!(
        before
            .stdout
            .contains(&format!("for commit `{}`", &commit[..12])),
        "{}",
        before.stdout
    );

    let applied = run(&["apply", "--layer", "network"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains("cli: + create VPC vpc (vpc-"),
        "{}",
        applied.stdout
    );
    assert!(
        applied.stdout.contains("Applied 16 changes."),
        "{}",
        applied.stdout
    );

    let after = run(&["plan", "--detailed-exitcode", "--format", "json"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let json: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["commit"], commit.as_str());
    assert_eq!(
        json["summary"],
        serde_json::json!({"create": 0, "update": 0, "replace": 0, "delete": 0, "rollout": 0})
    );

    let unknown = run(&["plan", "--env", "nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no environment `nope`"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn a_network_change_pulls_in_the_cluster_layer_with_its_reason() {
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let with_cluster = format!(
        "{BASE}cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  ami: {}\n  security_groups: [app]\n",
        crate::feed::FLATCAR_AMI
    );
    let e = env("forced", &with_cluster);
    let set = strata::changes::ChangeSet {
        base: "a".into(),
        head: "b".into(),
        environments: vec![strata::changes::EnvironmentChange {
            name: "forced".into(),
            change: strata::changes::ChangeKind::Modified,
            layers: vec![Layer::Network],
            reasons: Vec::new(),
        }],
    };
    let head: BTreeMap<String, Environment> = [("forced".to_owned(), e)].into();
    let targets = engine::from_changes(&set, &head, &BTreeMap::new(), &[]);
    let p = Planned::of(&connector, &targets, &NO_UNITS)
        .await
        .unwrap()
        .plan;
    let layers: Vec<String> = p.environments[0]
        .layers
        .iter()
        .map(|l| format!("{} {:?}", l.layer, l.forced_by))
        .collect();
    assert_eq!(
        layers,
        [
            "network None",
            "cluster Some(\"the network creates subnet/private/0, which the cluster uses\")"
        ]
    );
}

#[test]
fn the_command_line_tears_down_a_removed_environment_only_with_consent() {
    let vars = crate::cloud::binary_vars();
    let repo = GitRepo::new();
    repo.write(
        "environments/cli-gone.yaml",
        BASE.replace("10.10.0.0/16", "10.98.0.0/16"),
    );
    repo.commit("add");
    let run = |args: &[&str]| crate::harness::strata_with(repo.path(), args, &vars);
    let created = run(&["apply", "--env", "cli-gone"]);
    assert_eq!(created.code, 0, "{}", created.stderr);

    repo.remove("environments/cli-gone.yaml");
    repo.commit("remove");
    let plan = run(&["plan", "--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout
            .contains("### cli-gone (eu-west-1) — environment removed: teardown"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("16 to delete"), "{}", plan.stdout);

    let refused = run(&["apply", "--base", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("the plan deletes or replaces 16 resources; nothing was changed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("strata apply --allow-destroy"),
        "{}",
        refused.stderr
    );

    let done = run(&[
        "apply",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--allow-destroy",
    ]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("cli-gone: - delete VPC vpc"),
        "{}",
        done.stdout
    );
    let again = run(&[
        "plan",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--detailed-exitcode",
    ]);
    assert_eq!(again.code, 0, "nothing left to tear down: {}", again.stdout);
}

#[tokio::test]
async fn hundreds_of_environments_are_read_a_hundred_at_a_time() {
    // EC2 refuses a call with more than 200 filter values (tests/moto_server.py makes
    // moto refuse it too): 250 environments are read in three sets of 100 or fewer.
    let cloud = Cloud::new();
    let connector = cloud.connector().await;
    let envs: Vec<Environment> = (0..250).map(|i| env(&format!("many-{i}"), BASE)).collect();
    let all: Vec<&Environment> = envs.iter().collect();
    let p = NETWORK.plan(&connector, &all).await;
    assert_eq!(p.environments.len(), 250);
    assert!(p.unplanned.is_empty(), "{:?}", p.unplanned);
    let reads = connector.metrics().by_operation();
    for operation in [
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeInternetGateways",
        "DescribeAddresses",
        "DescribeNatGateways",
        "DescribeRouteTables",
        "DescribeSecurityGroups",
    ] {
        assert_eq!(reads.get(operation), Some(&3), "{operation}: {reads:?}");
    }
}
