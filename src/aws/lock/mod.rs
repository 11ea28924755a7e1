//! The apply lock: one apply per environment at a time, kept in AWS itself (strata
//! has no state file and no server).
//!
//! An environment's lock is the Secrets Manager secret `strata/<env>/apply-lock` in its
//! region. Its current version (`AWSCURRENT`) holds a [`Claim`]: who holds the lock,
//! since when and until when.
//! - **Taking a free lock.** The first take creates the secret, which succeeds for
//!   exactly one caller. A later take writes its claim as a new version under a label
//!   of its own, then moves `AWSCURRENT` to it from the version it read
//!   (`UpdateSecretVersionStage` with `RemoveFromVersionId`). AWS refuses that move
//!   when `AWSCURRENT` has moved meanwhile, so of two takers exactly one wins: a
//!   compare-and-swap.
//! - **Holding it.** A claim lasts a lease (300 s unless `STRATA_LOCK_LEASE_SECONDS`
//!   says otherwise), and the holder renews it every third of a lease the same way.
//!   A holder that was killed stops renewing, and its lock is free once the lease
//!   ends: nothing blocks forever.
//! - **Taking it from a holder that is gone.** The claim records its holder's process
//!   and workflow run ([`holder`]). When that process was on this machine and has
//!   ended, or GitHub reports that run's attempt as completed (a cancelled run
//!   included), the lock is taken at once, the same way, and the taker says whose
//!   claim it took and why.
//! - **Losing it.** A holder that cannot renew (its claim replaced, or the lease over)
//!   stops its apply. An apply stopped anywhere converges when run again.
//! - **Releasing it.** The holder writes a released claim the same way. The secret
//!   stays: a secret's name is not free again at once after it is deleted.

mod holder;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Aws, AwsError, Connector, error, unless};
use crate::config::names;
use crate::engine::Target;
pub use holder::{Holder, Runs, WorkflowRun};

/// The label a new claim is written under before it becomes `AWSCURRENT`.
const CLAIM_STAGE: &str = "strata-claim";
const CURRENT: &str = "AWSCURRENT";

/// What the lock's current version says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// Who holds it: a workflow run, or a user on a machine; empty when released.
    #[serde(flatten)]
    holder: Holder,
    /// When it was taken, in seconds since the epoch.
    since: u64,
    /// When it ends unless renewed (0: released).
    until: u64,
}

impl Claim {
    fn is_held_at(&self, now: u64) -> bool {
        !self.holder.name.is_empty() && self.until > now
    }
}

/// How an apply takes its locks.
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// How long to wait for another apply to end.
    pub wait: Duration,
    /// How long a claim lasts unless renewed.
    pub lease: Duration,
    /// This run, as others are told (`octo/infra run 42 (attempt 1)`) and can check.
    pub holder: Holder,
}

impl LockSettings {
    /// Waits up to `wait`; the lease from `STRATA_LOCK_LEASE_SECONDS` (default 300);
    /// the holder is this process and its workflow run ([`Holder::this`]).
    pub fn from_env(wait: Duration) -> LockSettings {
        let lease = std::env::var("STRATA_LOCK_LEASE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(300);
        LockSettings {
            wait,
            lease: Duration::from_secs(lease),
            holder: Holder::this(),
        }
    }

    fn poll(&self) -> Duration {
        (self.lease / 4).clamp(Duration::from_secs(1), Duration::from_secs(5))
    }
}

/// Why an apply could not take or keep its lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another apply holds it, still after the wait.
    #[error(
        "environment `{env}` is being applied by {holder}, since {since}; waited {waited} s\n  \
         hint: its lock (secret `{secret}` in {region}) lasts until {until} unless renewed; \
         run again when that apply ends. A holder that was killed stops renewing, and the lock is free after that time"
    )]
    Held {
        /// The environment.
        env: String,
        /// Who holds it.
        holder: String,
        /// Since when.
        since: String,
        /// Until when, unless renewed.
        until: String,
        /// The lock's secret.
        secret: String,
        /// Its region.
        region: String,
        /// Seconds waited.
        waited: u64,
    },
    /// The lock holds a value strata did not write.
    #[error(
        "the apply lock of `{env}` (secret `{secret}` in {region}) holds something strata did not write\n  \
         hint: delete the secret if nothing else uses it, then run again"
    )]
    Unreadable {
        /// The environment.
        env: String,
        /// The lock's secret.
        secret: String,
        /// Its region.
        region: String,
    },
    /// The lock was lost while the apply ran; the apply was stopped.
    #[error(
        "the apply of `{env}` stopped: its lock (secret `{secret}`) {why}\n  \
         hint: run apply again; it continues from what exists"
    )]
    Lost {
        /// The environment.
        env: String,
        /// The lock's secret.
        secret: String,
        /// What happened to it.
        why: String,
    },
    /// A call to Secrets Manager failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// One lock held.
#[derive(Debug, Clone)]
struct Held {
    aws: Aws,
    env: String,
    secret: String,
    version: String,
    claim: Claim,
}

/// A lock the renewer could not keep.
#[derive(Debug, Clone)]
struct Loss {
    env: String,
    secret: String,
    why: String,
}

/// The locks of one apply, renewed until released.
#[derive(Debug)]
pub struct Locks {
    held: std::sync::Arc<tokio::sync::Mutex<Vec<Held>>>,
    lost: watch::Receiver<Option<Loss>>,
    renewer: tokio::task::JoinHandle<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn date(seconds: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// A version id of this process's own (Secrets Manager takes 32 to 64 characters).
fn version_token(env: &str) -> String {
    super::executor::client_token(env, "apply-lock")
}

/// Takes the lock of every environment in `targets` (in name order, so two applies
/// of overlapping sets cannot wait on each other), waiting up to `settings.wait` for
/// each; a lock whose holder is provably gone is taken at once. `runs` asks GitHub
/// about workflow runs of the repository it names. `progress` hears when strata waits
/// and for whom, and whose claim it took.
pub async fn acquire(
    connector: &Connector,
    targets: &[Target],
    settings: &LockSettings,
    runs: Option<(&dyn Runs, &str)>,
    progress: &mut dyn FnMut(&str),
) -> Result<Locks, LockError> {
    let mut envs: Vec<(&str, &str, Option<&crate::config::Account>)> = targets
        .iter()
        .map(|t| (t.name.as_str(), t.region.as_str(), t.account.as_ref()))
        .collect();
    envs.sort();
    envs.dedup();
    let mut held = Vec::new();
    for (env, region, account) in envs {
        // In the environment's own account, next to what it guards.
        let taken = match connector.in_account(account, region).await {
            Ok(there) => take(&there.connect(region), env, settings, runs, progress).await,
            Err(e) => Err(LockError::Aws(e)),
        };
        match taken {
            Ok(h) => held.push(h),
            Err(e) => {
                for h in held {
                    let _ = release_one(&h).await;
                }
                return Err(e);
            }
        }
    }
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(held));
    let (tx, lost) = watch::channel(None);
    let renewer = tokio::spawn(renew(held.clone(), settings.clone(), tx));
    Ok(Locks {
        held,
        lost,
        renewer,
    })
}

/// Takes one environment's lock, waiting while another apply holds it.
async fn take(
    aws: &Aws,
    env: &str,
    settings: &LockSettings,
    runs: Option<(&dyn Runs, &str)>,
    progress: &mut dyn FnMut(&str),
) -> Result<Held, LockError> {
    let secret = names::apply_lock_secret(env);
    let started = std::time::Instant::now();
    let mut told = None;
    loop {
        let claim = Claim {
            holder: settings.holder.clone(),
            since: now(),
            until: now() + settings.lease.as_secs(),
        };
        // Read first: an apply that finds the lock held writes nothing.
        let Some((current, version)) = read(aws, env, &secret).await? else {
            match create(aws, env, &secret, &claim).await? {
                Some(version) => return Ok(held(aws, env, &secret, version, claim)),
                // Another apply made it first; look again.
                None => continue,
            }
        };
        let gone = if current.is_held_at(now()) {
            current.holder.gone(runs, progress).await
        } else {
            None
        };
        if !current.is_held_at(now()) || gone.is_some() {
            if let Some(version) = swap(aws, env, &secret, &version, &claim).await? {
                if let Some(why) = gone {
                    progress(&format!(
                        "{env}: took over the lock from {} (since {}): {why}",
                        current.holder.name,
                        date(current.since)
                    ));
                }
                return Ok(held(aws, env, &secret, version, claim));
            }
            // Another apply took it first; look again.
            continue;
        }
        let waited = started.elapsed();
        if waited >= settings.wait {
            return Err(LockError::Held {
                env: env.to_owned(),
                holder: current.holder.name,
                since: date(current.since),
                until: date(current.until),
                secret,
                region: aws.region.clone(),
                waited: waited.as_secs(),
            });
        }
        if told.as_ref() != Some(&current.holder.name) {
            progress(&format!(
                "{env}: waiting for the apply of {} (since {}) to end, up to {} s",
                current.holder.name,
                date(current.since),
                settings.wait.as_secs()
            ));
            told = Some(current.holder.name.clone());
        }
        tokio::time::sleep(settings.poll().min(settings.wait - waited)).await;
    }
}

fn held(aws: &Aws, env: &str, secret: &str, version: String, claim: Claim) -> Held {
    Held {
        aws: aws.clone(),
        env: env.to_owned(),
        secret: secret.to_owned(),
        version,
        claim,
    }
}

/// Creates the lock with `claim` as its first version; `None` when it exists.
async fn create(
    aws: &Aws,
    env: &str,
    secret: &str,
    claim: &Claim,
) -> Result<Option<String>, AwsError> {
    let what = format!("creating the apply lock {secret} in {}", aws.region);
    let version = version_token(env);
    let tag = aws_sdk_secretsmanager::types::Tag::builder()
        .key(crate::plan::TAG_ENVIRONMENT)
        .value(env)
        .build();
    let sent = aws
        .secrets
        .create_secret()
        .name(secret)
        .description("strata's apply lock: who applies this environment now")
        .secret_string(serde_json::to_string(claim).unwrap_or_default())
        .client_request_token(&version)
        .tags(tag)
        .send()
        .await;
    Ok(unless(&what, "ResourceExistsException", sent)?.map(|_| version))
}

/// The current claim and its version id; `None` before the first apply made the lock.
async fn read(aws: &Aws, env: &str, secret: &str) -> Result<Option<(Claim, String)>, LockError> {
    let what = format!("reading the apply lock {secret} in {}", aws.region);
    let sent = aws
        .secrets
        .get_secret_value()
        .secret_id(secret)
        // Named, not left to the default: the version that holds the label.
        .version_stage(CURRENT)
        .send()
        .await;
    let Some(out) = unless(&what, "ResourceNotFoundException", sent)? else {
        return Ok(None);
    };
    let unreadable = || LockError::Unreadable {
        env: env.to_owned(),
        secret: secret.to_owned(),
        region: aws.region.clone(),
    };
    let claim = out
        .secret_string()
        .and_then(|s| serde_json::from_str::<Claim>(s).ok())
        .ok_or_else(unreadable)?;
    let version = out.version_id().ok_or_else(unreadable)?.to_owned();
    Ok(Some((claim, version)))
}

/// Writes `claim` as a new version and makes it current if `from` still is: the new
/// version's id, or `None` when another writer moved the lock first.
async fn swap(
    aws: &Aws,
    env: &str,
    secret: &str,
    from: &str,
    claim: &Claim,
) -> Result<Option<String>, AwsError> {
    let what = format!("writing the apply lock {secret} in {}", aws.region);
    let version = version_token(env);
    aws.secrets
        .put_secret_value()
        .secret_id(secret)
        .secret_string(serde_json::to_string(claim).unwrap_or_default())
        .client_request_token(&version)
        .version_stages(CLAIM_STAGE)
        .send()
        .await
        .map_err(|e| error(&what, e))?;
    let moved = aws
        .secrets
        .update_secret_version_stage()
        .secret_id(secret)
        .version_stage(CURRENT)
        .remove_from_version_id(from)
        .move_to_version_id(&version)
        .send()
        .await;
    // AWS refuses the move when the label is no longer on `from`.
    Ok(unless(&what, "InvalidParameterException", moved)?.map(|_| version))
}

/// Renews every lock each third of a lease; says what was lost when one cannot be.
async fn renew(
    held: std::sync::Arc<tokio::sync::Mutex<Vec<Held>>>,
    settings: LockSettings,
    lost: watch::Sender<Option<Loss>>,
) {
    let every = (settings.lease / 3).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        let mut held = held.lock().await;
        for h in held.iter_mut() {
            let claim = Claim {
                until: now() + settings.lease.as_secs(),
                ..h.claim.clone()
            };
            let why = match swap(&h.aws, &h.env, &h.secret, &h.version, &claim).await {
                Ok(Some(version)) => {
                    h.version = version;
                    h.claim = claim;
                    continue;
                }
                Ok(None) => "was taken by another apply".to_owned(),
                // A failed renewal is tried again while the lease lasts.
                Err(_) if now() < h.claim.until => continue,
                Err(e) => format!("could not be renewed before its lease ended ({e})"),
            };
            let _ = lost.send(Some(Loss {
                env: h.env.clone(),
                secret: h.secret.clone(),
                why,
            }));
            return;
        }
    }
}

impl Locks {
    /// Runs `work` while the locks are held; stops it (drops it where it is, as a
    /// crash would) when one is lost.
    pub async fn guard<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, LockError> {
        let mut lost = self.lost.clone();
        tokio::select! {
            out = work => Ok(out),
            loss = lost.wait_for(Option::is_some) => {
                let Loss { env, secret, why } = loss
                    .ok()
                    .and_then(|l| l.clone())
                    .unwrap_or_else(|| Loss {
                        env: String::new(),
                        secret: String::new(),
                        why: "was dropped: its renewer stopped".to_owned(),
                    });
                Err(LockError::Lost { env, secret, why })
            }
        }
    }

    /// Releases every lock still held. A lock that cannot be released ends with its
    /// lease; the error says which.
    pub async fn release(self) -> Result<(), AwsError> {
        self.renewer.abort();
        let held = self.held.lock().await;
        let mut first_error = None;
        for h in held.iter() {
            if let Err(e) = release_one(h).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn release_one(h: &Held) -> Result<(), AwsError> {
    let released = Claim {
        holder: Holder::default(),
        since: h.claim.since,
        until: 0,
    };
    swap(&h.aws, &h.env, &h.secret, &h.version, &released)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_until_its_lease_ends_or_it_is_released() {
        let claim = Claim {
            holder: Holder {
                name: "octo/infra run 7 (attempt 1)".to_owned(),
                ..Holder::default()
            },
            since: 100,
            until: 400,
        };
        assert!(claim.is_held_at(399));
        assert!(!claim.is_held_at(400));
        let released = Claim {
            holder: Holder::default(),
            until: 0,
            ..claim
        };
        assert!(!released.is_held_at(0));
    }

    #[test]
    fn waiting_polls_a_quarter_lease_between_one_and_five_seconds() {
        let settings = |lease| LockSettings {
            wait: Duration::from_secs(60),
            lease: Duration::from_secs(lease),
            holder: Holder::default(),
        };
        assert_eq!(settings(2).poll(), Duration::from_secs(1));
        assert_eq!(settings(12).poll(), Duration::from_secs(3));
        assert_eq!(settings(300).poll(), Duration::from_secs(5));
    }
}
