//! etcd discovery: a token from the discovery service, fetched once per cluster (when
//! its machines are first launched) and kept in Secrets Manager as
//! `strata/<environment>/etcd-discovery`, so every later render and rollout reuses it.
//! The token lets anyone join the cluster: it is shown in no plan or log line.

use std::time::Duration;

use super::{Aws, AwsError, error};
use crate::config::{Etcd, names};

/// The public discovery service; `{size}` is the cluster size.
pub const DEFAULT_SERVICE: &str = "https://discovery.etcd.io/new?size={size}";

/// A discovery token and the cluster size it was made for.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token URL etcd reads as `ETCD_DISCOVERY`.
    pub url: String,
    /// The size it was made for, when known.
    pub size: Option<u16>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("size", &self.size).finish()
    }
}

/// The URL that makes a new token for a cluster of `size`.
pub fn service_url(etcd: &Etcd, size: u16) -> String {
    etcd.discovery_url
        .as_deref()
        .unwrap_or(DEFAULT_SERVICE)
        .replace("{size}", &size.to_string())
}

/// The environment's stored token, `None` before its first launch.
pub async fn read(aws: &Aws, env: &str) -> Result<Option<Token>, AwsError> {
    let secret = names::etcd_discovery_secret(env);
    let what = format!("reading secret {secret} in {}", aws.region);
    let sent = aws
        .secrets
        .get_secret_value()
        .secret_id(&secret)
        .send()
        .await;
    let Some(out) = super::unless(&what, "ResourceNotFoundException", sent)? else {
        return Ok(None);
    };
    let value = out.secret_string().unwrap_or_default().trim();
    let parsed: Option<serde_json::Value> = serde_json::from_str(value).ok();
    let (url, size) = match &parsed {
        Some(json) => (
            json["url"].as_str().unwrap_or_default().to_owned(),
            json["size"].as_u64().and_then(|s| u16::try_from(s).ok()),
        ),
        None => (value.to_owned(), None),
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(AwsError {
            what,
            code: "NotADiscoveryToken".into(),
            message: format!("secret `{secret}` does not hold a discovery token URL"),
            hint: Some(
                "store {\"url\": \"https://discovery.etcd.io/<token>\", \"size\": N}, or delete the secret so the next apply fetches a new token (only for a cluster not yet started)".into(),
            ),
        });
    }
    crate::redact::register(&url);
    Ok(Some(Token { url, size }))
}

/// Asks the discovery service for a new token.
pub async fn fetch(service: &str) -> Result<String, String> {
    let failed = |message: String| {
        format!(
            "fetching an etcd discovery token from {service}: {message}\n  hint: check the network, or point node.etcd.discovery_url at a reachable discovery service"
        )
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .get(service)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let body = response.text().await.map_err(|e| failed(e.to_string()))?;
    let url = body.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(failed("the answer is not a token URL".into()));
    }
    crate::redact::register(url);
    Ok(url.to_owned())
}

/// Keeps a new token in the environment's secret, tagged like every strata resource.
pub async fn store(
    aws: &Aws,
    env: &str,
    token: &Token,
    tags: Vec<(String, String)>,
) -> Result<(), AwsError> {
    let secret = names::etcd_discovery_secret(env);
    let value = serde_json::json!({"url": token.url, "size": token.size}).to_string();
    aws.secrets
        .create_secret()
        .name(&secret)
        .description("etcd discovery token of this environment's cluster; written once by strata")
        .secret_string(value)
        .set_tags(Some(
            tags.into_iter()
                .map(|(k, v)| {
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .map(drop)
        .map_err(|e| error(format!("storing secret {secret} in {}", aws.region), e))
}
