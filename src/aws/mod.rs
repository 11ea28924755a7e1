//! The AWS adapter: clients built from the SDK's standard configuration, request
//! accounting, and observe/execute for each layer.
//!
//! Settings come from where every AWS tool reads them (`AWS_REGION`, the credentials
//! chain, `AWS_ENDPOINT_URL` for a local emulator); an environment's `region:` picks the
//! region of its clients.

mod account;
pub mod applied;
pub mod cluster;
pub mod discovery;
mod error;
pub mod executor;
pub mod images;
pub mod lock;
pub mod network;
pub mod pace;
pub(crate) mod read;
pub mod secrets;

pub(crate) use error::unless;
pub use error::{AwsError, error};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Account;
use account::Access;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use pace::Pace;

/// Every request sent, in order.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<Vec<Request>>>);

/// One request: the SDK's service and operation names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    service: String,
    operation: String,
}

impl Request {
    /// The IAM action that allows it: `ec2:DescribeVpcs`.
    fn iam_action(&self) -> String {
        let prefix = match self.service.as_str() {
            "EC2" => "ec2",
            "Elastic Load Balancing v2" => "elasticloadbalancing",
            "Auto Scaling" => "autoscaling",
            "Secrets Manager" => "secretsmanager",
            other => other,
        };
        format!("{prefix}:{}", self.operation)
    }
}

impl Metrics {
    /// A request sent by a client strata does not build itself (aws-config's STS
    /// client assuming a role).
    fn record(&self, service: &str, operation: &str) {
        if let Ok(mut requests) = self.0.lock() {
            requests.push(Request {
                service: service.to_owned(),
                operation: operation.to_owned(),
            });
        }
    }

    fn all(&self) -> Vec<Request> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Operation names of the requests sent so far.
    pub fn requests(&self) -> Vec<String> {
        self.all().into_iter().map(|r| r.operation).collect()
    }

    /// The IAM actions the requests sent so far needed (`ec2:DescribeVpcs`), each once.
    pub fn iam_actions(&self) -> std::collections::BTreeSet<String> {
        self.all().iter().map(Request::iam_action).collect()
    }

    /// Requests that only read (Describe*, Get*, List*).
    pub fn reads(&self) -> usize {
        self.requests().iter().filter(|op| is_read(op)).count()
    }

    /// Requests that change something.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|op| !is_read(op))
            .collect()
    }

    /// Requests per operation.
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for op in self.requests() {
            *out.entry(op).or_insert(0) += 1;
        }
        out
    }
}

fn is_read(operation: &str) -> bool {
    ["Describe", "Get", "List"]
        .iter()
        .any(|p| operation.starts_with(p))
}

#[derive(Debug)]
struct Counter(Metrics);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "strata-request-counter"
    }

    // Once per attempt: what crossed the wire, retries included.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg.load::<Metadata>();
        let request = Request {
            service: metadata.map_or("unknown", |m| m.service()).to_owned(),
            operation: metadata.map_or("unknown", |m| m.name()).to_owned(),
        };
        if let Ok(mut requests) = (self.0).0.lock() {
            requests.push(request);
        }
        Ok(())
    }
}

/// Clients for one region, sharing one request counter.
#[derive(Debug, Clone)]
pub struct Aws {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// Elastic Load Balancing v2.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// EC2 Auto Scaling.
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// Requests sent through these clients.
    pub metrics: Metrics,
    /// The pace of ELBv2 reads in this account and region (`None`: unpaced), shared by
    /// every client built for them in this run: `Aws::elb_read`.
    elb_reads: Option<Arc<Pace>>,
    /// The region.
    pub region: String,
}

impl Aws {
    /// Waits for this account and region's next ELBv2 read (`pace`): every ELBv2
    /// `Describe*` request waits here first.
    pub async fn elb_read(&self) {
        if let Some(pace) = &self.elb_reads {
            pace.take().await;
        }
    }
}

/// Paces by account (`None`: the credentials' own) and region.
type Paces = BTreeMap<(Option<Account>, String), Arc<Pace>>;

/// How to build clients: the shared SDK configuration and extra interceptors (tests
/// add one that picks an isolated emulator account).
#[derive(Debug, Clone)]
pub struct Connector {
    base: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
    metrics: Metrics,
    /// The configurations of other accounts, by the role assumed there and the
    /// session's access: each role is assumed once per run and access, and its
    /// credentials renewed by the SDK.
    accounts: Arc<tokio::sync::Mutex<BTreeMap<(Account, Access), SdkConfig>>>,
    /// What sessions in other accounts may do.
    access: Access,
    /// The account this connector works in (`None`: the credentials' own).
    account: Option<Account>,
    /// The ELBv2 read pace of each account and region, made on first use.
    elb_reads: Arc<Mutex<Paces>>,
    /// Reads per second a new pace allows (`0`: none).
    elb_reads_per_second: u32,
}

impl Connector {
    /// Loads the SDK's standard configuration from the environment.
    pub async fn from_env() -> Connector {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Connector::new(base, Vec::new())
    }

    /// Uses a given configuration (tests point it at the emulator).
    pub fn new(base: SdkConfig, interceptors: Vec<SharedInterceptor>) -> Connector {
        Connector {
            base,
            interceptors,
            metrics: Metrics::default(),
            accounts: Arc::default(),
            access: Access::Role,
            account: None,
            elb_reads: Arc::default(),
            elb_reads_per_second: pace::elb_reads_per_second(),
        }
    }

    /// This connector in `account` (`None`: the account of the credentials strata runs
    /// with): its role, assumed through STS from those credentials the first time, so
    /// a role that cannot be assumed is one clear error before any other call there.
    /// `region` is where STS is asked.
    pub async fn in_account(
        &self,
        account: Option<&Account>,
        region: &str,
    ) -> Result<Connector, AwsError> {
        let Some(account) = account else {
            return Ok(self.clone());
        };
        let mut accounts = self.accounts.lock().await;
        let key = (account.clone(), self.access);
        if let Some(base) = accounts.get(&key) {
            return Ok(self.in_account_with(account, base.clone()));
        }
        let base = account::assume(&self.base, account, self.access, region).await?;
        self.metrics.record("sts", "AssumeRole");
        accounts.insert(key, base.clone());
        Ok(self.in_account_with(account, base))
    }

    /// This connector for reading: roles it assumes in other accounts come with a
    /// session policy that allows reads only (plans, drift checks, renders). The
    /// credentials strata runs with are the job's to restrict (`examples/iam/`).
    pub fn read_only(self) -> Connector {
        Connector {
            access: Access::Read,
            ..self
        }
    }

    /// The same connector (interceptors, request accounting, paces) in `account`,
    /// through `base`.
    fn in_account_with(&self, account: &Account, base: SdkConfig) -> Connector {
        Connector {
            base,
            account: Some(account.clone()),
            ..self.clone()
        }
    }

    /// True when the SDK's credential chain finds credentials (environment, profile,
    /// web identity, container or instance role). Asked before any AWS call, so a run
    /// without credentials (a fork's pull request) can plan the model alone.
    pub async fn has_credentials(&self) -> bool {
        use aws_sdk_ec2::config::ProvideCredentials as _;
        let Some(provider) = self.base.credentials_provider() else {
            return false;
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            provider.provide_credentials(),
        )
        .await
        .is_ok_and(|found| found.is_ok())
    }

    /// The region configured outside strata (`AWS_REGION`, profile), if any.
    pub fn default_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// Requests sent by every client this connector built.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Clients for `region`.
    pub fn connect(&self, region: &str) -> Aws {
        let region_value = aws_config::Region::new(region.to_owned());
        let counter = SharedInterceptor::new(Counter(self.metrics.clone()));
        let mut ec2 = aws_sdk_ec2::config::Builder::from(&self.base)
            .region(region_value.clone())
            .interceptor(counter.clone());
        let mut elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.base)
            .region(region_value.clone())
            .interceptor(counter.clone());
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(&self.base)
            .region(region_value.clone())
            .interceptor(counter.clone());
        let mut autoscaling = aws_sdk_autoscaling::config::Builder::from(&self.base)
            .region(region_value)
            .interceptor(counter);
        for i in &self.interceptors {
            autoscaling = autoscaling.interceptor(i.clone());
            ec2 = ec2.interceptor(i.clone());
            elb = elb.interceptor(i.clone());
            secrets = secrets.interceptor(i.clone());
        }
        Aws {
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb.build()),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling.build()),
            metrics: self.metrics.clone(),
            elb_reads: self.elb_reads(region),
            region: region.to_owned(),
        }
    }

    /// The pace of ELBv2 reads in this connector's account and `region`.
    fn elb_reads(&self, region: &str) -> Option<Arc<Pace>> {
        let mut paces = self.elb_reads.lock().expect("the paces");
        let place = (self.account.clone(), region.to_owned());
        if let Some(pace) = paces.get(&place) {
            return Some(Arc::clone(pace));
        }
        let pace = Arc::new(Pace::per_second(self.elb_reads_per_second)?);
        paces.insert(place, Arc::clone(&pace));
        Some(pace)
    }
}
