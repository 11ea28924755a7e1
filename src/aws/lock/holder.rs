//! Who holds an apply lock, recorded so that a later taker can prove the holder gone:
//! a process on the same machine that has ended, or a workflow run GitHub reports as
//! completed. Anything short of proof leaves the lease to decide.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// As people read it: `octo/infra run 42 (attempt 1)`, `ana@laptop (pid 4242)`;
    /// empty in a released claim.
    #[serde(rename = "holder")]
    pub name: String,
    /// The process, when it could be identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// The workflow run, under GitHub Actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<WorkflowRun>,
}

/// A process, told apart from any other that ever had its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The kernel's boot and the process-id namespace: a process id means the same
    /// process only where both are the same (a container has a namespace of its own).
    pub machine: String,
    /// Its id.
    pub pid: u32,
    /// When it started, in clock ticks since boot: a reused id has another start.
    pub started: u64,
}

/// A workflow run's attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// `owner/repo`.
    pub repository: String,
    /// The run's id.
    pub id: u64,
    /// Its attempt (a re-run is a new attempt of the same run).
    pub attempt: u32,
}

/// What GitHub says of a workflow run's attempt.
pub trait Runs: Sync {
    /// True when the attempt has completed (whatever its conclusion); an error says
    /// why GitHub could not be asked.
    fn completed<'a>(
        &'a self,
        run: &'a WorkflowRun,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

impl Holder {
    /// This process, and the workflow run when the runner names one
    /// (`GITHUB_REPOSITORY`, `GITHUB_RUN_ID`, `GITHUB_RUN_ATTEMPT`), or else the user
    /// and the machine.
    pub fn this() -> Holder {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let run = match (var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")) {
            (Some(repository), Some(id)) => id.parse().ok().map(|id| WorkflowRun {
                repository,
                id,
                attempt: var("GITHUB_RUN_ATTEMPT")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(1),
            }),
            _ => None,
        };
        let name = match &run {
            Some(run) => format!(
                "{} run {} (attempt {})",
                run.repository, run.id, run.attempt
            ),
            None => format!(
                "{}@{} (pid {})",
                var("USER").unwrap_or_else(|| "someone".to_owned()),
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .or_else(|| var("HOSTNAME"))
                    .unwrap_or_else(|| "a machine".to_owned()),
                std::process::id()
            ),
        };
        Holder {
            name,
            process: Process::this(),
            run,
        }
    }

    /// Why this holder is provably gone, or `None` when it may still be applying:
    /// its process, on this machine, has ended; or GitHub reports its run's attempt
    /// as completed (asked only about runs of `repository`, through `runs`).
    /// `progress` hears when GitHub could not be asked.
    pub async fn gone(
        &self,
        runs: Option<(&dyn Runs, &str)>,
        progress: &mut dyn FnMut(&str),
    ) -> Option<String> {
        if let Some(process) = &self.process
            && Process::this().is_some_and(|me| me.machine == process.machine)
            && !process.is_running()
        {
            return Some(format!(
                "its process ({}) on this machine has ended",
                process.pid
            ));
        }
        let run = self.run.as_ref()?;
        let (runs, repository) = runs?;
        if run.repository != repository {
            return None;
        }
        match runs.completed(run).await {
            Ok(true) => Some(format!(
                "GitHub reports run {} (attempt {}) as completed",
                run.id, run.attempt
            )),
            Ok(false) => None,
            Err(why) => {
                progress(&format!(
                    "could not ask GitHub whether run {} has ended ({why}); its lease decides",
                    run.id
                ));
                None
            }
        }
    }
}

impl Process {
    /// This process, on Linux; `None` where `/proc` does not say.
    pub fn this() -> Option<Process> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let pid = std::process::id();
        let (_, started) = stat(pid)?;
        Some(Process {
            machine: format!("{} {}", boot.trim(), namespace.display()),
            pid,
            started,
        })
    }

    /// True while this very process runs (a zombie has ended; a process that reuses
    /// the id started at another time).
    fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|(state, started)| {
            started == self.started && !matches!(state, 'Z' | 'X' | 'x')
        })
    }
}

/// A process's state and start time, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state (field 3) and start time (field 22) of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces and parentheses, so
/// the fields are counted from its last `)`.
fn parse_stat(line: &str) -> Option<(char, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_state_and_start_whatever_the_command_name() {
        let line = "4242 (strata (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 10 5 0 0 20 0 3 0 987654 123456789 2000 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("4242 (x) Z 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_running_and_a_reused_id_or_an_ended_one_is_not() {
        let me = Process::this().expect("Linux has /proc");
        assert!(me.is_running());
        let reused = Process {
            started: me.started + 1,
            ..me.clone()
        };
        assert!(!reused.is_running());
        let ended = Process {
            pid: u32::MAX,
            ..me
        };
        assert!(!ended.is_running());
    }

    #[test]
    fn a_claim_written_before_holders_were_recorded_still_reads() {
        let old: Holder =
            serde_json::from_str(r#"{"holder":"octo/infra run 7 (attempt 1)"}"#).expect("reads");
        assert_eq!(old.name, "octo/infra run 7 (attempt 1)");
        assert_eq!((old.process, old.run), (None, None));
    }
}
