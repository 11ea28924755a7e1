//! What a run of the binary costs before and besides AWS: its size, the time from
//! start to its first AWS request, and rendering a 200-unit environment (throughput
//! in-process, and the peak memory of `strata render` as a process). Run with
//! `cargo bench --bench process`. Nothing here asserts on time.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const UNITS: usize = 200;

fn main() {
    let bin = env!("CARGO_BIN_EXE_strata");
    let size = std::fs::metadata(bin).expect("the binary").len();
    println!("binary: {bin}\nsize: {:.1} MiB ({size} bytes)", mib(size));

    let repo = tempfile::tempdir().expect("temp dir");
    write_repo(repo.path());
    println!(
        "\nstart to first AWS request (`strata plan --env big --layer network`), median of {RUNS} runs"
    );
    let first = median((0..RUNS).map(|_| first_request(bin, repo.path())).collect());
    println!("first request after {:.1} ms", ms(first));

    println!("\nrender of an environment with {UNITS} units");
    render_in_process(repo.path());
    peak_memory(bin, repo.path());
}

/// An environment listing `UNITS` small units (a timer each, as real fleets have many).
fn write_repo(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("environments")).unwrap();
    std::fs::create_dir_all(root.join("units")).unwrap();
    let mut names = Vec::new();
    for i in 0..UNITS {
        let name = format!("job-{i:03}.service");
        let unit = format!(
            "[Unit]\nDescription=job {i}\n[Service]\nType=oneshot\nExecStart=/usr/bin/true {i}\n[Install]\nWantedBy=multi-user.target\n"
        );
        std::fs::write(root.join("units").join(&name), unit).unwrap();
        names.push(name);
    }
    let yaml = format!(
        "region: eu-west-1\nnetwork:\n  cidr: 10.1.0.0/16\n  zones: 2\n  private_subnets: 2\n  public_subnets: 2\n  nat: single\n\
         cluster:\n  mode: autoscaling\n  min: 1\n  max: 2\n  instance_type: t3.small\n  ami: ami-0f1a7ca7000000001\n\
         node:\n  units: [{}]\n  ssh: {{ public_key_secret: bench/ssh }}\n",
        names.join(", ")
    );
    std::fs::write(root.join("environments/big.yaml"), yaml).unwrap();
}

/// Time from spawning the binary to the first byte of its first AWS request, at a
/// loopback listener standing in for the endpoint (the request is never answered).
fn first_request(bin: &str, repo: &std::path::Path) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args([
            "--repo",
            &repo.display().to_string(),
            "plan",
            "--env",
            "big",
            "--layer",
            "network",
        ])
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strata");
    let (mut stream, _) = listener.accept().expect("a request");
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("its first byte");
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// Renders per second, and the config's size, in this process.
fn render_in_process(root: &std::path::Path) {
    let files = strata::repo::read_dir(root).expect("read the repository");
    let repository = strata::repo::load(&files).expect("a valid repository");
    let environment = repository
        .environments
        .values()
        .next()
        .expect("the environment");
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK bench@strata";
    let request = strata::ignition::RenderRequest {
        environment,
        units: &repository.units,
        node: None,
        ssh_public_key: Some(key),
        etcd_discovery: None,
    };
    let before = peak_rss_kib();
    let data = strata::ignition::render(&request).expect("it renders");
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(strata::ignition::render(&request).expect("it renders"));
    }
    let each = start.elapsed() / rounds;
    println!(
        "in-process: {:.2} ms a render ({:.0} renders/s); config {} bytes in full, {} bytes of user data ({})",
        ms(each),
        1.0 / each.as_secs_f64(),
        data.full_size,
        data.json.len(),
        if data.wrapped {
            "gzip-wrapped"
        } else {
            "as is"
        }
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        println!(
            "in-process peak memory grew by {} KiB rendering",
            after.saturating_sub(before)
        );
    }
}

/// The peak resident memory of a whole `strata render --offline` run, through GNU
/// time when the machine has it.
fn peak_memory(bin: &str, root: &std::path::Path) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %e"])
        .arg(bin)
        .args([
            "--repo",
            &root.display().to_string(),
            "render",
            "--env",
            "big",
            "--offline",
        ])
        .stdout(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or_default();
            let mut parts = last.split_whitespace();
            let kib: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let secs: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
            println!(
                "`strata render --offline` as a process: peak {:.1} MiB resident, {:.0} ms",
                kib as f64 / 1024.0,
                secs * 1000.0
            );
        }
        _ => println!(
            "`strata render` as a process: /usr/bin/time (GNU time) is not here; peak memory not measured"
        ),
    }
}

/// This process's peak resident memory (Linux's VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}
