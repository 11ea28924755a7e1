//! The network layer against moto: plans, applies, and the state read back through
//! the SDK (never trusting strata's own report). `reads` counts what a plan asks
//! AWS for; `runs` drives the command line, tears down a removed environment and pulls
//! the cluster layer into a network change.

mod reads;
mod runs;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use strata::aws::Connector;
use strata::config::{Environment, Layer};
use strata::engine::EngineError;
use strata::plan::render;

use crate::cloud::Cloud;
use crate::fixtures::{COMMIT, NO_UNITS, Scope, actions};
use crate::harness::project_root;

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
