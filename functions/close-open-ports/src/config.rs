//! Typed configuration, read once at cold start. See the README's table.

use std::sync::Arc;

use reflex_aws::LazySdk;
use reflex_aws::secrets::{SecretRef, fetch};
use reflex_core::settings::{Lookup, flag};
use reflex_core::{ConfigError, ExposurePolicy, Secret};
use reflex_notify::{Notifier, SlackWebhook, SnsPublisher};

/// Where the Slack webhook URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackSetting {
    None,
    /// `REFLEX_SLACK_WEBHOOK_URL`.
    Url(Secret),
    /// `REFLEX_SLACK_WEBHOOK_SECRET`: an SSM parameter or Secrets Manager ARN.
    Reference(SecretRef),
}

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub policy: ExposurePolicy,
    /// `REFLEX_DRY_RUN`: plan only, change nothing.
    pub dry_run: bool,
    pub slack: SlackSetting,
    /// `REFLEX_SNS_TOPIC_ARN`: also publish each report here.
    pub sns_topic_arn: Option<String>,
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let slack = match (
            env.get("REFLEX_SLACK_WEBHOOK_URL"),
            env.get("REFLEX_SLACK_WEBHOOK_SECRET"),
        ) {
            (Some(url), _) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError {
                        name: "REFLEX_SLACK_WEBHOOK_URL",
                        value: "[redacted]".into(),
                        reason: "expected an https:// incoming-webhook URL".into(),
                    });
                }
                SlackSetting::Url(Secret::new(url))
            }
            (None, Some(reference)) => SlackSetting::Reference(SecretRef::parse(&reference)),
            (None, None) => SlackSetting::None,
        };
        Ok(Self {
            policy: ExposurePolicy::from_lookup(env)?,
            dry_run: flag(env, "REFLEX_DRY_RUN", false)?,
            slack,
            sns_topic_arn: env.get("REFLEX_SNS_TOPIC_ARN"),
        })
    }

    /// The notifiers this configuration asks for. The AWS SDK is loaded only for
    /// SNS, and for a Slack URL held in SSM / Secrets Manager (on first use).
    pub async fn notifiers(&self, sdk: &LazySdk) -> Vec<Arc<dyn Notifier>> {
        let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
        match &self.slack {
            SlackSetting::None => {}
            SlackSetting::Url(url) => out.push(Arc::new(SlackWebhook::new(url.clone()))),
            SlackSetting::Reference(reference) => {
                let sdk = sdk.clone();
                let reference = reference.clone();
                out.push(Arc::new(SlackWebhook::lazy(Arc::new(move || {
                    let sdk = sdk.clone();
                    let reference = reference.clone();
                    Box::pin(async move {
                        fetch(sdk.get().await, &reference, "webhook_url")
                            .await
                            .map_err(|e| e.to_string())
                    })
                }))));
            }
        }
        if let Some(topic) = &self.sns_topic_arn {
            out.push(Arc::new(SnsPublisher::from_sdk(
                sdk.get().await,
                topic.clone(),
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::settings::from_pairs as env;

    use super::*;

    #[test]
    fn the_url_wins_over_a_reference() {
        let c = Config::from_lookup(&env(&[
            (
                "REFLEX_SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/x",
            ),
            ("REFLEX_SLACK_WEBHOOK_SECRET", "/reflex/slack"),
        ]));
        assert!(matches!(c.map(|c| c.slack), Ok(SlackSetting::Url(_))));
    }

    #[test]
    fn a_reference_is_parsed() {
        let c = Config::from_lookup(&env(&[("REFLEX_SLACK_WEBHOOK_SECRET", "/reflex/slack")]));
        assert_eq!(
            c.map(|c| c.slack),
            Ok(SlackSetting::Reference(SecretRef::Ssm(
                "/reflex/slack".into()
            )))
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = Config::from_lookup(&env(&[(
            "REFLEX_SLACK_WEBHOOK_URL",
            "hooks.slack.com/T/B/secret",
        )]));
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("REFLEX_SLACK_WEBHOOK_URL"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn dry_run_defaults_off() {
        assert_eq!(Config::from_lookup(&env(&[])).map(|c| c.dry_run), Ok(false));
        assert_eq!(
            Config::from_lookup(&env(&[("REFLEX_DRY_RUN", "true")])).map(|c| c.dry_run),
            Ok(true)
        );
    }
}
