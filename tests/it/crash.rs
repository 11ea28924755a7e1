//! Crash consistency: an apply killed with SIGKILL at a known write (the proxy holds
//! it, sent on to moto or not, and the kill lands while strata waits for the answer),
//! then run again, ends where an uninterrupted apply ends: the same resources, none
//! twice, none untagged, and a plan with nothing left to do.

use std::time::Duration;

use crate::proxy::Hold;
use crate::scenario::Scenario;

/// The apply lock's lease in these runs, in seconds.
const LEASE: u64 = 2;

/// Kills the apply of `example` at `points` of its writes (spread over all of them,
/// every layer) and checks that each rerun converges.
async fn killed_and_rerun(example: &str, points: usize) {
    let apply = ["apply", "--env", example];
    let mut undisturbed = Scenario::new(example).await;
    // A killed apply's lock holds the rerun back for no more than this.
    undisturbed.set_lease(LEASE);
    let out = undisturbed.run(&apply, Some(1)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let writes = undisturbed.proxy.writes();
    let expected = undisturbed.inventory().await;
    expected.assert_clean("undisturbed");
    assert!(
        writes.len() >= points,
        "{} writes: {writes:?}",
        writes.len()
    );

    for i in 0..points {
        // Evenly over the writes, from the first to the last; the write itself done
        // or not, alternately.
        let nth = 1 + i * (writes.len() - 1) / (points - 1);
        let hold = if i % 2 == 0 {
            Hold::After(nth)
        } else {
            Hold::Before(nth)
        };
        let context = format!("{example}: killed at {hold:?} ({})", writes[nth - 1]);
        let mut s = Scenario::new(example).await;
        s.set_lease(LEASE);
        s.proxy.hold(hold);
        let mut child = s.start(&apply);
        let held = tokio::task::block_in_place(|| s.proxy.wait_held(Duration::from_secs(120)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let held = held.unwrap_or_else(|| panic!("{context}: the write was never sent"));
        assert_eq!(
            held.operation,
            writes[nth - 1],
            "{context}: writes come in the same order"
        );

        s.reconnect();
        let killed = s.inventory().await;
        assert_ne!(killed, expected, "{context}: the kill stopped nothing");

        let rerun = s.run(&apply, Some(1)).await;
        assert_eq!(
            rerun.code, 0,
            "{context}: the rerun failed:\n{}",
            rerun.stderr
        );
        let plan = s.run(&["plan", "--detailed-exitcode"], Some(1)).await;
        assert_eq!(
            plan.code, 0,
            "{context}: left to do:\n{}{}",
            plan.stdout, plan.stderr
        );
        let got = s.inventory().await;
        got.assert_clean(&context);
        assert_eq!(got, expected, "{context}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_cluster_apply_killed_at_any_write_converges_when_run_again() {
    killed_and_rerun("rabbitmq-prod", 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_scaling_apply_killed_at_any_write_converges_when_run_again() {
    killed_and_rerun("web-prod", 10).await;
}
