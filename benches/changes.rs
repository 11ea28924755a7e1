//! `strata changes` on a generated repository of 1,000 environments and 200 units,
//! next to `git diff --name-only` on the same two commits.
//!
//! Run with `cargo bench --bench changes`. Prints wall time (median of several runs)
//! for each scenario and the ratio to git. Not a test: nothing here asserts on time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ENVIRONMENTS: usize = 1_000;
const UNITS: usize = 200;
const RUNS: usize = 15;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    for u in 0..UNITS {
        write(repo, &format!("units/svc-{u:03}.service"), &unit(u, "1"));
    }
    for e in 0..ENVIRONMENTS {
        write(
            repo,
            &format!("environments/env-{e:04}.yaml"),
            &environment(e, "t3.small"),
        );
    }
    let base = commit(repo, "base");

    // Scenario A: 10 environment files change.
    for e in (0..ENVIRONMENTS).step_by(ENVIRONMENTS / 10) {
        write(
            repo,
            &format!("environments/env-{e:04}.yaml"),
            &environment(e, "t3.large"),
        );
    }
    let envs_only = commit(repo, "ten environments");

    // Scenario B: 5 environment files and 5 units change (each unit is listed by 15
    // environments, so 75 more environments get a node change).
    for e in (5..ENVIRONMENTS).step_by(ENVIRONMENTS / 5) {
        write(
            repo,
            &format!("environments/env-{e:04}.yaml"),
            &environment(e, "m6i.large"),
        );
    }
    for u in (0..UNITS).step_by(UNITS / 5) {
        write(repo, &format!("units/svc-{u:03}.service"), &unit(u, "2"));
    }
    let mixed = commit(repo, "five environments, five units");

    // Scenario C: nothing strata reads changes (a README edit).
    write(repo, "README.md", "docs only\n");
    let docs = commit(repo, "docs");

    // A CI checkout is a packed clone; pack this one the same way.
    git(repo, &["gc", "-q"]);
    println!(
        "repository: {ENVIRONMENTS} environments, {UNITS} units, packed; median of {RUNS} runs\n"
    );
    println!(
        "{:<36} {:>12} {:>12} {:>7}  result",
        "scenario", "strata", "git diff", "ratio"
    );
    for (name, from, to) in [
        ("10 environments changed", &base, &envs_only),
        ("5 environments + 5 units changed", &envs_only, &mixed),
        ("no environment or unit changed", &mixed, &docs),
    ] {
        let strata_bin = env!("CARGO_BIN_EXE_strata");
        let (strata_time, out) = median(|| {
            run(Command::new(strata_bin)
                .arg("--repo")
                .arg(repo)
                .args(["changes", "--base", from, "--head", to, "--format", "json"]))
        });
        let (git_time, _) = median(|| {
            run(Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["diff", "--name-only", from, to]))
        });
        let json: serde_json::Value = serde_json::from_str(&out).expect("strata prints JSON");
        let changed = json["environments"].as_array().map_or(0, Vec::len);
        println!(
            "{name:<36} {:>10.2}ms {:>10.2}ms {:>6.2}x  {changed} environments changed",
            ms(strata_time),
            ms(git_time),
            strata_time.as_secs_f64() / git_time.as_secs_f64()
        );
    }
}

fn unit(u: usize, version: &str) -> String {
    format!(
        "[Unit]\nDescription=service {u}\nAfter=network-online.target\n\n[Service]\nEnvironment=VERSION={version}\n\
         ExecStart=/usr/bin/docker run --rm --name svc-{u} example/svc:{version}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

fn environment(e: usize, instance_type: &str) -> String {
    // Each environment lists three units; unit u is listed by 15 environments.
    let units: Vec<String> = (0..3)
        .map(|k| format!("svc-{:03}.service", (e + k * 67) % UNITS))
        .collect();
    format!(
        "region: eu-west-1\ntags: {{ team: team-{team} }}\nnetwork:\n  cidr: 10.{a}.{b}.0/24\n  zones: 2\n  private_subnets: 2\n  public_subnets: 2\n  subnet_bits: 2\n  nat: single\n  security_groups:\n    app:\n      ingress: [ssh, https]\n      egress: [all-traffic]\n\
         cluster:\n  mode: autoscaling\n  min: 1\n  max: 3\n  instance_type: {instance_type}\n  os: {{ name: flatcar, channel: stable }}\n  security_groups: [app]\n\
         node:\n  units: [{units}]\n  ssh: {{ public_key_secret: env-{e:04}/ssh }}\n",
        team = e % 7,
        a = e / 256,
        b = e % 256,
        units = units.join(", "),
    )
}

fn median(mut f: impl FnMut() -> String) -> (Duration, String) {
    let mut times = Vec::with_capacity(RUNS);
    let mut out = String::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        out = f();
        times.push(start.elapsed());
    }
    times.sort();
    (times[RUNS / 2], out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn write(repo: &Path, path: &str, contents: &str) {
    let full = repo.join(path);
    std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
    std::fs::write(full, contents).expect("write");
}

fn git(repo: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@strata.invalid",
        ])
        .args(args))
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"]).trim().to_owned()
}
