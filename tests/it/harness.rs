//! Test harness: temporary git repositories built commit by commit, and a runner for
//! the `strata` binary that captures exit code, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project root (where `environments/` and `units/` of the examples live).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `strata --repo <repo> <args...>`.
pub fn strata(repo: &Path, args: &[&str]) -> Output {
    strata_with(repo, args, &[])
}

/// Runs `strata --repo <repo> <args...>` with extra environment variables.
pub fn strata_with(repo: &Path, args: &[&str], vars: &[(&str, String)]) -> Output {
    let out = strata_command(repo, args, vars)
        .output()
        .expect("run strata");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The command `strata --repo <repo> <args...>` with extra environment variables, for
/// a test that starts it and stops it itself.
pub fn strata_command(repo: &Path, args: &[&str], vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_MAX_ATTEMPTS")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// A temporary git repository that tests fill and commit step by step.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// An empty repository with a fixed identity, so commits need no global config.
    pub fn new() -> GitRepo {
        let repo = GitRepo::new_plain();
        repo.init();
        repo
    }

    /// A temporary directory that is not (yet) a git repository.
    pub fn new_plain() -> GitRepo {
        GitRepo {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Turns the directory into a git repository.
    pub fn init(&self) {
        self.git(&["init", "-q", "-b", "main"]);
    }

    /// Where the work tree is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating directories).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> &Self {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
        self
    }

    /// Removes a file.
    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.path().join(path)).unwrap();
        self
    }

    /// Copies a directory tree into the repository.
    pub fn copy_dir(&self, from: &Path, to: &str) -> &Self {
        for entry in walk(from) {
            let relative = entry
                .strip_prefix(from)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            self.write(&format!("{to}/{relative}"), std::fs::read(&entry).unwrap());
        }
        self
    }

    /// Commits everything and returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "strata tests")
            .env("GIT_AUTHOR_EMAIL", "tests@strata.invalid")
            .env("GIT_COMMITTER_NAME", "strata tests")
            .env("GIT_COMMITTER_EMAIL", "tests@strata.invalid")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Every file under `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path)
            } else {
                files.push(path)
            }
        }
    }
    files.sort();
    files
}

/// Runs `ignition-validate` on a config; returns its complaints on failure.
pub fn ignition_validate(config: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.ign");
    std::fs::write(&file, config).unwrap();
    let out = Command::new("ignition-validate")
        .arg(&file)
        .output()
        .expect("ignition-validate is installed (Debian package `ignition`; .ci/run installs it)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Regular files under `dir` (a few levels deep, skipping toolchains, caches and files
/// over 16 MiB) holding `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &str, depth: usize) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if [".cargo", ".rustup", ".pyenv", ".cache", ".npm", "target"].contains(&name.as_str()) {
            continue;
        }
        // The project's own checkout holds the tests' sources, not what a run wrote: a
        // clone under the temporary directory must not find a test's own literal.
        if path == project_root() {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && depth > 0 {
            hits.extend(files_containing(&path, needle, depth - 1));
        } else if meta.is_file()
            && meta.len() <= 16 << 20
            && std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

/// A valid OpenSSH ed25519 public key of its own for `label`, so that searching for it
/// finds only what the test itself caused to be written.
pub fn unique_key(label: &str) -> String {
    use sha2::{Digest, Sha256};
    let bytes: [u8; 32] = Sha256::digest(format!("strata test key {label}")).into();
    ssh_key::PublicKey::new(
        ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(bytes)),
        format!("{label}@strata-tests"),
    )
    .to_openssh()
    .expect("an ed25519 key encodes")
}

/// A secret token of its own for `label` (32 hex digits): derived, never written in a
/// test's source, so a scan for it finds only what a run wrote.
pub fn unique_token(label: &str) -> String {
    use sha2::{Digest, Sha256};
    let bytes: [u8; 32] = Sha256::digest(format!("strata test token {label}")).into();
    bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The key is in none of `outputs` and in no file under home or the temporary
/// directory (where every test's repositories and scratch files live).
pub fn assert_key_nowhere(key: &str, outputs: &[&str]) {
    let body = key.split(' ').nth(1).expect("a key line has a body");
    assert_secret_nowhere(body, outputs);
}

/// Asserts `secret` is in none of `outputs` and in no file under the home directory
/// or the temporary directory.
pub fn assert_secret_nowhere(secret: &str, outputs: &[&str]) {
    for output in outputs {
        assert!(
            !output.contains(secret),
            "an output shows a secret: {output}"
        );
    }
    let home = PathBuf::from(std::env::var("HOME").expect("HOME is set"));
    assert_eq!(files_containing(&home, secret, 3), Vec::<String>::new());
    assert_eq!(
        files_containing(&std::env::temp_dir(), secret, 4),
        Vec::<String>::new()
    );
}

/// The text of `/etc/strata/cluster.env` in a rendered config.
pub fn cluster_env(config: &serde_json::Value) -> String {
    let file = config["storage"]["files"]
        .as_array()
        .expect("the config writes files")
        .iter()
        .find(|f| f["path"] == strata::ignition::CLUSTER_ENV_PATH)
        .expect("the config writes cluster.env");
    let source = file["contents"]["source"]
        .as_str()
        .expect("inline contents");
    let encoded = source.strip_prefix("data:,").expect("a data URL");
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).expect("a percent escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// The text of example environment `name`, its OS image looked up in the feed at
/// `feed` (a local server) instead of the vendor's.
pub fn example_with_feed(name: &str, feed: &str) -> String {
    std::fs::read_to_string(project_root().join(format!("environments/{name}.yaml")))
        .expect("the example exists")
        .replace(
            "os: { name: flatcar, channel: stable }",
            &format!(
                "os: {{ name: flatcar, channel: stable, feed_url: \"{feed}/{{channel}}.json\" }}"
            ),
        )
}

/// An environment whose spec a test changed in code, checked again as its file would
/// be (the spec written out as JSON, which is YAML), so its cluster shape follows.
pub fn revalidated(
    env: strata::config::Environment,
    units: &std::collections::BTreeSet<String>,
) -> strata::config::Environment {
    // Unset options are left out, as a file leaves them out.
    fn without_nulls(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(without_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(without_nulls),
            _ => {}
        }
    }
    let mut spec = serde_json::to_value(&env.spec).expect("a spec serializes");
    without_nulls(&mut spec);
    let text = spec.to_string();
    strata::config::load(&env.path, &text, units).expect("the changed spec is valid")
}
