//! What a node change does on the machines: a unit-level diff of two rendered
//! Ignition configs. Pure. The SSH key is shown as its fingerprint, never as itself.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use similar::TextDiff;

/// A unit, its drop-ins and whether it is enabled, as the config installs them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Installed {
    contents: String,
    enabled: bool,
    dropins: BTreeMap<String, String>,
}

fn units(config: &Value) -> BTreeMap<String, Installed> {
    let mut out = BTreeMap::new();
    for u in config["systemd"]["units"].as_array().into_iter().flatten() {
        let Some(name) = u["name"].as_str() else {
            continue;
        };
        let dropins = u["dropins"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some((
                    d["name"].as_str()?.to_owned(),
                    d["contents"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        out.insert(
            name.to_owned(),
            Installed {
                contents: u["contents"].as_str().unwrap_or_default().to_owned(),
                enabled: u["enabled"] == true,
                dropins,
            },
        );
    }
    out
}

fn files(config: &Value) -> BTreeMap<String, String> {
    config["storage"]["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let path = f["path"].as_str()?.to_owned();
            let source = f["contents"]["source"].as_str().unwrap_or_default();
            Some((path, without_secrets(&decode_data_url(source))))
        })
        .collect()
}

fn keys(config: &Value) -> BTreeMap<String, BTreeSet<String>> {
    config["passwd"]["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let keys = u["sshAuthorizedKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .map(|k| match ssh_key::PublicKey::from_openssh(k) {
                    Ok(key) => key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                    Err(_) => "an unreadable key".to_owned(),
                })
                .collect();
            Some((u["name"].as_str()?.to_owned(), keys))
        })
        .collect()
}

/// An etcd discovery token lets anyone join the cluster: a file line setting it shows a
/// digest of it instead.
fn without_secrets(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some(("ETCD_DISCOVERY", token)) => {
                format!("ETCD_DISCOVERY=<token {}>", super::cluster::digest(token))
            }
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

fn decode_data_url(source: &str) -> String {
    let Some(payload) = source.strip_prefix("data:,") else {
        return source.to_owned();
    };
    let bytes = payload.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = payload
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text_diff(what: &str, old: &str, new: &str, out: &mut Vec<String>) {
    out.push(format!("~ {what}"));
    let diff = TextDiff::from_lines(old, new);
    for hunk in diff.unified_diff().context_radius(1).iter_hunks() {
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Equal => " ",
            };
            out.push(format!(
                "{sign}     {}",
                change.value().trim_end_matches('\n')
            ));
        }
    }
}

/// The differences between two full configs, one line each, diff-style: units added,
/// removed or changed (with their changed lines), drop-ins, files, and SSH keys by
/// fingerprint.
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let (Ok(old), Ok(new)) = (
        serde_json::from_str::<Value>(old),
        serde_json::from_str::<Value>(new),
    ) else {
        return vec!["~ the running config could not be read; it is replaced whole".to_owned()];
    };
    let mut out = Vec::new();
    let (a, b) = (units(&old), units(&new));
    for name in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(name), b.get(name)) {
            (None, Some(u)) => out.push(format!(
                "+ unit {name}{}",
                if u.enabled { " (enabled)" } else { "" }
            )),
            (Some(_), None) => out.push(format!("- unit {name}")),
            (Some(x), Some(y)) if x != y => {
                if x.contents != y.contents {
                    text_diff(&format!("unit {name}"), &x.contents, &y.contents, &mut out);
                }
                if x.enabled != y.enabled {
                    out.push(format!(
                        "~ unit {name}: {}",
                        if y.enabled {
                            "enabled"
                        } else {
                            "no longer enabled"
                        }
                    ));
                }
                for dropin in x
                    .dropins
                    .keys()
                    .chain(y.dropins.keys())
                    .collect::<BTreeSet<_>>()
                {
                    let what = format!("drop-in {name}.d/{dropin}");
                    match (x.dropins.get(dropin), y.dropins.get(dropin)) {
                        (None, Some(_)) => out.push(format!("+ {what}")),
                        (Some(_), None) => out.push(format!("- {what}")),
                        (Some(p), Some(q)) if p != q => text_diff(&what, p, q, &mut out),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (a, b) = (files(&old), files(&new));
    for path in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(path), b.get(path)) {
            (None, Some(_)) => out.push(format!("+ file {path}")),
            (Some(_), None) => out.push(format!("- file {path}")),
            (Some(p), Some(q)) if p != q => text_diff(&format!("file {path}"), p, q, &mut out),
            _ => {}
        }
    }
    let (a, b) = (keys(&old), keys(&new));
    for user in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let (p, q) = (
            a.get(user).cloned().unwrap_or_default(),
            b.get(user).cloned().unwrap_or_default(),
        );
        for gone in p.difference(&q) {
            out.push(format!("- ssh key of {user}: {gone}"));
        }
        for added in q.difference(&p) {
            out.push(format!("+ ssh key of {user}: {added}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK tests@strata";

    fn config(web: &str, key: &str, env: &str) -> String {
        serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [key]}]},
            "storage": {"files": [{"path": "/etc/strata/cluster.env", "contents": {"source": format!("data:,{env}")}}]},
            "systemd": {"units": [{"name": "web.service", "enabled": true, "contents": web}]}
        })
        .to_string()
    }

    #[test]
    fn a_unit_edit_shows_only_its_changed_lines_and_keys_only_as_fingerprints() {
        let old = config(
            "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/nginx-1.27\n",
            KEY,
            "A%3D1%0A",
        );
        let new = config(
            "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/nginx-1.28\n",
            KEY,
            "A%3D2%0A",
        );
        let lines = diff(&old, &new);
        assert_eq!(
            lines,
            [
                "~ unit web.service",
                "      [Service]",
                "-     ExecStart=/bin/nginx-1.27",
                "+     ExecStart=/bin/nginx-1.28",
                "~ file /etc/strata/cluster.env",
                "-     A=1",
                "+     A=2",
            ]
        );
        let rotated = config(
            "[Unit]\n",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsK7Q1n5Vt6oKqvV4aMr7Mf0yNqJW0mXhVq5g9h2dYc x",
            "A",
        );
        let lines = diff(&config("[Unit]\n", KEY, "A"), &rotated);
        assert!(lines.iter().all(|l| !l.contains("AAAA")), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("- ssh key of core: SHA256:")),
            "{lines:?}"
        );
    }

    #[test]
    fn an_etcd_discovery_token_shows_only_as_a_digest() {
        let old = config("[Unit]\n", KEY, "A%3D1%0A");
        let new = config(
            "[Unit]\n",
            KEY,
            "A%3D1%0AETCD_DISCOVERY%3Dhttps%3A%2F%2Fdiscovery.etcd.io%2Fs3cr3t%0A",
        );
        let lines = diff(&old, &new);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[2].starts_with("+     ETCD_DISCOVERY=<token sha256:"),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains("s3cr3t")), "{lines:?}");
    }
}
