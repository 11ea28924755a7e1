//! The secrets this process has read (the SSH public key, the etcd discovery token),
//! so that nothing strata posts or writes can show them.
//!
//! The runner's `::add-mask::` hides a value in the log only; GitHub masks nothing
//! posted through its API. So every comment, summary and output passes through
//! [`apply`], and the Action registers each value with the runner ([`registered`]).

use std::sync::Mutex;

use zeroize::Zeroizing;

static SECRETS: Mutex<Vec<Zeroizing<String>>> = Mutex::new(Vec::new());

/// Values shorter than this are not secrets worth hiding (and would mangle text).
const SHORTEST: usize = 8;

/// Remembers `value` as secret for the rest of the run.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < SHORTEST {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock()
        && !secrets.iter().any(|s| s.as_str() == value)
    {
        secrets.push(Zeroizing::new(value.to_owned()));
    }
}

/// Every value registered so far.
pub fn registered() -> Vec<Zeroizing<String>> {
    SECRETS.lock().map(|s| s.clone()).unwrap_or_default()
}

/// `text` with every registered value replaced by `***`.
pub fn apply(text: &str) -> String {
    let mut out = text.to_owned();
    // Longest first, so a value containing another is hidden whole.
    let mut secrets = registered();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_never_reach_the_text() {
        register("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBody test@host");
        register("AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBody");
        register("short");
        let text = apply(
            "key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBody test@host; body AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBody; short",
        );
        assert_eq!(text, "key: ***; body ***; short");
    }
}
