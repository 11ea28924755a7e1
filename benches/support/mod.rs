//! What the plan and apply benchmarks share: moto, the SDK pointed at it, and the
//! environments they work on.

pub mod replay;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Credentials, Region};
use strata::aws::Connector;
use strata::config::Environment;
use strata::engine;

/// The commit the benchmarks' environments are applied from.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The SSH key every environment's node config reads from Secrets Manager.
pub const KEY_SECRET: &str = "bench/ssh";

/// The unit every environment's machines run.
pub const UNIT: &str = "[Unit]\nDescription=app\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n";

/// moto on a free loopback port (tests/moto_server.py, as the tests run it), until
/// dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let home = std::env::var("HOME").unwrap_or_default();
        let python = std::env::var("STRATA_MOTO_PYTHON")
            .unwrap_or_else(|_| format!("{home}/.cache/strata/moto-5.2.5/bin/python"));
        let mut child = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto_server.py"))
            .env(
                "MOTO_AMIS_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/amis.json"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("moto is installed (scripts/setup)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("moto's port");
        let port: u16 = line.trim().parse().expect("moto's port");
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// strata's connector to moto.
    pub async fn connector(&self) -> Connector {
        Connector::new(sdk_config(&self.url).await, Vec::new())
    }

    /// Creates the SSH key's secret every environment's node config reads.
    pub async fn create_key(&self) {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK bench@strata";
        self.connector()
            .await
            .connect("eu-west-1")
            .secrets
            .create_secret()
            .name(KEY_SECRET)
            .secret_string(key)
            .send()
            .await
            .expect("create the key's secret");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // moto serves until its stdin closes.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The benchmarks' runtime: two workers, so a server serves while the benchmark waits.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The SDK pointed at `url`, retries off.
pub async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

/// Environment `prefix-i`: 2 zones, 4 subnets, a NAT gateway, a security group, an
/// application load balancer with a listener, an auto-scaling group (1 to 2) from a
/// Flatcar image found through `feed`, and a node config with one unit and a key.
pub fn environment_yaml(i: usize, feed: &str) -> String {
    format!(
        "region: eu-west-1\nnetwork:\n  cidr: 10.{}.{}.0/20\n  zones: 2\n  private_subnets: 2\n  public_subnets: 2\n  nat: single\n  \
         security_groups:\n    app:\n      ingress: [ssh, http]\n  load_balancers:\n    api:\n      type: application\n      \
         subnets: public\n      security_groups: [app]\n      listeners:\n        - {{ front: http, back: 80 }}\n\
         cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  \
         os: {{ name: flatcar, channel: stable, feed_url: \"{feed}/{{channel}}.json\" }}\n  security_groups: [app]\n  load_balancers: [api]\n\
         node:\n  units: [app.service]\n  ssh: {{ public_key_secret: {KEY_SECRET} }}\n",
        i / 16,
        (i % 16) * 16,
    )
}

/// Environments `prefix-i` for each `i` of `range`, parsed.
pub fn environments(
    prefix: &str,
    range: std::ops::Range<usize>,
    feed: &str,
) -> BTreeMap<String, Environment> {
    let units = BTreeSet::from(["app.service".to_owned()]);
    range
        .map(|i| {
            let name = format!("{prefix}-{i}");
            let file = format!("environments/{name}.yaml");
            let env = strata::config::load(&file, &environment_yaml(i, feed), &units)
                .expect("a valid environment");
            (name, env)
        })
        .collect()
}

/// A repository holding `prefix-0` to `prefix-(count-1)` and the unit, as a user's
/// checkout would.
pub fn write_repository(root: &Path, prefix: &str, count: usize, feed: &str) {
    std::fs::create_dir_all(root.join("environments")).expect("environments/");
    std::fs::create_dir_all(root.join("units")).expect("units/");
    std::fs::write(root.join("units/app.service"), UNIT).expect("the unit");
    for i in 0..count {
        let file = root.join(format!("environments/{prefix}-{i}.yaml"));
        std::fs::write(file, environment_yaml(i, feed)).expect("an environment");
    }
}

pub fn units() -> strata::units::UnitSet {
    strata::units::load([("app.service", UNIT.as_bytes())]).expect("the unit")
}

/// Plans `environments` (every layer) and applies the plan, up to `parallel` at once:
/// the apply's wall time (the plan's apart).
pub async fn apply(
    connector: &Connector,
    environments: &BTreeMap<String, Environment>,
    parallel: usize,
) -> Duration {
    try_apply(connector, environments, parallel)
        .await
        .expect("apply")
}

/// [`apply`], failing as strata's apply fails.
pub async fn try_apply(
    connector: &Connector,
    environments: &BTreeMap<String, Environment>,
    parallel: usize,
) -> Result<Duration, engine::EngineError> {
    let targets = engine::select(environments, &[], &[]).expect("targets");
    let units = units();
    let (plan, observed) = engine::plan(connector, &targets, &units, None, Some(COMMIT))
        .await
        .expect("plan");
    assert!(plan.unplanned.is_empty(), "every environment is planned");
    let mut quiet = |_: &str| {};
    let start = Instant::now();
    engine::apply(
        connector, &plan, &observed, &targets, false, parallel, &mut quiet,
    )
    .await?;
    Ok(start.elapsed())
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
