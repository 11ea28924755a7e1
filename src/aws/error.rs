//! What an AWS call that failed says: what strata was doing, AWS's code and message
//! (or, when AWS's answer cannot be read, its HTTP status and the start of its body),
//! and what to do.

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// How much of an unreadable answer's body an error quotes.
const BODY_QUOTED: usize = 200;

/// An AWS call that failed, with the resource it concerned and a hint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {code}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct AwsError {
    /// What strata was doing, e.g. `deleting subnet subnet/public/0 (subnet-0abc)`.
    pub what: String,
    /// AWS error code, or strata's when AWS gave none.
    pub code: String,
    /// AWS message.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

impl AwsError {
    /// An error of `what` strata was doing, with AWS's (or strata's) code and message.
    pub fn new(
        what: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> AwsError {
        AwsError {
            what: what.into(),
            code: code.into(),
            message: message.into(),
            hint,
        }
    }
}

/// Wraps an SDK error with what was being done.
pub fn error<E>(what: impl Into<String>, err: SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let what = what.into();
    let (code, message) = match &err {
        SdkError::ServiceError(e) => match e.err().code() {
            Some(code) => (
                code.to_owned(),
                e.err().message().unwrap_or_default().to_owned(),
            ),
            None => unreadable(e.raw().status().as_u16(), e.raw().body().bytes()),
        },
        SdkError::ResponseError(e) => unreadable(e.raw().status().as_u16(), e.raw().body().bytes()),
        other if lacks_credentials(other) => (
            "NoCredentials".to_owned(),
            crate::diagnostic::error_chain(other),
        ),
        other => (
            "RequestFailed".to_owned(),
            crate::diagnostic::error_chain(other),
        ),
    };
    let hint = hint_for(&code, &what);
    AwsError {
        what,
        code,
        message,
        hint,
    }
}

/// The answer of a call, or `None` when AWS refused it with error `code`: an outcome
/// the caller expects (a secret not made yet, a name already taken), not a failure.
pub(crate) fn unless<T, E>(
    what: &str,
    code: &str,
    sent: Result<T, SdkError<E>>,
) -> Result<Option<T>, AwsError>
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match sent {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            let err = error(what, e);
            if err.code == code { Ok(None) } else { Err(err) }
        }
    }
}

/// An answer without an error code strata can read: its status and the start of its
/// body, so an emulator's or a proxy's answer is recognisable.
fn unreadable(status: u16, body: Option<&[u8]>) -> (String, String) {
    let body = body.map(String::from_utf8_lossy).unwrap_or_default();
    let body = body.trim();
    let quoted: String = body.chars().take(BODY_QUOTED).collect();
    let more = if quoted.len() < body.len() { "…" } else { "" };
    let message = match quoted.is_empty() {
        true => format!("AWS answered HTTP {status} with an empty body"),
        false => format!("AWS answered HTTP {status}: {quoted}{more}"),
    };
    (format!("Http{status}"), message)
}

/// True when the request was never sent because the credential chain found nothing.
fn lacks_credentials(err: &(dyn Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

fn hint_for(code: &str, what: &str) -> Option<String> {
    Some(match code {
        "DependencyViolation" | "ResourceInUse" => format!(
            "something outside this step still uses it ({what}): instances, network interfaces, load balancers or \
             security-group rules of other groups; remove those first, then run apply again"
        ),
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            "the credentials lack this permission; grant it to the role strata runs as".to_owned()
        }
        "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
            "check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE or the role in CI)".to_owned()
        }
        "NoCredentials" => "no AWS credentials were found; strata looks where the AWS CLI does: \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/config and \
             ~/.aws/credentials, a web identity token (AWS_ROLE_ARN with \
             AWS_WEB_IDENTITY_TOKEN_FILE, as aws-actions/configure-aws-credentials sets in CI), \
             SSO, the container's and the instance's role"
            .to_owned(),
        "RequestFailed" => {
            "could not reach AWS; check the network, AWS_REGION and AWS_ENDPOINT_URL".to_owned()
        }
        code if code.starts_with("Http") => {
            "AWS (or what AWS_ENDPOINT_URL points at) answered something that is not an AWS \
             answer; check AWS_ENDPOINT_URL and any proxy, then run again"
                .to_owned()
        }
        "AddressLimitExceeded"
        | "VpcLimitExceeded"
        | "NatGatewayLimitExceeded"
        | "TooManyLoadBalancers" => {
            "an AWS quota is reached; raise it in Service Quotas or remove unused resources"
                .to_owned()
        }
        "DuplicateLoadBalancerName" | "DuplicateTargetGroupName" | "InvalidGroup.Duplicate" => {
            "a resource with this name exists but does not carry strata's tags; rename it or tag it"
                .to_owned()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{BODY_QUOTED, hint_for, unreadable};

    #[test]
    fn an_unreadable_answer_is_quoted_by_status_and_the_start_of_its_body() {
        let (code, message) = unreadable(502, Some(b"  <html>bad gateway</html>\n"));
        assert_eq!(code, "Http502");
        assert_eq!(message, "AWS answered HTTP 502: <html>bad gateway</html>");
        assert!(hint_for(&code, "reading VPCs").is_some());

        let long = "x".repeat(BODY_QUOTED * 2);
        let (_, message) = unreadable(500, Some(long.as_bytes()));
        assert!(message.ends_with(&format!("{}…", "x".repeat(BODY_QUOTED))));

        let (_, message) = unreadable(500, None);
        assert_eq!(message, "AWS answered HTTP 500 with an empty body");
    }
}
