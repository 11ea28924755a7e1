//! `strata render`: Ignition 3.3.0 user data, checked by the real `ignition-validate`.

use crate::harness::{self, GitRepo, ignition_validate, project_root};

fn render(repo: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["render", "--offline"];
    all.extend_from_slice(args);
    let out = harness::strata(repo, &all);
    assert_eq!(out.code, 0, "strata {all:?}: {}", out.stderr);
    out.stdout
}

#[test]
fn every_example_node_config_passes_ignition_validate() {
    let cases: &[&[&str]] = &[
        &["--env", "etcd-prod", "--node", "0"],
        &["--env", "etcd-prod", "--node", "2"],
        &["--env", "rabbitmq-prod", "--node", "1"],
        &["--env", "jenkins"],
        &["--env", "web-prod"],
    ];
    for args in cases {
        let config = render(&project_root(), args);
        assert!(config.len() <= 16_384, "{args:?}: {} bytes", config.len());
        ignition_validate(&config).unwrap_or_else(|e| panic!("{args:?}: ignition-validate: {e}"));
    }
}

#[test]
fn fixed_cluster_nodes_get_their_index_address_and_etcd_members() {
    let config: serde_json::Value = serde_json::from_str(&render(
        &project_root(),
        &["--env", "etcd-prod", "--node", "1"],
    ))
    .unwrap();
    let env = crate::harness::cluster_env(&config);
    assert!(env.contains("STRATA_NODE_INDEX=1\n"), "{env}");
    assert!(env.contains("STRATA_NODE_IP=10.66.16.10\n"), "{env}");
    assert!(env.contains("ETCD_NAME=etcd-prod-1\n"), "{env}");
    assert!(
        env.contains("ETCD_INITIAL_CLUSTER=etcd-prod-0=http://10.66.0.10:2380,etcd-prod-1=http://10.66.16.10:2380,etcd-prod-2=http://10.66.32.10:2380\n"),
        "{env}"
    );
    assert!(env.contains("ETCD_AUTO_COMPACTION_RETENTION=2h\n"), "{env}");
}

#[test]
fn units_with_install_are_enabled_and_drop_ins_ride_along() {
    let config: serde_json::Value = serde_json::from_str(&render(
        &project_root(),
        &["--env", "etcd-prod", "--node", "0"],
    ))
    .unwrap();
    let units = config["systemd"]["units"].as_array().unwrap();
    let by_name = |n: &str| {
        units
            .iter()
            .find(|u| u["name"] == n)
            .unwrap_or_else(|| panic!("unit {n}"))
    };
    assert_eq!(by_name("etcd.service")["enabled"], true);
    assert_eq!(
        by_name("etcd.service")["dropins"][0]["name"],
        "10-tuning.conf"
    );
    // The service is started by its timer; it has no [Install] section of its own.
    assert!(by_name("docker-prune.service").get("enabled").is_none());
    assert_eq!(by_name("docker-prune.timer")["enabled"], true);
}

#[test]
fn autoscaling_config_is_shared_and_refuses_a_node_index() {
    let config: serde_json::Value =
        serde_json::from_str(&render(&project_root(), &["--env", "jenkins"])).unwrap();
    let env = crate::harness::cluster_env(&config);
    assert!(!env.contains("STRATA_NODE_INDEX"), "{env}");
    assert_eq!(config["storage"]["filesystems"][0]["label"], "jenkins-data");
    assert_eq!(config["storage"]["filesystems"][0]["wipeFilesystem"], false);
    let out = harness::strata(
        &project_root(),
        &["render", "--offline", "--env", "jenkins", "--node", "0"],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("auto-scaling group"), "{}", out.stderr);
}

// A throwaway key made for these tests; it guards nothing.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK tests@strata";

/// A repository with the example units and etcd-prod reading its key from `secret`.
fn etcd_reading(secret: &str) -> GitRepo {
    let repo = GitRepo::new_plain();
    repo.copy_dir(&project_root().join("units"), "units");
    let env = std::fs::read_to_string(project_root().join("environments/etcd-prod.yaml")).unwrap();
    repo.write(
        "environments/etcd-prod.yaml",
        env.replace("strata/etcd-prod/ssh-public-key", secret),
    );
    repo
}

#[tokio::test]
async fn render_puts_the_secret_key_in_the_config_and_nowhere_else() {
    let secret = "tests/render/plain";
    crate::cloud::put_secret("eu-west-1", secret, KEY).await;
    let repo = etcd_reading(secret);
    let out = harness::strata_with(
        repo.path(),
        &["render", "--env", "etcd-prod", "--node", "0"],
        &crate::cloud::binary_vars(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(config["passwd"]["users"][0]["sshAuthorizedKeys"][0], KEY);
    ignition_validate(&out.stdout).unwrap();
    let key_body = KEY.split(' ').nth(1).unwrap();
    assert!(
        out.stderr.contains("ssh-ed25519 key SHA256:"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(key_body),
        "stderr shows the key: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("::add-mask::"),
        "masking is for GitHub Actions only"
    );
    // Nothing was written anywhere: not in the repository, not under home.
    assert_eq!(
        crate::harness::files_containing(repo.path(), key_body, 6),
        Vec::<String>::new()
    );
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap());
    assert_eq!(
        crate::harness::files_containing(&home, key_body, 3),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn render_reads_json_secrets_and_masks_the_key_in_github_actions() {
    let secret = "tests/render/json";
    crate::cloud::put_secret(
        "eu-west-1",
        secret,
        &format!("{{\"public_key\": \"{KEY}\", \"owner\": \"platform\"}}"),
    )
    .await;
    let repo = etcd_reading(secret);
    let mut vars = crate::cloud::binary_vars();
    vars.push(("GITHUB_ACTIONS", "true".to_owned()));
    let out = harness::strata_with(
        repo.path(),
        &["render", "--env", "etcd-prod", "--node", "1"],
        &vars,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(KEY));
    assert_eq!(
        out.stderr.lines().next(),
        Some(format!("::add-mask::{KEY}").as_str())
    );
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_a_clear_error() {
    let vars = crate::cloud::binary_vars();
    let missing = harness::strata_with(
        etcd_reading("tests/render/absent").path(),
        &["render", "--env", "etcd-prod", "--node", "0"],
        &vars,
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("reading secret tests/render/absent in eu-west-1: ResourceNotFoundException"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("aws secretsmanager create-secret"),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());

    let value = "ssh-ed25519 not-base64-at-all";
    crate::cloud::put_secret("eu-west-1", "tests/render/garbage", value).await;
    let wrong = harness::strata_with(
        etcd_reading("tests/render/garbage").path(),
        &["render", "--env", "etcd-prod", "--node", "0"],
        &vars,
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("does not hold an OpenSSH public key"),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.stderr.contains("not-base64-at-all"),
        "the value is never echoed: {}",
        wrong.stderr
    );
}

#[test]
fn offline_render_says_the_user_gets_no_key() {
    let out = harness::strata(
        &project_root(),
        &["render", "--offline", "--env", "web-prod"],
    );
    assert!(out.stderr.contains("gets no SSH key"), "{}", out.stderr);
    let config: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        config["passwd"]["users"][0]
            .get("sshAuthorizedKeys")
            .is_none()
    );
}

#[test]
fn oversized_config_is_shipped_as_a_verified_gzip_replace() {
    // Units large enough to exceed 16 KiB, but compressible: the wrapper must fit.
    let repo = GitRepo::new_plain();
    repo.copy_dir(&project_root().join("units"), "units");
    let mut units = Vec::new();
    for i in 0..6 {
        let name = format!("big{i}.service");
        let body: String = (0..120)
            .map(|j| format!("Environment=SETTING_{j}=value-{j}-of-a-rather-verbose-unit\n"))
            .collect();
        repo.write(
            &format!("units/{name}"),
            format!("[Unit]\nDescription=big {i}\n[Service]\n{body}ExecStart=/usr/bin/true\n"),
        );
        units.push(name);
    }
    repo.write(
        "environments/big.yaml",
        format!(
            "region: eu-west-1\nnetwork: {{ cidr: 10.0.0.0/16, zones: 2, private_subnets: 2 }}\n\
             cluster: {{ mode: autoscaling, min: 1, max: 2, instance_type: t3.small, ami: ami-0123456789abcdef0 }}\n\
             node: {{ units: [{}], ssh: {{ public_key_secret: big/ssh }} }}\n",
            units.join(", ")
        ),
    );
    let out = harness::strata(repo.path(), &["render", "--offline", "--env", "big"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let wrapper = out.stdout.trim_end();
    assert!(
        wrapper.len() <= 16_384,
        "wrapper is {} bytes",
        wrapper.len()
    );
    assert!(out.stderr.contains("gzip wrapper"), "{}", out.stderr);
    ignition_validate(wrapper).unwrap();

    let parsed: serde_json::Value = serde_json::from_str(wrapper).unwrap();
    let replace = &parsed["ignition"]["config"]["replace"];
    assert_eq!(replace["compression"], "gzip");
    let full = strata::ignition::unwrap(wrapper).unwrap();
    assert!(full.len() > 16_384);
    ignition_validate(&full).unwrap();
    // The hash Ignition checks is the sha512 of the decompressed config.
    use sha2::Digest as _;
    let digest: String = sha2::Sha512::digest(full.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(replace["verification"]["hash"], format!("sha512-{digest}"));
}

#[test]
fn etcd_node_config_snapshot() {
    let config: serde_json::Value = serde_json::from_str(&render(
        &project_root(),
        &["--env", "etcd-prod", "--node", "0"],
    ))
    .unwrap();
    insta::assert_json_snapshot!(config);
}

#[tokio::test]
async fn render_reads_the_etcd_discovery_token_once_a_cluster_has_one() {
    let key_secret = "tests/render/discovery-key";
    crate::cloud::put_secret("eu-west-1", key_secret, KEY).await;
    // Names of its own: the binary works in moto's default account.
    let repo = GitRepo::new_plain();
    repo.copy_dir(&project_root().join("units"), "units");
    let text = std::fs::read_to_string(project_root().join("environments/etcd-prod.yaml"))
        .unwrap()
        .replace("strata/etcd-prod/ssh-public-key", key_secret)
        .replace("bootstrap: static", "bootstrap: discovery");
    repo.write("environments/etcd-disc.yaml", &text);
    repo.write("environments/etcd-fresh.yaml", &text);
    crate::cloud::put_secret(
        "eu-west-1",
        "strata/etcd-disc/etcd-discovery",
        r#"{"url": "https://discovery.example.invalid/7d1c0ffee", "size": 3}"#,
    )
    .await;
    let vars = crate::cloud::binary_vars();

    let out = harness::strata_with(
        repo.path(),
        &["render", "--env", "etcd-disc", "--node", "0"],
        &vars,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let env = crate::harness::cluster_env(&config);
    assert!(
        env.contains("ETCD_DISCOVERY=https://discovery.example.invalid/7d1c0ffee\n"),
        "{env}"
    );
    assert!(!env.contains("ETCD_INITIAL_CLUSTER="), "{env}");
    assert!(
        out.stderr.contains(
            "note: ETCD_DISCOVERY is the token kept in secret strata/etcd-disc/etcd-discovery"
        ),
        "{}",
        out.stderr
    );

    // A cluster not launched yet has no token: rendered without it, and said so.
    let fresh = harness::strata_with(
        repo.path(),
        &["render", "--env", "etcd-fresh", "--node", "0"],
        &vars,
    );
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(!fresh.stdout.contains("ETCD_DISCOVERY"));
    assert!(
        fresh.stderr.contains(
            "note: ETCD_DISCOVERY is left out: secret strata/etcd-fresh/etcd-discovery does not exist yet (the first apply fetches the token)"
        ),
        "{}",
        fresh.stderr
    );
}
