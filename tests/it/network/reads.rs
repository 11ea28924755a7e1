//! What a network plan asks AWS for: a fixed number of reads, shared by every
//! environment of a region, a hundred environments a request.

use strata::config::Environment;
use strata::plan::render;

use super::{BASE, NETWORK, count_vpcs, env, subnets};
use crate::cloud::Cloud;

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
