//! Maps SDK errors onto [`CloudError`], so executors decide on kinds, not strings.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use reflex_core::{CloudError, CloudErrorKind};

/// Error codes meaning "the thing is already gone".
const NOT_FOUND: [&str; 5] = [
    "InvalidPermission.NotFound",
    "InvalidGroup.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
    "InvalidGroupId.NotFound",
    "ParameterNotFound",
];

const THROTTLED: [&str; 5] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "ThrottledException",
];

const DENIED: [&str; 4] = [
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
];

/// Classifies any SDK error. Secrets never appear in SDK errors; URLs do not either.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let message = se.err().message().unwrap_or("no message").to_string();
            let kind = if NOT_FOUND.contains(&code.as_str()) || code.ends_with(".NotFound") {
                CloudErrorKind::NotFound
            } else if THROTTLED.contains(&code.as_str()) || status == 429 {
                CloudErrorKind::Throttled
            } else if DENIED.contains(&code.as_str()) || status == 403 {
                CloudErrorKind::Denied
            } else if status >= 500 {
                CloudErrorKind::Transient
            } else {
                CloudErrorKind::Other
            };
            CloudError::new(kind, code, message)
        }
        SdkError::TimeoutError(_) => CloudError::new(
            CloudErrorKind::Transient,
            "Timeout",
            "the request timed out",
        ),
        SdkError::DispatchFailure(d) => CloudError::new(
            CloudErrorKind::Transient,
            "DispatchFailure",
            format!(
                "could not reach the service: {:?}",
                d.as_connector_error().map(ToString::to_string)
            ),
        ),
        SdkError::ResponseError(_) => CloudError::new(
            CloudErrorKind::Transient,
            "ResponseError",
            "the response could not be read",
        ),
        other => CloudError::new(CloudErrorKind::Other, "ClientError", other.to_string()),
    }
}
