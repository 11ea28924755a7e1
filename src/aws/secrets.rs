//! The SSH public key, read from AWS Secrets Manager at run time and held in memory
//! only: never written to disk, never printed (plans show its fingerprint).

use std::fmt;

use zeroize::Zeroizing;

use super::{Aws, AwsError, error};
use crate::config::SecretId;

/// A validated OpenSSH public key.
#[derive(Clone)]
pub struct SshPublicKey {
    openssh: Zeroizing<String>,
    /// `SHA256:...`, safe to show.
    pub fingerprint: String,
    /// `ssh-ed25519`, `ssh-rsa`, ...
    pub algorithm: String,
}

impl SshPublicKey {
    /// The key as an `authorized_keys` line, for the Ignition config only.
    pub fn openssh(&self) -> &str {
        &self.openssh
    }
}

impl fmt::Debug for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshPublicKey")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Validates a secret's value: an OpenSSH public key line, or JSON with a
/// `public_key` field. Messages never repeat the value.
pub fn parse_public_key(secret: &str, value: &str) -> Result<SshPublicKey, String> {
    let value = Zeroizing::new(value.trim().to_owned());
    let line: Zeroizing<String> = if value.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(&value)
            .map_err(|_| format!("secret `{secret}` looks like JSON but does not parse; store {{\"public_key\": \"ssh-ed25519 AAAA...\"}}"))?;
        match json.get("public_key").and_then(|k| k.as_str()) {
            Some(k) => Zeroizing::new(k.trim().to_owned()),
            None => {
                return Err(format!(
                    "secret `{secret}` is JSON without a string `public_key` field"
                ));
            }
        }
    } else {
        Zeroizing::new(value.to_string())
    };
    if line.trim().is_empty() {
        return Err(format!(
            "secret `{secret}` is empty; store a line such as `ssh-ed25519 AAAA... user@host`"
        ));
    }
    if line.split_whitespace().next() == Some("ssh-dss") {
        return Err(format!(
            "secret `{secret}` holds a DSA (ssh-dss) key, which OpenSSH has refused by default since 7.0, so the nodes' sshd would not accept it; store an ed25519 key (ssh-keygen -t ed25519)"
        ));
    }
    if line.contains("PRIVATE KEY") {
        return Err(format!(
            "secret `{secret}` holds a private key; store the public key (the .pub file) instead, and rotate that private key"
        ));
    }
    let key = ssh_key::PublicKey::from_openssh(&line).map_err(|_| {
        format!("secret `{secret}` does not hold an OpenSSH public key; store a line such as `ssh-ed25519 AAAA... user@host`")
    })?;
    let openssh = Zeroizing::new(
        key.to_openssh()
            .map_err(|e| format!("secret `{secret}`: {e}"))?,
    );
    // The line and its base64 body: neither may reach a comment, summary or output.
    crate::redact::register(&openssh);
    if let Some(body) = openssh.split_whitespace().nth(1) {
        crate::redact::register(body);
    }
    Ok(SshPublicKey {
        fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        algorithm: key.algorithm().to_string(),
        openssh,
    })
}

/// Reads and validates the key in `secret` (a name or an ARN).
pub async fn ssh_public_key(aws: &Aws, secret: &SecretId) -> Result<SshPublicKey, AwsError> {
    let what = format!("reading secret {secret} in {}", aws.region);
    let out = aws.secrets.get_secret_value().secret_id(secret.as_str()).send().await.map_err(|e| {
        let mut err = error(&what, e);
        if err.code == "ResourceNotFoundException" {
            err.hint = Some(format!(
                "create it: aws secretsmanager create-secret --region {} --name {secret} --secret-string \"$(cat ~/.ssh/id_ed25519.pub)\"",
                aws.region
            ));
        }
        err
    })?;
    let Some(value) = out.secret_string() else {
        return Err(AwsError {
            what,
            code: "NotAString".into(),
            message: "the secret has a binary value".into(),
            hint: Some("store the public key as the secret's string value".into()),
        });
    };
    parse_public_key(secret.as_str(), value).map_err(|message| AwsError {
        what,
        code: "NotAPublicKey".into(),
        message,
        hint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway key made for these tests; it guards nothing.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICm1bekesu5Ftri4D28WBQVtgKRVpxzfpvoPNIOVyiuK tests@strata";

    #[test]
    fn plain_and_json_secrets_give_the_same_key() {
        let plain = parse_public_key("s", KEY).unwrap();
        let json = parse_public_key("s", &format!("{{\"public_key\": \"{KEY}\"}}")).unwrap();
        assert_eq!(plain.openssh(), json.openssh());
        assert_eq!(plain.algorithm, "ssh-ed25519");
        assert!(
            plain.fingerprint.starts_with("SHA256:"),
            "{}",
            plain.fingerprint
        );
        assert!(
            !format!("{plain:?}").contains("AAAA"),
            "Debug must not show the key"
        );
    }

    #[test]
    fn errors_never_repeat_the_value() {
        for value in [
            "not a key at all",
            "{\"other\": 1}",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n",
            "{broken",
        ] {
            let err = parse_public_key("team/key", value).unwrap_err();
            assert!(err.contains("team/key"), "{err}");
            assert!(!err.contains(value.trim()), "{err} repeats the value");
        }
        assert!(
            parse_public_key("k", "-----BEGIN OPENSSH PRIVATE KEY-----")
                .unwrap_err()
                .contains("private key")
        );
    }
}
