//! Fixed-size clusters against moto: the example etcd environment launches one
//! instance per node index at its deterministic address, each booting its own config;
//! a unit change replaces them one at a time; the size grows and shrinks by the
//! highest indexes. `lifecycle` covers a cluster switched, removed, moved to new
//! subnets and registered behind a load balancer; `volumes` the nodes' data volumes.

mod lifecycle;
mod volumes;

use std::collections::BTreeMap;

use base64::Engine as _;
use strata::changes::{ChangeKind, ChangeSet, EnvironmentChange};
use strata::config::{Environment, Layer};
use strata::engine::{self, EngineError};
use strata::plan::render;
use strata::units::UnitSet;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::fixtures::{Planned, Scope, actions};
use crate::harness::{GitRepo, assert_key_nowhere, ignition_validate, project_root, unique_key};

const SECRET: &str = "strata/etcd-prod/ssh-public-key";

/// The repository's units, with etcd's image swapped for `etcd_image`.
fn units(etcd_image: &str) -> UnitSet {
    let root = project_root().join("units");
    let dropins = std::fs::read_dir(root.join("etcd.service.d"))
        .unwrap()
        .map(|e| {
            format!(
                "etcd.service.d/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        });
    let names: Vec<String> = [
        "var-lib-etcd.mount",
        "etcd.service",
        "docker-prune.service",
        "docker-prune.timer",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(dropins)
    .collect();
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join(name)).unwrap();
            let text = if *name == "etcd.service" {
                text.replace("quay.io/coreos/etcd:v3.5.17", etcd_image)
            } else {
                text
            };
            (name.clone(), text.into_bytes())
        })
        .collect();
    strata::units::load(files.iter().map(|(n, t)| (n.as_str(), t.as_slice()))).unwrap()
}

/// The example etcd environment, reading its image feed from `feed` and of `size`
/// nodes, without warm-up pauses between replacements.
fn etcd(feed: &str, size: u16) -> Environment {
    let text = crate::harness::example_with_feed("etcd-prod", feed)
        .replace("size: 3", &format!("size: {size}"))
        .replace("warmup_seconds: 120", "warmup_seconds: 0");
    strata::config::load("environments/etcd-prod.yaml", &text, &units("x").names()).unwrap()
}

/// A fresh account holding the etcd example's SSH key secret, and the image feed.
async fn account() -> (Cloud, MockServer) {
    let cloud = Cloud::new();
    cloud
        .put_secret("eu-west-1", SECRET, &unique_key("fixed"))
        .await;
    (cloud, flatcar_feed(FLATCAR_AMI).await)
}

/// A running instance of a fixed-size cluster.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    /// Its logical id (`strata:id`), `instance/<index>`.
    id: String,
    /// Its EC2 instance id.
    instance: String,
    /// Its private address.
    address: String,
    /// The config it boots: its user data, decoded and unwrapped.
    config: String,
}

/// The running instances, by logical id.
async fn instances(cloud: &Cloud) -> Vec<Node> {
    let ec2 = cloud.connector().await.connect("eu-west-1").ec2;
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        let id = i.instance_id().unwrap().to_owned();
        let logical = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("strata:id"))
            .and_then(|t| t.value())
            .unwrap()
            .to_owned();
        let attribute = ec2
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        let data = attribute.user_data().and_then(|d| d.value()).unwrap();
        let json = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap();
        let config = strata::ignition::unwrap(&json).unwrap();
        found.push(Node {
            id: logical,
            instance: id,
            address: i.private_ip_address().unwrap().to_owned(),
            config,
        });
    }
    found.sort();
    found
}

/// `KEY=value` from the cluster.env a config writes.
fn env_value(config: &str, key: &str) -> Option<String> {
    let parsed: serde_json::Value = serde_json::from_str(config).unwrap();
    crate::harness::cluster_env(&parsed)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

#[tokio::test]
async fn a_fixed_cluster_runs_one_instance_per_node_and_rolls_node_changes() {
    let cloud = Cloud::new();
    let key = unique_key("fixed-rollout");
    cloud.put_secret("eu-west-1", SECRET, &key).await;
    let connector = cloud.connector().await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let etcd_3517 = units("quay.io/coreos/etcd:v3.5.17");

    // From nothing: the network, the template, three instances.
    let created = Scope::units(&etcd_3517)
        .apply(&connector, &[&etcd(&server.uri(), 3)], false)
        .await
        .unwrap();
    let markdown = render::markdown(&created);
    assert_eq!(
        actions(&created, Layer::Cluster),
        [
            "create launch-template",
            "create volume/0",
            "create volume/1",
            "create volume/2",
            "create instance/0",
            "create instance/1",
            "create instance/2"
        ],
        "{markdown}"
    );
    assert_eq!(actions(&created, Layer::Node), ["create node/config"]);
    assert!(!markdown.contains("AAAAC3NzaC1lZDI1NTE5"), "{markdown}");

    // Each node at its deterministic address, booting its own valid config with the key.
    let running = instances(&cloud).await;
    let placed: Vec<(&str, &str)> = running
        .iter()
        .map(|node| (node.id.as_str(), node.address.as_str()))
        .collect();
    assert_eq!(
        placed,
        [
            ("instance/0", "10.66.0.10"),
            ("instance/1", "10.66.16.10"),
            ("instance/2", "10.66.32.10")
        ]
    );
    for (n, node) in running.iter().enumerate() {
        let (ip, config) = (&node.address, &node.config);
        ignition_validate(config).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(
            parsed["passwd"]["users"][0]["sshAuthorizedKeys"][0],
            key.as_str()
        );
        assert_eq!(
            env_value(config, "ETCD_NAME"),
            Some(format!("etcd-prod-{n}"))
        );
        assert_eq!(
            env_value(config, "STRATA_NODE_IP").as_deref(),
            Some(ip.as_str())
        );
        assert_eq!(
            env_value(config, "ETCD_INITIAL_CLUSTER").as_deref(),
            Some(
                "etcd-prod-0=http://10.66.0.10:2380,etcd-prod-1=http://10.66.16.10:2380,etcd-prod-2=http://10.66.32.10:2380"
            )
        );
    }

    // Nothing changed: nothing planned.
    let e = etcd(&server.uri(), 3);
    let again = Scope::units(&etcd_3517).plan(&connector, &[&e]).await;
    assert!(again.is_empty(), "{}", render::markdown(&again));

    // A unit change is a node change: one new template version, and the instances are
    // replaced one at a time, each keeping its address.
    let etcd_3518 = units("quay.io/coreos/etcd:v3.5.18");
    let set = ChangeSet {
        base: "a".into(),
        head: "b".into(),
        environments: vec![EnvironmentChange {
            name: "etcd-prod".into(),
            change: ChangeKind::Modified,
            layers: vec![Layer::Node],
            reasons: Vec::new(),
        }],
    };
    let head: BTreeMap<String, Environment> = [(e.name.to_string(), e.clone())].into();
    let targets = engine::from_changes(&set, &head, &BTreeMap::new(), &[]);
    let planned = Planned::of(&connector, &targets, &etcd_3518).await.unwrap();
    let node_change = &planned.plan;
    let markdown = render::markdown(node_change);
    // The config is the node layer's; the instances are the cluster's, as a plan of
    // every layer has them, counted as a rollout of 3 machines, not as replacements.
    assert_eq!(
        actions(node_change, Layer::Node),
        ["update node/config"],
        "{markdown}"
    );
    assert_eq!(
        actions(node_change, Layer::Cluster),
        [
            "replace instance/0",
            "replace instance/1",
            "replace instance/2"
        ],
        "{markdown}"
    );
    let summary = node_change.summary;
    assert_eq!((summary.replace, summary.rollout), (0, 3));
    assert!(
        markdown.contains("+     Environment=ETCD_IMAGE=quay.io/coreos/etcd:v3.5.18"),
        "{markdown}"
    );
    assert!(
        markdown.contains("instances are replaced one at a time"),
        "{markdown}"
    );
    // A rolling replacement is how a node change lands: no consent needed.
    assert!(!markdown.contains("CAUTION"), "{markdown}");
    let lines = planned.apply_logged(&connector, false).await.unwrap();
    let replaced = instances(&cloud).await;
    for (was, now) in running.iter().zip(&replaced) {
        assert_eq!((&was.id, &was.address), (&now.id, &now.address));
        assert_ne!(was.instance, now.instance, "{} was replaced", was.id);
        assert!(now.config.contains("v3.5.18"));
        ignition_validate(&now.config).unwrap();
    }
    // One at a time: each old instance goes right before its successor comes.
    let order: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("terminated") || l.contains("replace instance"))
        .collect();
    assert_eq!(order.len(), 6, "{lines:#?}");
    assert!(order[0].contains("instance/0") && order[0].contains("terminated"));
    assert!(
        order[1].contains("-/+ replace instance instance/0"),
        "{order:?}"
    );
    assert!(order[2].contains("instance/1") && order[2].contains("terminated"));
    assert!(
        order[5].contains("-/+ replace instance instance/2"),
        "{order:?}"
    );
    let settled = Scope::units(&etcd_3518).plan(&connector, &[&e]).await;
    assert!(settled.is_empty(), "{}", render::markdown(&settled));
    assert_key_nowhere(
        &key,
        &[
            &lines.concat(),
            &render::markdown(&created),
            &render::markdown(node_change),
            &render::json(node_change),
        ],
    );
}

#[tokio::test]
async fn growing_adds_the_highest_indexes_and_shrinking_needs_consent() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let u = units("quay.io/coreos/etcd:v3.5.17");
    Scope::units(&u)
        .apply(&connector, &[&etcd(&server.uri(), 3)], false)
        .await
        .unwrap();
    let before = instances(&cloud).await;

    // 3 → 5: two instances launch; the running three stay (their member list is only
    // read at first boot).
    let grown = Scope::units(&u)
        .apply(&connector, &[&etcd(&server.uri(), 5)], false)
        .await
        .unwrap();
    let markdown = render::markdown(&grown);
    assert_eq!(
        actions(&grown, Layer::Cluster),
        [
            "create volume/3",
            "create volume/4",
            "create instance/3",
            "create instance/4"
        ],
        "{markdown}"
    );
    assert!(markdown.contains("etcdctl member add"), "{markdown}");
    // The member list is no node change: the template's config leaves it out.
    assert_eq!(
        actions(&grown, Layer::Node),
        Vec::<String>::new(),
        "{markdown}"
    );
    let after = instances(&cloud).await;
    assert_eq!(after.len(), 5);
    assert_eq!(&after[..3], &before[..], "running nodes are not replaced");
    assert_eq!(
        (after[3].address.as_str(), after[4].address.as_str()),
        ("10.66.0.11", "10.66.16.11")
    );
    assert_eq!(
        env_value(&after[4].config, "ETCD_INITIAL_CLUSTER")
            .unwrap()
            .split(',')
            .count(),
        5
    );

    // 5 → 3: the two highest nodes (instances and data volumes) go, only with consent.
    let refused = Scope::units(&u)
        .apply(&connector, &[&etcd(&server.uri(), 3)], false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::NeedsConsent(what) if what.len() == 4),
        "{refused}"
    );
    assert_eq!(instances(&cloud).await.len(), 5);
    let shrunk = Scope::units(&u)
        .apply(&connector, &[&etcd(&server.uri(), 3)], true)
        .await
        .unwrap();
    assert_eq!(
        actions(&shrunk, Layer::Cluster),
        [
            "delete volume/3",
            "delete volume/4",
            "delete instance/3",
            "delete instance/4"
        ]
    );
    assert_eq!(instances(&cloud).await, before);
}

#[tokio::test]
async fn an_etcd_discovery_token_is_fetched_once_and_reused() {
    let cloud = Cloud::new();
    let key = unique_key("fixed-discovery");
    cloud.put_secret("eu-west-1", SECRET, &key).await;
    let connector = cloud.connector().await;
    let images = flatcar_feed(FLATCAR_AMI).await;
    let service = MockServer::start().await;
    let secret = crate::harness::unique_token("fixed-discovery");
    let token = format!("{}/{secret}", service.uri());
    Mock::given(method("GET"))
        .and(path("/new"))
        .and(query_param("size", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{token}\n")))
        .expect(1)
        .mount(&service)
        .await;
    let discovering = |size: u16| {
        let mut e = etcd(&images.uri(), size);
        if let Some(etcd) = e.spec.node.as_mut().and_then(|n| n.etcd.as_mut()) {
            etcd.bootstrap = strata::config::EtcdBootstrap::Discovery;
            etcd.discovery_url = Some(format!("{}/new?size={{size}}", service.uri()));
        }
        e
    };
    let u = units("quay.io/coreos/etcd:v3.5.17");

    // First apply: the plan says a token will be fetched; apply fetches and keeps it.
    let first = Scope::units(&u)
        .apply(&connector, &[&discovering(3)], false)
        .await
        .unwrap();
    let markdown = render::markdown(&first);
    assert!(
        markdown.contains(&format!(
            "etcd discovery: apply fetches a token for 3 members from {}/new?size=3",
            service.uri()
        )),
        "{markdown}"
    );
    let secrets = cloud.connector().await.connect("eu-west-1").secrets;
    let stored = secrets
        .get_secret_value()
        .secret_id("strata/etcd-prod/etcd-discovery")
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({"url": token, "size": 3}));
    for Node { config, .. } in instances(&cloud).await {
        assert_eq!(
            env_value(&config, "ETCD_DISCOVERY").as_deref(),
            Some(token.as_str())
        );
        assert_eq!(env_value(&config, "ETCD_INITIAL_CLUSTER"), None);
        ignition_validate(&config).unwrap();
    }

    // The configs the instances run match what a plan renders with the stored token.
    let again = Scope::units(&u).plan(&connector, &[&discovering(3)]).await;
    assert!(again.is_empty(), "{}", render::markdown(&again));

    // Second apply (a unit change): the same token, no second fetch.
    let newer = units("quay.io/coreos/etcd:v3.5.18");
    let second = Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&connector, &[&discovering(3)], false)
        .await
        .unwrap();
    assert_eq!(actions(&second, Layer::Node).len(), 4);
    for Node { config, .. } in instances(&cloud).await {
        assert!(config.contains("v3.5.18"));
        assert_eq!(
            env_value(&config, "ETCD_DISCOVERY").as_deref(),
            Some(token.as_str())
        );
    }

    // A size change keeps the token and warns.
    let grown = Scope::units(&newer)
        .plan(&connector, &[&discovering(4)])
        .await;
    let markdown = render::markdown(&grown);
    assert!(
        markdown.contains("warning: etcd discovery: the token in strata/etcd-prod/etcd-discovery was made for 3 members and the cluster now has 4"),
        "{markdown}"
    );
    let texts: Vec<String> = [&first, &second, &grown]
        .iter()
        .map(|plan| render::markdown(plan) + &render::json(plan))
        .collect();
    for text in &texts {
        assert!(!text.contains(&secret), "a plan shows the token");
    }
    assert_key_nowhere(&key, &texts.iter().map(String::as_str).collect::<Vec<_>>());
    // The token is written to no file either (it lives in Secrets Manager and in the
    // instances' user data only).
    crate::harness::assert_secret_nowhere(&secret, &[]);
}

#[tokio::test]
async fn the_command_line_brings_up_a_fixed_cluster_and_shows_the_key_nowhere() {
    // The binary talks to moto's default account; the environment name keeps it apart.
    let secret = "tests/fixed-cli/ssh";
    let key = unique_key("fixed-cli");
    crate::cloud::put_secret("eu-west-1", secret, &key).await;
    let server = flatcar_feed(FLATCAR_AMI).await;
    let repo = GitRepo::new();
    repo.copy_dir(&project_root().join("units"), "units");
    let text =
        crate::harness::example_with_feed("etcd-prod", &server.uri()).replace(SECRET, secret);
    repo.write("environments/etcd-cli.yaml", text);
    let commit = repo.commit("etcd-cli");
    // The binary runs off this thread, which serves the image feed.
    let run = |args: &'static [&'static str]| {
        let path = repo.path().to_owned();
        tokio::task::spawn_blocking(move || {
            crate::harness::strata_with(&path, args, &crate::cloud::binary_vars())
        })
    };

    let applied = run(&["apply", "--env", "etcd-cli"]).await.unwrap();
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    for n in 0..3 {
        assert!(
            applied
                .stdout
                .contains(&format!("etcd-cli: + create instance instance/{n} (i-")),
            "{}",
            applied.stdout
        );
    }
    let again = run(&["plan", "--detailed-exitcode"]).await.unwrap();
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);

    // The commit applied is recorded on each layer's root: the VPC and the template.
    let ec2 = aws_sdk_ec2::Client::new(&crate::cloud::moto_config("eu-west-1").await);
    let templates = ec2
        .describe_launch_templates()
        .launch_template_names("etcd-cli")
        .send()
        .await
        .unwrap();
    let recorded = templates.launch_templates()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("strata:commit"))
        .and_then(|t| t.value());
    assert_eq!(recorded, Some(commit.as_str()));

    crate::harness::assert_key_nowhere(
        &key,
        &[
            &applied.stdout,
            &applied.stderr,
            &again.stdout,
            &again.stderr,
        ],
    );
    assert_eq!(
        crate::harness::files_containing(repo.path(), key.split(' ').nth(1).unwrap(), 6),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_rollout_cut_halfway_is_finished_by_the_next_apply() {
    let (cloud, server) = account().await;
    let connector = cloud.connector().await;
    let e = etcd(&server.uri(), 3);
    Scope::units(&units("quay.io/coreos/etcd:v3.5.17"))
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    let before = instances(&cloud).await;

    // The node change's writes: a template version (2), then per node a terminate, a
    // launch and the data volume's attachment. The 7th write, instance/1's launch, is
    // cut: instance/0 is new, instance/1 is gone, instance/2 is old.
    let newer = units("quay.io/coreos/etcd:v3.5.18");
    let failing = cloud.failing_connector(6).await;
    let err = Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&failing, &[&e], false)
        .await
        .unwrap_err();
    // The error says what was done and what was not.
    let report = err.to_string();
    assert!(report.contains("injected before RunInstances"), "{report}");
    assert!(
        report.contains(
            "applied before the failure: 2 changes\n  not applied:\n    etcd-prod: replace instance instance/1\n    etcd-prod: replace instance instance/2\n  hint: fix the cause and run apply again"
        ),
        "{report}"
    );
    let cut: Vec<String> = instances(&cloud).await.into_iter().map(|i| i.id).collect();
    assert_eq!(cut, ["instance/0", "instance/2"]);

    // The next run launches the missing node and replaces the old one; no duplicates.
    let resumed = Scope::units(&newer)
        .layers(&[Layer::Node])
        .apply(&connector, &[&e], false)
        .await
        .unwrap();
    assert_eq!(
        actions(&resumed, Layer::Node),
        ["create instance/1", "replace instance/2"],
        "{}",
        render::markdown(&resumed)
    );
    let after = instances(&cloud).await;
    assert_eq!(after.len(), 3);
    for (was, now) in before.iter().zip(&after) {
        assert_eq!((&was.id, &was.address), (&now.id, &now.address));
        assert_ne!(was.instance, now.instance);
        assert!(now.config.contains("v3.5.18"));
    }
}
