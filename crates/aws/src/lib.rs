//! Reflex on AWS: event shapes to signals, and executors on the official SDK.

pub mod dynamo;
pub mod ec2;
pub mod errors;
pub mod events;
pub mod fleet;
pub mod logs;
pub mod maintenance;
pub mod nacl;
pub mod notices;
pub mod secrets;
pub mod waf;

/// Loads the SDK configuration once per cold start: the standard credential chain,
/// region, retry (standard mode) and `AWS_ENDPOINT_URL` (how tests reach moto).
pub async fn sdk_config() -> aws_types::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The SDK configuration, loaded on first use and then shared: adapters that never
/// touch AWS (the Azure host) never pay for the credential and region chains.
#[derive(Debug, Clone, Default)]
pub struct LazySdk(std::sync::Arc<tokio::sync::OnceCell<aws_types::SdkConfig>>);

impl LazySdk {
    /// An already-loaded configuration (tests point it at moto).
    pub fn from_config(config: aws_types::SdkConfig) -> Self {
        Self(std::sync::Arc::new(tokio::sync::OnceCell::new_with(Some(
            config,
        ))))
    }

    pub async fn get(&self) -> &aws_types::SdkConfig {
        self.0.get_or_init(sdk_config).await
    }
}
