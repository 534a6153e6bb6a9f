//! Typed configuration, read once at cold start. See the README's table.

use std::sync::Arc;

use reflex_aws::LazySdk;
use reflex_aws::secrets::{SecretSetting, check_url};
use reflex_core::settings::{Lookup, flag};
use reflex_core::{ConfigError, ExposurePolicy};
use reflex_notify::{Notifier, SlackWebhook, SnsPublisher};

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub policy: ExposurePolicy,
    /// `REFLEX_DRY_RUN`: plan only, change nothing.
    pub dry_run: bool,
    /// `REFLEX_SLACK_WEBHOOK_URL`, or `REFLEX_SLACK_WEBHOOK_SECRET` (SSM / Secrets Manager).
    pub slack: SecretSetting,
    /// `REFLEX_SNS_TOPIC_ARN`: also publish each report here.
    pub sns_topic_arn: Option<String>,
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let slack = SecretSetting::from_lookup(
            env,
            "REFLEX_SLACK_WEBHOOK_URL",
            "REFLEX_SLACK_WEBHOOK_SECRET",
            check_url,
        )?;
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
        if let Some(source) = self.slack.source(sdk, "webhook_url") {
            out.push(Arc::new(SlackWebhook::lazy(source)));
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
        assert!(matches!(c.map(|c| c.slack), Ok(SecretSetting::Value(_))));
    }

    #[test]
    fn a_reference_is_parsed() {
        let c = Config::from_lookup(&env(&[("REFLEX_SLACK_WEBHOOK_SECRET", "/reflex/slack")]));
        assert_eq!(
            c.map(|c| c.slack),
            Ok(SecretSetting::Reference(
                reflex_aws::secrets::SecretRef::Ssm("/reflex/slack".into())
            ))
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
