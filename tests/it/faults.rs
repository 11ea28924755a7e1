//! AWS misbehaving between strata and moto (the fault proxy): transient faults are
//! survived by the SDK's standard retry policy (backoff with jitter) and leave what an
//! undisturbed apply leaves; a persistent fault stops the apply with the call, the
//! resource and what was and was not applied, and the next run converges.

use std::time::Duration;

use crate::proxy::{Fault, Requests};
use crate::scenario::Scenario;

const APPLY: [&str; 3] = ["apply", "--env", "rabbitmq-prod"];
const PLAN: [&str; 2] = ["plan", "--detailed-exitcode"];

#[tokio::test]
async fn transient_faults_are_retried_and_leave_what_an_undisturbed_apply_leaves() {
    let quiet = Scenario::new("rabbitmq-prod").await;
    let noisy = Scenario::new("rabbitmq-prod").await;
    let faults = [
        Fault::Throttle,
        Fault::Status(500),
        Fault::Status(503),
        Fault::Drop,
        Fault::Slow(Duration::from_millis(1500)),
    ];
    noisy.proxy.inject(Requests::EveryNth(4), &faults);

    let undisturbed = quiet.run(&APPLY, Some(1)).await;
    assert_eq!(undisturbed.code, 0, "{}", undisturbed.stderr);
    // The SDK's standard policy, as a user's run has it: 3 attempts.
    let disturbed = noisy.run(&APPLY, None).await;
    assert_eq!(disturbed.code, 0, "{}", disturbed.stderr);
    let injected: Vec<Fault> = noisy.proxy.calls().iter().filter_map(|c| c.fault).collect();
    for fault in faults {
        let n = injected.iter().filter(|f| **f == fault).count();
        assert!(n >= 3, "{fault:?} injected {n} times");
    }
    let writes_faulted = noisy
        .proxy
        .calls()
        .iter()
        .filter(|c| c.fault.is_some() && c.is_write())
        .count();
    assert!(writes_faulted >= 5, "{writes_faulted} writes faulted");

    // Retried requests and error answers write the key nowhere.
    crate::harness::assert_key_nowhere(&noisy.key, &[&disturbed.stdout, &disturbed.stderr]);

    noisy.proxy.heal();
    let again = noisy.run(&PLAN, Some(1)).await;
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let (expected, got) = (quiet.inventory().await, noisy.inventory().await);
    expected.assert_clean("undisturbed");
    got.assert_clean("disturbed");
    assert_eq!(expected, got);
}

#[tokio::test]
async fn a_persistent_fault_names_the_call_the_resource_and_what_was_applied() {
    let s = Scenario::new("rabbitmq-prod").await;
    s.proxy.inject(
        Requests::Operation("CreateNatGateway".to_owned()),
        &[Fault::Status(503)],
    );
    let failed = s.run(&APPLY, None).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let stderr = &failed.stderr;
    assert!(
        stderr.starts_with(
            "error: environment `rabbitmq-prod`: creating NAT gateway nat/0: Http503: AWS answered HTTP 503"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n  applied before the failure: 7 changes\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n  not applied:\n    rabbitmq-prod: create NAT gateway nat/0\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rabbitmq-prod: create instance instance/2\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: fix the cause and run apply again; it continues from what exists"),
        "{stderr}"
    );
    let nat_attempts = s
        .proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "CreateNatGateway")
        .count();
    assert_eq!(nat_attempts, 3, "the SDK's standard policy tries 3 times");

    s.proxy.heal();
    let converged = s.run(&APPLY, Some(1)).await;
    assert_eq!(converged.code, 0, "{}", converged.stderr);
    let again = s.run(&PLAN, Some(1)).await;
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    s.inventory().await.assert_clean("after the fault");
}
