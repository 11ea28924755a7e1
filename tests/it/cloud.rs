//! The AWS side of the harness: one moto server per test run, started on a free
//! loopback port, and an isolated moto account per test (the `x-moto-account-id`
//! header, added by an SDK interceptor), so tests run in parallel without seeing
//! each other's resources.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use strata::aws::Connector;

/// The running moto server.
pub struct Moto {
    pub port: u16,
    _child: Mutex<Child>,
    // Held open for the life of the test process; moto exits when it closes.
    _stdin: Mutex<ChildStdin>,
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_MOTO_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache"));
    cache.join("strata/moto-5.2.5/bin/python")
}

/// Starts moto once for the whole test binary.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let script = crate::harness::project_root().join("tests/moto_server.py");
        let mut child = Command::new(python())
            .arg(script)
            // Flatcar and Fedora CoreOS images under their publishers' real account ids.
            .env("MOTO_AMIS_PATH", crate::harness::project_root().join("tests/data/amis.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto is installed: run scripts/setup (it installs moto[server]==5.2.5 in a virtualenv)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("moto did not print its port: {line:?}"));
        let stdin = child.stdin.take().unwrap();
        Moto { port, _child: Mutex::new(child), _stdin: Mutex::new(stdin) }
    })
}

impl Moto {
    /// The endpoint URL the SDK talks to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Calls a JSON-protocol AWS API directly (moto does not check signatures), for
    /// setting up things strata only refers to, such as ACM certificates.
    pub fn call_json(
        &self,
        account: &str,
        region: &str,
        service: &str,
        target: &str,
        body: &str,
    ) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\n\
             x-moto-account-id: {account}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{target}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }
}

/// The SDK pointed at moto in `region`, with test credentials.
pub async fn moto_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto().url())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        // A moto 500 must fail fast, not cost seconds of retries.
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

/// Sends every request to one moto account, but those signed with a role's
/// credentials (STS hands out `ASIA…` keys), which moto sends to the role's account.
#[derive(Debug)]
struct Account(String);

impl Intercept for Account {
    fn name(&self) -> &'static str {
        "moto-account"
    }
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        let assumed = headers
            .get("authorization")
            .is_some_and(|a| a.contains("Credential=ASIA"));
        if !assumed {
            headers.insert("x-moto-account-id", self.0.clone());
        }
        Ok(())
    }
}

/// Fails the n-th write request, like a network cut in the middle of an apply.
#[derive(Debug)]
pub struct FailNthWrite {
    remaining: Arc<Mutex<usize>>,
}

impl Intercept for FailNthWrite {
    fn name(&self) -> &'static str {
        "fail-nth-write"
    }
    fn modify_before_signing(
        &self,
        _: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        if ["Describe", "Get", "List"]
            .iter()
            .any(|p| op.starts_with(p))
        {
            return Ok(());
        }
        let mut left = self.remaining.lock().unwrap();
        if *left == 0 {
            return Err(format!("connection reset (injected before {op})").into());
        }
        *left -= 1;
        Ok(())
    }
}

/// One test's own AWS: a fresh moto account.
pub struct Cloud {
    pub account: String,
}

impl Cloud {
    /// A new, empty account.
    pub fn new() -> Cloud {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let account = format!("{:06}{:06}", std::process::id() % 1_000_000, n);
        Cloud { account }
    }

    async fn config(&self) -> aws_config::SdkConfig {
        moto_config("eu-west-1").await
    }

    /// A connector whose clients all talk to this account.
    pub async fn connector(&self) -> Connector {
        Connector::new(
            self.config().await,
            vec![SharedInterceptor::new(Account(self.account.clone()))],
        )
    }

    /// A connector whose `n`-th write request fails.
    pub async fn failing_connector(&self, n: usize) -> Connector {
        let fail = FailNthWrite {
            remaining: Arc::new(Mutex::new(n)),
        };
        Connector::new(
            self.config().await,
            vec![
                SharedInterceptor::new(Account(self.account.clone())),
                SharedInterceptor::new(fail),
            ],
        )
    }

    /// An ACM certificate in this account, for HTTPS listeners.
    pub fn certificate(&self, region: &str) -> String {
        let out = moto().call_json(
            &self.account,
            region,
            "acm",
            "CertificateManager.RequestCertificate",
            r#"{"DomainName":"www.example.com","ValidationMethod":"DNS"}"#,
        );
        out["CertificateArn"].as_str().unwrap().to_owned()
    }
}

/// Environment variables that point the `strata` binary at moto's default account.
pub fn binary_vars() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto().url()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_MAX_ATTEMPTS", "1".to_owned()),
    ]
}

/// Stores a secret in moto's default account (where the binary looks).
pub async fn put_secret(region: &str, name: &str, value: &str) {
    let client = aws_sdk_secretsmanager::Client::new(&moto_config(region).await);
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret");
}

impl Cloud {
    /// Stores a secret in this account.
    pub async fn put_secret(&self, region: &str, name: &str, value: &str) {
        let aws = self.connector().await.connect(region);
        aws.secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
    }
}
