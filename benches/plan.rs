//! What a plan costs strata itself: reads, dependent rounds of requests, wall time
//! and peak memory of `strata plan` (the process a user or the Action runs) for 1, 10,
//! 100 and 1,000 environments with nothing to do. Run with `cargo bench --bench plan`
//! (after scripts/setup).
//!
//! moto answers one request at a time and slows as its account fills, so a plan timed
//! against it measures moto. Instead each count's environments are applied to moto
//! once, and the plan's answers recorded there (`support::replay`, kept under the
//! target directory; `STRATA_BENCH_RECORD=1` records afresh, and a recording the
//! plan no longer matches is recorded again). The plans are then timed against the
//! recording, every answer after the same latency and none queued behind another:
//! wall ÷ latency is then about the number of rounds strata waits through, and the
//! server counts those rounds itself. Then each plan runs once more against a server
//! that also enforces ELBv2's documented bucket for reads, paced (strata's default)
//! and unpaced. Nothing here asserts on time.

#[allow(dead_code)]
#[path = "../tests/it/feed.rs"]
mod feed;
// Shared with the apply benchmark, which uses other parts of it.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::replay::{Mode, Recording, Seen, Server};
use support::{Moto, median, ms};

/// Environment counts; `STRATA_BENCH_COUNTS=1,10` for a quicker run.
const COUNTS: [usize; 4] = [1, 10, 100, 1_000];

/// Every answer's latency: far above strata's own work between rounds, so that
/// wall ÷ latency counts rounds, and about what a distant region's API takes.
const LATENCY: Duration = Duration::from_millis(100);

const RUNS: usize = 5;

/// What one count's recording holds besides the answers.
#[derive(Serialize, Deserialize)]
struct Recorded {
    plan: Recording,
    /// The requests of `strata drift` of the same environments; `None` while the
    /// plan's answers are saved and the drift check has not finished.
    #[serde(default)]
    drift_reads: Option<usize>,
}

fn main() {
    let counts: Vec<usize> = match std::env::var("STRATA_BENCH_COUNTS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("STRATA_BENCH_COUNTS: numbers"))
            .collect(),
        Err(_) => COUNTS.to_vec(),
    };
    let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-replay");
    std::fs::create_dir_all(&store).expect("the recordings' directory");
    support::runtime().block_on(async {
        let fresh = std::env::var_os("STRATA_BENCH_RECORD").is_some();
        let recorded: Vec<Option<Recorded>> = counts
            .iter()
            .map(|&n| {
                let file = recording_file(&store, n);
                let saved = std::fs::read(file).ok()?;
                (!fresh).then(|| serde_json::from_slice(&saved).ok())?
            })
            .collect();
        // Only the counts without a recording are recorded.
        let missing: Vec<usize> = counts
            .iter()
            .zip(&recorded)
            .filter(|(_, r)| r.is_none())
            .map(|(&n, _)| n)
            .collect();
        let mut fresh_ones = record(&store, &missing).await.into_iter();
        let mut recorded: Vec<Recorded> = recorded
            .into_iter()
            .map(|r| r.or_else(|| fresh_ones.next()).expect("every count recorded"))
            .collect();
        let feed = feed_after(LATENCY).await;
        let mut rows = Vec::new();
        for (&count, recorded) in counts.iter().zip(&mut recorded) {
            let row = match replay(count, recorded, &feed).await {
                Some(row) => row,
                // Only this count is recorded again: a thousand environments take moto
                // hours to apply.
                None => {
                    println!("the recording of {count} no longer matches strata's reads: recording it afresh");
                    *recorded = record(&store, &[count])
                        .await
                        .pop()
                        .expect("a recording of the count");
                    replay(count, recorded, &feed)
                        .await
                        .expect("a fresh recording matches")
                }
            };
            rows.push(row);
        }
        report(counts.as_slice(), &recorded, &rows);
    });
}

fn recording_file(store: &Path, count: usize) -> PathBuf {
    store.join(format!("plan-{count}.json"))
}

fn save(store: &Path, count: usize, recorded: &Recorded) {
    std::fs::write(
        recording_file(store, count),
        serde_json::to_vec(recorded).expect("a recording serialises"),
    )
    .expect("save the recording");
}

/// Applies each count's environments to a fresh moto, one count after another (count
/// `n`'s region holds `bench-0` to `bench-(n-1)`, the smaller counts' among them), and
/// records a plan and a drift check of them.
async fn record(store: &Path, counts: &[usize]) -> Vec<Recorded> {
    if counts.is_empty() {
        return Vec::new();
    }
    let moto = Moto::start();
    moto.create_key().await;
    let connector = moto.connector().await;
    // The answers do not name the feed: any feed serves a recording's replay.
    let feed = feed::flatcar_feed(feed::FLATCAR_AMI).await;
    let forward = Server::start(
        Mode::Forward {
            upstream: moto.url.clone(),
            latency: |_| Duration::ZERO,
        },
        Recording::default(),
    )
    .await;
    let mut applied = 0;
    let mut out = Vec::new();
    for &count in counts {
        let start = Instant::now();
        for batch in (applied..count).step_by(50) {
            let end = (batch + 50).min(count);
            let envs = support::environments("bench", batch..end, &feed.uri());
            // moto, filling up, now and then answers a write with a 500 of its own
            // (a Python race in its threads); applied again, the batch converges.
            for attempt in 1.. {
                match support::try_apply(&connector, &envs, 8).await {
                    Ok(_) => break,
                    Err(e) if attempt < 5 => println!("recording: applied again after: {e}"),
                    Err(e) => panic!("five applies of one batch failed: {e}"),
                }
            }
            println!("recording: {end} environments applied to moto");
        }
        applied = applied.max(count);
        println!(
            "recording: applied up to {count} environments in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        let repo = tempfile::tempdir().expect("a repository");
        support::write_repository(repo.path(), "bench", count, &feed.uri());
        let start = Instant::now();
        // Paced: moto drops connections when a thousand reads arrive at once.
        let plan = strata(
            repo.path(),
            forward.url(),
            &["plan", "--detailed-exitcode"],
            PACED,
        )
        .await;
        assert!(
            plan.ok,
            "a fresh apply leaves nothing to plan:\n{}",
            plan.output
        );
        let recording = forward.take_recording();
        println!(
            "recording: the plan of {count} made {} reads of moto in {:.1} s",
            recording.len(),
            start.elapsed().as_secs_f64()
        );
        // Saved before the drift check: at a thousand environments moto takes most of
        // an hour to answer a plan's reads, and a recording is too dear to lose.
        let mut recorded = Recorded {
            plan: recording,
            drift_reads: None,
        };
        save(store, count, &recorded);
        let drift = strata(repo.path(), forward.url(), &["drift"], PACED).await;
        assert!(drift.ok, "a fresh apply has not drifted:\n{}", drift.output);
        recorded.drift_reads = Some(forward.take_recording().len());
        forward.take_seen();
        save(store, count, &recorded);
        out.push(recorded);
    }
    out
}

/// One count's replayed plans.
struct Row {
    /// The unpaced replay with the most rounds.
    rounds: Seen,
    /// The median unpaced plan.
    wall: Duration,
    peak_kib: Option<u64>,
    /// The plan paced to ELBv2's bucket, against a server that enforces it.
    paced: Run,
    paced_seen: Seen,
    /// The same unpaced, against that server.
    unpaced: Run,
    unpaced_seen: Seen,
}

/// strata's environment for a run: its ELBv2 reads unpaced, or paced as by default.
const UNPACED: &[(&str, &str)] = &[("STRATA_ELB_READS_PER_SECOND", "0")];
const PACED: &[(&str, &str)] = &[];

/// A count's plan against its recording: `RUNS` times unpaced with no ELBv2 bucket
/// (strata's own rounds), then once paced and once unpaced against ELBv2's bucket.
/// `None` when a plan asked for something its recording does not hold.
async fn replay(count: usize, recorded: &Recorded, feed: &wiremock::MockServer) -> Option<Row> {
    let repo = tempfile::tempdir().expect("a repository");
    support::write_repository(repo.path(), "bench", count, &feed.uri());
    let plan = ["plan", "--detailed-exitcode"];
    let free = Server::start(
        Mode::Replay {
            latency: LATENCY,
            elb_bucket: false,
        },
        recorded.plan.clone(),
    )
    .await;
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    let mut rounds = Seen::default();
    for _ in 0..RUNS {
        let run = strata(repo.path(), free.url(), &plan, UNPACED).await;
        let seen = free.take_seen();
        if seen.misses > 0 {
            return None;
        }
        assert!(run.ok, "the replayed plan is empty:\n{}", run.output);
        walls.push(run.wall);
        peaks.extend(run.peak_kib);
        if seen.rounds > rounds.rounds {
            rounds = seen;
        }
    }
    let bucket = Server::start(
        Mode::Replay {
            latency: LATENCY,
            elb_bucket: true,
        },
        recorded.plan.clone(),
    )
    .await;
    let paced = strata(repo.path(), bucket.url(), &plan, PACED).await;
    let paced_seen = bucket.take_seen();
    assert!(paced.ok, "a paced plan is never refused:\n{}", paced.output);
    let unpaced = strata(repo.path(), bucket.url(), &plan, UNPACED).await;
    let unpaced_seen = bucket.take_seen();
    Some(Row {
        rounds,
        wall: median(walls),
        peak_kib: peaks.into_iter().max(),
        paced,
        paced_seen,
        unpaced,
        unpaced_seen,
    })
}

fn report(counts: &[usize], recorded: &[Recorded], rows: &[Row]) {
    println!(
        "\n`strata plan` of environments with nothing to do (network, auto-scaling group, node), \
         every answer after {} ms, none queued, ELBv2 reads unpaced; median of {RUNS} runs\n",
        LATENCY.as_millis()
    );
    println!(
        "{:>12} {:>6} {:>12} {:>7} {:>10} {:>13} {:>8} {:>12}",
        "environments",
        "reads",
        "drift reads",
        "rounds",
        "wall",
        "wall÷latency",
        "÷ one's",
        "peak memory"
    );
    let one = rows.first().map(|r| r.wall).unwrap_or_default();
    for ((count, recorded), row) in counts.iter().zip(recorded).zip(rows) {
        let peak = row.peak_kib.map_or("n/a".to_owned(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
        let drift_reads = recorded
            .drift_reads
            .map_or("n/a".to_owned(), |n| n.to_string());
        println!(
            "{count:>12} {:>6} {:>12} {:>7} {:>8.0}ms {:>13.2} {:>7.2}x {:>12}",
            recorded.plan.len(),
            drift_reads,
            row.rounds.rounds,
            ms(row.wall),
            row.wall.as_secs_f64() / LATENCY.as_secs_f64(),
            row.wall.as_secs_f64() / one.as_secs_f64(),
            peak
        );
    }
    println!("\nwhat each round asks for:");
    for (count, row) in counts.iter().zip(rows) {
        for (round, operations) in &row.rounds.by_round {
            let asked: Vec<String> = operations
                .iter()
                .map(|(operation, n)| match n {
                    1 => operation.clone(),
                    n => format!("{operation} ×{n}"),
                })
                .collect();
            println!(
                "{count:>6} environments, round {round}: {}",
                asked.join(", ")
            );
        }
    }
    println!(
        "\nthe same plans against ELBv2's documented bucket for reads (40 at once, then 10 a second), \
         strata paced (the default) and unpaced (STRATA_ELB_READS_PER_SECOND=0); one run each\n"
    );
    println!(
        "{:>12} {:>10} {:>12} {:>8} {:>22} {:>8}",
        "environments", "ELB reads", "paced wall", "refused", "unpaced", "refused"
    );
    for ((count, recorded), row) in counts.iter().zip(recorded).zip(rows) {
        let elb_reads = recorded.plan.count(|c| c.is_elb() && c.is_read());
        let unpaced = match row.unpaced.ok {
            true => format!("planned in {:.0} ms", ms(row.unpaced.wall)),
            false => format!("failed after {:.0} ms", ms(row.unpaced.wall)),
        };
        println!(
            "{count:>12} {elb_reads:>10} {:>10.0}ms {:>8} {unpaced:>22} {:>8}",
            ms(row.paced.wall),
            row.paced_seen.throttled,
            row.unpaced_seen.throttled
        );
    }
}

/// The Flatcar feed, answering after `latency` like every other request.
async fn feed_after(latency: Duration) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("GET"))
        .and(path("/stable.json"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(feed::flatcar_body(feed::FLATCAR_AMI))
                .set_delay(latency),
        )
        .mount(&server)
        .await;
    server
}

/// How a run of the binary went.
struct Run {
    ok: bool,
    output: String,
    wall: Duration,
    /// Peak resident memory, through GNU time when the machine has it.
    peak_kib: Option<u64>,
}

/// Runs `strata --repo REPO ARGS` with `url` as its AWS endpoint, the SDK's retries
/// as they are by default, and `env`.
async fn strata(repo: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let timed = Path::new("/usr/bin/time").exists();
    let mut command = match timed {
        true => {
            let mut c = Command::new("/usr/bin/time");
            c.args(["-f", "peak-kib %M"])
                .arg(env!("CARGO_BIN_EXE_strata"));
            c
        }
        false => Command::new(env!("CARGO_BIN_EXE_strata")),
    };
    command
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the run's thread")
        .expect("start strata");
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kib = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak-kib "))
        .and_then(|kib| kib.trim().parse().ok());
    Run {
        ok: out.status.success(),
        output: format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)),
        wall,
        peak_kib,
    }
}
