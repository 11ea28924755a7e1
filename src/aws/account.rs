//! Environments in other accounts: the role an environment's `account` names,
//! assumed through STS from the credentials strata runs with.

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::AwsError;
use crate::config::Account;

/// The session policy of a role assumed to read (plans, drift checks, renders): the
/// session may do only what both the role and this allow, so a plan cannot write in
/// another account even though the role it assumes is the one applies use.
const READ_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:Describe*","elasticloadbalancing:Describe*","autoscaling:Describe*","secretsmanager:GetSecretValue"],"Resource":"*"}]}"#;

/// What a session in another account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Access {
    /// What the role allows: applies.
    Role,
    /// Reads only, whatever the role allows: plans, drift checks, renders.
    Read,
}

/// `base` with the credentials of `account`'s role, assumed now (STS in `region`), so
/// a role that cannot be assumed is one clear error before any other call there.
pub(super) async fn assume(
    base: &SdkConfig,
    account: &Account,
    access: Access,
    region: &str,
) -> Result<SdkConfig, AwsError> {
    let role = account.role_arn.as_str();
    let mut builder = AssumeRoleProvider::builder(role)
        .session_name("strata")
        .region(aws_config::Region::new(region.to_owned()))
        .configure(base);
    if let Some(id) = &account.external_id {
        builder = builder.external_id(id.as_str());
    }
    if access == Access::Read {
        builder = builder.policy(READ_ONLY);
    }
    let provider = builder.build().await;
    let first = provider
        .provide_credentials()
        .await
        .map_err(|e| refused(account, region, &e))?;
    let primed = Primed {
        provider,
        first: std::sync::Mutex::new(Some(first)),
    };
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(primed))
        .build())
}

fn refused(account: &Account, region: &str, e: &CredentialsError) -> AwsError {
    AwsError::new(
        format!("assuming role {} (STS in {region})", account.role_arn),
        "AssumeRoleFailed",
        DisplayErrorContext(e).to_string(),
        Some(format!(
            "the role's trust policy must let the credentials strata runs with assume it{}, and those credentials need sts:AssumeRole on it (examples/iam/)",
            match account.external_id {
                Some(_) => " with this external_id",
                None => "",
            }
        )),
    )
}

/// The role's provider, with the credentials it was first assumed with served first
/// (the SDK caches them until they near their expiry, then asks STS again).
#[derive(Debug)]
struct Primed {
    provider: AssumeRoleProvider,
    first: std::sync::Mutex<Option<Credentials>>,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.first.lock().ok().and_then(|mut f| f.take());
        match first {
            Some(credentials) => future::ProvideCredentials::ready(Ok(credentials)),
            None => self.provider.provide_credentials(),
        }
    }
}
