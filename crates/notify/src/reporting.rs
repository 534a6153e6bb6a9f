//! Where a remediating function reports: a Slack incoming webhook (the URL, or a
//! reference to it in SSM / Secrets Manager) and, optionally, an SNS topic.

use std::sync::Arc;

use reflex_aws::LazySdk;
use reflex_aws::secrets::{SecretSetting, check_url};
use reflex_core::ConfigError;
use reflex_core::settings::Lookup;

use crate::{Notifier, SlackWebhook, SnsPublisher};

/// `REFLEX_SLACK_WEBHOOK_URL` / `REFLEX_SLACK_WEBHOOK_SECRET` and `REFLEX_SNS_TOPIC_ARN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reporting {
    pub slack: SecretSetting,
    /// Also publish each report here.
    pub sns_topic_arn: Option<String>,
}

impl Reporting {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            slack: SecretSetting::from_lookup(
                env,
                "REFLEX_SLACK_WEBHOOK_URL",
                "REFLEX_SLACK_WEBHOOK_SECRET",
                check_url,
            )?,
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
        let c = Reporting::from_lookup(&env(&[
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
        let c = Reporting::from_lookup(&env(&[("REFLEX_SLACK_WEBHOOK_SECRET", "/reflex/slack")]));
        assert_eq!(
            c.map(|c| c.slack),
            Ok(SecretSetting::Reference(
                reflex_aws::secrets::SecretRef::Ssm("/reflex/slack".into())
            ))
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = Reporting::from_lookup(&env(&[(
            "REFLEX_SLACK_WEBHOOK_URL",
            "hooks.slack.com/T/B/secret",
        )]));
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("REFLEX_SLACK_WEBHOOK_URL"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
}
