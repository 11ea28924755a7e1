//! A user's repository, an AWS account of its own behind the fault proxy, an image feed
//! and the SSH key in Secrets Manager: an example environment ready for the `strata`
//! binary to plan and apply, as a user's terminal or workflow would.

use std::collections::BTreeMap;
use std::process::Child;

use aws_sdk_autoscaling::types::LifecycleState;
use wiremock::MockServer;

use crate::cloud::Cloud;
use crate::feed::{FLATCAR_AMI, flatcar_feed};
use crate::harness::{GitRepo, Output, example_with_feed, project_root, unique_key};
use crate::inventory::Inventory;
use crate::proxy::Proxy;

/// What renewing the apply lock sends, at moments of its own, every third of a lease:
/// not counted as an apply's writes, so kill points fall in the same place each run.
/// (Taking a lock a first time is `CreateSecret`, which is counted.)
const RENEWALS: [&str; 2] = ["PutSecretValue", "UpdateSecretVersionStage"];

/// The text of example `name` made to run against moto: its image from the feed at
/// `feed`, no warm-ups between replacements, the web example's certificate from the
/// account.
pub fn example_text(name: &str, feed: &str, cloud: &Cloud) -> String {
    example_with_feed(name, feed)
        .replace("warmup_seconds: 120", "warmup_seconds: 0")
        .replace("warmup_seconds: 180", "warmup_seconds: 0")
        .replace(
            "os: { name: fedora-coreos, channel: stable }",
            &format!("ami: {FLATCAR_AMI}"),
        )
        .replace(
            "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            &cloud.certificate("eu-west-1"),
        )
}

/// Example environments in a repository of their own, with their own account.
pub struct Scenario {
    pub cloud: Cloud,
    pub proxy: Proxy,
    pub repo: GitRepo,
    pub key: String,
    /// `STRATA_LOCK_LEASE_SECONDS` for every run, when set.
    pub lease: Option<u64>,
    _feed: MockServer,
}

impl Scenario {
    /// Example `name` committed in a new repository, its key stored in a new account.
    pub async fn new(name: &str) -> Scenario {
        Scenario::of(&[name]).await
    }

    /// Examples `names` committed together in a new repository, the key each names
    /// stored in a new account.
    pub async fn of(names: &[&str]) -> Scenario {
        let cloud = Cloud::new();
        let feed = flatcar_feed(FLATCAR_AMI).await;
        let key = unique_key(&format!("{}-{}", names.join("-"), cloud.account));
        let repo = GitRepo::new();
        repo.copy_dir(&project_root().join("units"), "units");
        for name in names {
            let text = example_text(name, &feed.uri(), &cloud);
            let secret = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("ssh: {"))
                .and_then(|rest| rest.split("public_key_secret: ").nth(1))
                .and_then(|rest| rest.strip_suffix(" }"))
                .expect("the example names its key's secret")
                .to_owned();
            cloud.put_secret("eu-west-1", &secret, &key).await;
            repo.write(&format!("environments/{name}.yaml"), text);
        }
        repo.commit(&names.join(", "));
        let proxy = Proxy::new(&cloud.account);
        Scenario {
            cloud,
            proxy,
            repo,
            key,
            lease: None,
            _feed: feed,
        }
    }

    /// Runs the binary to its end, off this thread (which serves the image feed).
    /// `attempts` as in [`Proxy::binary_vars`].
    pub async fn run(&self, args: &[&str], attempts: Option<u32>) -> Output {
        let path = self.repo.path().to_owned();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let vars = self.vars(&self.proxy, attempts);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::harness::strata_with(&path, &args, &vars)
        })
        .await
        .expect("the run finishes")
    }

    /// The binary's environment: `proxy`, `attempts` as in [`Proxy::binary_vars`], the
    /// lease.
    pub fn vars(&self, proxy: &Proxy, attempts: Option<u32>) -> Vec<(&'static str, String)> {
        let mut vars = proxy.binary_vars(attempts);
        if let Some(lease) = self.lease {
            vars.push(("STRATA_LOCK_LEASE_SECONDS", lease.to_string()));
        }
        vars
    }

    /// Starts the binary through `proxy` without waiting for it, retries off, its
    /// output captured.
    pub fn start_through(&self, proxy: &Proxy, args: &[&str]) -> Child {
        crate::harness::strata_command(self.repo.path(), args, &self.vars(proxy, Some(1)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start strata")
    }

    /// Starts the binary through the scenario's proxy, its output discarded.
    pub fn start(&self, args: &[&str]) -> Child {
        crate::harness::strata_command(self.repo.path(), args, &self.vars(&self.proxy, Some(1)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start strata")
    }

    /// A fresh proxy to the same account (the old one may be holding requests).
    pub fn reconnect(&mut self) {
        self.proxy = Proxy::new(&self.cloud.account);
        self.proxy.uncount(&RENEWALS);
    }

    /// Runs with an apply-lock lease of `seconds`; the renewals it brings are not
    /// counted as writes.
    pub fn set_lease(&mut self, seconds: u64) {
        self.lease = Some(seconds);
        self.proxy.uncount(&RENEWALS);
    }

    /// The in-service machines of auto-scaling group `name`: each instance's id and
    /// the template version AWS says it was launched from.
    pub async fn group_machines(&self, name: &str) -> BTreeMap<String, String> {
        let aws = self.cloud.connector().await.connect("eu-west-1");
        let out = aws
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        out.auto_scaling_groups()
            .iter()
            .flat_map(|g| g.instances())
            .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
            .map(|i| {
                let version = i.launch_template().and_then(|t| t.version());
                (
                    i.instance_id().expect("an instance id").to_owned(),
                    version
                        .expect("the version it was launched from")
                        .to_owned(),
                )
            })
            .collect()
    }

    /// What the account holds now.
    pub async fn inventory(&self) -> Inventory {
        crate::inventory::inventory(&self.cloud.connector().await.connect("eu-west-1")).await
    }
}
