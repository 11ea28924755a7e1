//! Independent environments applied side by side, next to each applied alone. Run
//! with `cargo bench --bench apply` (after scripts/setup).
//!
//! Each environment is the plan benchmark's: a network with a NAT gateway and a load
//! balancer, an auto-scaling group and its node config, created from nothing. Every
//! request goes to moto through a server that holds it first (`support::replay`): a
//! write for `WRITE`, a read for `READ`, each on its own timer, as a distant region
//! answers. The figure is the apply of `N` environments at once divided by the slowest
//! of the same environments applied one at a time. Nothing here asserts on time.

#[allow(dead_code)]
#[path = "../tests/it/feed.rs"]
mod feed;
// Shared with the plan benchmark, which uses other parts of it.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use strata::aws::Connector;
use support::replay::{Call, Mode, Recording, Server};
use support::{Moto, ms};

/// Environments applied at once.
const N: usize = 10;
/// How long a write is held: AWS's mutating calls take longer than its reads.
const WRITE: Duration = Duration::from_millis(200);
const READ: Duration = Duration::from_millis(50);

fn latency(call: &Call) -> Duration {
    if call.is_read() { READ } else { WRITE }
}

fn main() {
    support::runtime().block_on(async {
        let moto = Moto::start();
        moto.create_key().await;
        let server = Server::start(
            Mode::Forward {
                upstream: moto.url.clone(),
                latency,
            },
            Recording::default(),
        )
        .await;
        let connector = Connector::new(support::sdk_config(server.url()).await, Vec::new());
        let feed = feed::flatcar_feed(feed::FLATCAR_AMI).await;
        println!(
            "apply of environments created from nothing (network, auto-scaling group, node); \
             writes held {} ms, reads {} ms\n",
            WRITE.as_millis(),
            READ.as_millis()
        );

        let mut slowest = Duration::ZERO;
        let mut requests = 0;
        for i in 0..N {
            let envs = support::environments("alone", i..i + 1, &feed.uri());
            server.take_seen();
            let wall = support::apply(&connector, &envs, 1).await;
            requests = server.take_seen().requests;
            server.take_recording();
            println!("alone-{i}: {:.0} ms", ms(wall));
            slowest = slowest.max(wall);
        }
        println!(
            "slowest alone: {:.0} ms ({requests} requests an environment, the plan's included)\n",
            ms(slowest)
        );

        for parallel in [N, usize::from(strata::engine::DEFAULT_PARALLEL)] {
            let envs = support::environments(&format!("at-once-{parallel}"), 0..N, &feed.uri());
            let wall = support::apply(&connector, &envs, parallel).await;
            server.take_recording();
            println!(
                "{N} environments, --parallel {parallel}: {:.0} ms, {:.2}x the slowest alone",
                ms(wall),
                wall.as_secs_f64() / slowest.as_secs_f64()
            );
        }
    });
}
