//! Reflex on AWS: event shapes to signals, and executors on the official SDK.

pub mod ec2;
pub mod errors;
pub mod events;
pub mod secrets;

/// Loads the SDK configuration once per cold start: the standard credential chain,
/// region, retry (standard mode) and `AWS_ENDPOINT_URL` (how tests reach moto).
pub async fn sdk_config() -> aws_types::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
