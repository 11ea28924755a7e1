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
    let env = cluster_env(&config);
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
    let env = cluster_env(&config);
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

#[test]
fn render_without_offline_says_the_key_cannot_be_fetched_yet() {
    let out = harness::strata(&project_root(), &["render", "--env", "web-prod"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("pass --offline"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
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

fn cluster_env(config: &serde_json::Value) -> String {
    let file = config["storage"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/strata/cluster.env")
        .unwrap();
    let source = file["contents"]["source"].as_str().unwrap();
    percent_decode(source.strip_prefix("data:,").unwrap())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
