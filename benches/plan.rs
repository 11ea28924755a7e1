//! Requests and wall time of a network plan against moto, next to the slowest single
//! read of the same run. Run with `cargo bench --bench plan` (after scripts/setup).
//!
//! Sets up 1 and then 10 environments (each: 2 zones, 4 subnets, NAT, 2 security
//! groups, an application load balancer), then plans them; then the same with all
//! three layers, once with an auto-scaling group and once with a fixed-size cluster of
//! 3. Nothing here asserts on time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::types::Filter;
use strata::aws::Connector;
use strata::config::{Environment, Layer};
use strata::engine;

// The tests' image feed: a file with nothing else from their harness in it.
#[path = "../tests/it/feed.rs"]
mod feed;

const RUNS: usize = 9;

/// The commit the benchmark's environments are applied from.
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn environment(i: usize) -> Environment {
    let yaml = format!(
        "region: eu-west-1\nnetwork:\n  cidr: 10.{i}.0.0/16\n  zones: 2\n  private_subnets: 2\n  public_subnets: 2\n  nat: single\n  \
         security_groups:\n    app:\n      ingress: [ssh, https, postgres]\n      egress: [all-traffic]\n    lb:\n      ingress: [http]\n      \
         ingress_cidrs: [0.0.0.0/0]\n  load_balancers:\n    api:\n      type: application\n      subnets: public\n      \
         security_groups: [lb]\n      listeners:\n        - {{ front: http, back: 8080 }}\n"
    );
    strata::config::load(
        &format!("environments/bench-{i}.yaml"),
        &yaml,
        &BTreeSet::new(),
    )
    .expect("valid environment")
}

fn main() {
    let home = std::env::var("HOME").unwrap_or_default();
    let python = std::env::var("STRATA_MOTO_PYTHON")
        .unwrap_or_else(|_| format!("{home}/.cache/strata/moto-5.2.5/bin/python"));
    let mut moto = Command::new(python)
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
    BufReader::new(moto.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let moto_port: u16 = line.trim().parse().expect("port");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for latency in [Duration::ZERO, Duration::from_millis(20)] {
            let port = if latency.is_zero() {
                moto_port
            } else {
                latency_proxy(moto_port, latency).await
            };
            println!(
                "\nnetwork plan against moto on loopback{}; median of {RUNS} runs\n",
                if latency.is_zero() {
                    String::new()
                } else {
                    format!(", {} ms added to every request", latency.as_millis())
                }
            );
            run(&format!("http://127.0.0.1:{port}")).await;
        }
        let url = format!("http://127.0.0.1:{moto_port}");
        let feed = feed::flatcar_feed(feed::FLATCAR_AMI).await;
        for (kind, cluster) in [
            ("auto-scaling cluster", Cluster::Autoscaling),
            ("fixed-size cluster of 3", Cluster::Fixed),
        ] {
            println!("\nthree-layer plan (network, {kind}, node) against moto on loopback; median of {RUNS} runs\n");
            three_layers(&url, &url, &feed, cluster, &[1, 10]).await;
        }
        // Applied straight to moto, planned behind the latency proxy: 1, 10 and 100
        // environments, the ratio to one environment's plan in the same run.
        let proxied = format!(
            "http://127.0.0.1:{}",
            latency_proxy(moto_port, Duration::from_millis(20)).await
        );
        println!(
            "\nthree-layer plan (network, auto-scaling cluster, node), 20 ms added to every request; median of {RUNS} runs\n"
        );
        three_layers(&url, &proxied, &feed, Cluster::Autoscaling, &[1, 10, 100]).await;
    });
    drop(moto.stdin.take());
    let _ = moto.wait();
}

/// The SDK pointed at moto (or the proxy in front of it), retries off.
async fn moto_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

/// A loopback proxy that delays every request by `latency`, as a distant AWS would.
async fn latency_proxy(target: u16, latency: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(latency).await;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    port
}

async fn run(url: &str) {
    {
        let config = moto_config(url).await;
        println!(
            "{:<14} {:>6} {:>10} {:>14} {:>7} {:>15}",
            "environments", "reads", "plan", "slowest read", "ratio", "reads in series"
        );
        for count in [1usize, 10] {
            // The same environments in every pass: a later pass finds them applied.
            let envs: Vec<Environment> = (0..count).map(environment).collect();
            let map: BTreeMap<String, Environment> = envs
                .iter()
                .map(|e| (e.name.to_string(), e.clone()))
                .collect();
            let targets = engine::select(&map, &[], &[Layer::Network]).expect("targets");
            let connector = Connector::new(config.clone(), Vec::new());
            let (reads, _drift_reads, plan) = apply_then_plan(
                &connector,
                &connector,
                &targets,
                &strata::units::UnitSet::default(),
            )
            .await;
            let (slowest, series) = single_reads(&connector, &envs).await;
            println!(
                "{count:<14} {reads:>6} {:>8.1}ms {:>12.1}ms {:>6.2}x {:>13.1}ms",
                ms(plan),
                ms(slowest),
                plan.as_secs_f64() / slowest.as_secs_f64(),
                ms(series)
            );
        }
    }
}

/// The two kinds of cluster a three-layer plan is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cluster {
    Autoscaling,
    Fixed,
}

/// A whole environment per plan: network, a cluster from a Flatcar image (feed served
/// on loopback) and its node config with a key from Secrets Manager.
async fn three_layers(
    apply_url: &str,
    plan_url: &str,
    feed: &wiremock::MockServer,
    cluster: Cluster,
    counts: &[usize],
) {
    let connector = Connector::new(moto_config(apply_url).await, Vec::new());
    let planner = Connector::new(moto_config(plan_url).await, Vec::new());
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK bench@strata";
    // Both kinds share the secret; their environments have their own names.
    let _ = connector
        .connect("eu-west-1")
        .secrets
        .create_secret()
        .name("bench/ssh")
        .secret_string(key)
        .send()
        .await;
    let (prefix, machines) = match cluster {
        Cluster::Autoscaling => (
            "group",
            "cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n",
        ),
        Cluster::Fixed => ("fixed", "cluster:\n  mode: fixed\n  size: 3\n"),
    };
    let unit = "[Unit]\nDescription=app\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    let units = strata::units::load([("app.service", unit.as_bytes())]).expect("unit");
    println!(
        "{:<14} {:>6} {:>12} {:>10} {:>14} {:>12}",
        "environments", "reads", "drift reads", "plan", "÷ one's plan", "bare plan"
    );
    let mut one = None;
    for &count in counts {
        let envs: Vec<Environment> = (0..count)
            .map(|i| {
                let yaml = format!(
                    "region: eu-west-1\nnetwork:\n  cidr: 10.{}.0.0/16\n  zones: 2\n  private_subnets: 2\n  public_subnets: 2\n  nat: single\n  \
                     security_groups:\n    app:\n      ingress: [ssh, http]\n  load_balancers:\n    api:\n      type: application\n      \
                     subnets: public\n      security_groups: [app]\n      listeners:\n        - {{ front: http, back: 80 }}\n\
                     {machines}  instance_type: t3.small\n  \
                     os: {{ name: flatcar, channel: stable, feed_url: \"{}/{{channel}}.json\" }}\n  security_groups: [app]\n  load_balancers: [api]\n\
                     node:\n  units: [app.service]\n  ssh: {{ public_key_secret: bench/ssh }}\n",
                    100 + i,
                    feed.uri()
                );
                strata::config::load(&format!("environments/{prefix}-{i}.yaml"), &yaml, &units.names()).expect("valid environment")
            })
            .collect();
        let map: BTreeMap<String, Environment> = envs
            .iter()
            .map(|e| (e.name.to_string(), e.clone()))
            .collect();
        let targets = engine::select(&map, &[], &[]).expect("targets");
        let (reads, drift_reads, plan) =
            apply_then_plan(&connector, &planner, &targets, &units).await;
        let base = *one.get_or_insert(plan);
        // The same plan straight to moto: what moto's own time is, latency apart.
        let bare = if apply_url == plan_url {
            plan
        } else {
            apply_then_plan(&connector, &connector, &targets, &units)
                .await
                .2
        };
        println!(
            "{count:<14} {reads:>6} {drift_reads:>12} {:>8.1}ms {:>13.2}x {:>10.1}ms",
            ms(plan),
            plan.as_secs_f64() / base.as_secs_f64(),
            ms(bare)
        );
    }
}

/// Applies `targets` through `connector`, then plans them again `RUNS` times through
/// `planner` (each plan must be empty): the reads of one plan, the reads of a drift
/// check, and the plan's median wall time.
async fn apply_then_plan(
    connector: &Connector,
    planner: &Connector,
    targets: &[engine::Target],
    units: &strata::units::UnitSet,
) -> (usize, usize, Duration) {
    // A commit, as a run from a checkout or the Action has: apply records it, and a
    // VPC with a recorded commit costs no DNS attribute reads.
    let (plan, observed) = engine::plan(connector, targets, units, None, Some(COMMIT))
        .await
        .expect("plan");
    let mut quiet = |_: &str| {};
    let parallel = usize::from(engine::DEFAULT_PARALLEL);
    engine::apply(
        connector, &plan, &observed, targets, false, parallel, &mut quiet,
    )
    .await
    .expect("apply");
    let mut times = Vec::new();
    let mut reads = 0;
    for _ in 0..RUNS {
        let before = planner.metrics().reads();
        let start = Instant::now();
        let (plan, _) = engine::plan(planner, targets, units, None, Some(COMMIT))
            .await
            .expect("plan");
        times.push(start.elapsed());
        reads = planner.metrics().reads() - before;
        assert!(
            plan.is_empty(),
            "a fresh apply leaves nothing to plan:\n{}",
            strata::plan::render::markdown(&plan)
        );
    }
    // A drift check of the same environments, looking for orphans in their region too
    // (an earlier pass's environments are orphans to this one: only the reads count).
    let before = planner.metrics().reads();
    let regions = ["eu-west-1".to_owned()];
    engine::drift(planner, targets, units, Some(COMMIT), Some(&regions))
        .await
        .expect("drift");
    let drift_reads = planner.metrics().reads() - before;
    (reads, drift_reads, median(times))
}

/// The slowest of the reads a plan makes, each timed alone (median of runs), and
/// their sum (what the plan would cost with one request at a time).
async fn single_reads(connector: &Connector, envs: &[Environment]) -> (Duration, Duration) {
    let aws = connector.connect("eu-west-1");
    let names: Vec<String> = envs.iter().map(|e| e.name.to_string()).collect();
    let tag = || {
        Filter::builder()
            .name("tag:strata:environment")
            .set_values(Some(names.clone()))
            .build()
    };
    let mut worst = Duration::ZERO;
    let mut series = Duration::ZERO;
    for op in [
        "vpcs",
        "subnets",
        "igws",
        "addresses",
        "nats",
        "route tables",
        "groups",
        "load balancers",
        "target groups",
        "zones",
    ] {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let ok = match op {
                "vpcs" => aws.ec2.describe_vpcs().filters(tag()).send().await.is_ok(),
                "subnets" => aws
                    .ec2
                    .describe_subnets()
                    .filters(tag())
                    .send()
                    .await
                    .is_ok(),
                "igws" => aws
                    .ec2
                    .describe_internet_gateways()
                    .filters(tag())
                    .send()
                    .await
                    .is_ok(),
                "addresses" => aws
                    .ec2
                    .describe_addresses()
                    .filters(tag())
                    .send()
                    .await
                    .is_ok(),
                "nats" => aws
                    .ec2
                    .describe_nat_gateways()
                    .filter(tag())
                    .send()
                    .await
                    .is_ok(),
                "route tables" => aws
                    .ec2
                    .describe_route_tables()
                    .filters(tag())
                    .send()
                    .await
                    .is_ok(),
                "groups" => aws
                    .ec2
                    .describe_security_groups()
                    .filters(tag())
                    .send()
                    .await
                    .is_ok(),
                "load balancers" => aws.elb.describe_load_balancers().send().await.is_ok(),
                "target groups" => aws.elb.describe_target_groups().send().await.is_ok(),
                _ => aws.ec2.describe_availability_zones().send().await.is_ok(),
            };
            assert!(ok, "{op}");
            times.push(start.elapsed());
        }
        let typical = median(times);
        worst = worst.max(typical);
        series += typical;
    }
    (worst, series)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
