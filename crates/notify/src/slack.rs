//! Slack incoming webhooks.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reflex_core::{NotificationRecord, Secret};
use tokio::sync::OnceCell;

use crate::Notifier;
use crate::blockkit;
use crate::message::Message;
use reflex_runtime::retry::{Attempt, GaveUp, RetryPolicy, deliver, parse_retry_after};

/// Fetches the webhook URL on first use (see [`SecretSource`]).
pub type UrlSource = reflex_core::settings::SecretSource;

/// Posts Block Kit messages to an incoming webhook.
pub struct SlackWebhook {
    source: UrlSource,
    url: OnceCell<Secret>,
    http: reqwest::Client,
    policy: RetryPolicy,
}

impl std::fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackWebhook")
            .field("url", &"[redacted]")
            .finish()
    }
}

/// Per-request cap; the deadline usually bounds it sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl SlackWebhook {
    /// A webhook with a known URL.
    pub fn new(url: Secret) -> Self {
        let s = Self::lazy(reflex_core::settings::fixed_source(url.clone()));
        let _ = s.url.set(url);
        s
    }

    /// A webhook whose URL is fetched on first use.
    pub fn lazy(source: UrlSource) -> Self {
        Self {
            source,
            url: OnceCell::new(),
            http: crate::http_client(),
            policy: RetryPolicy::default(),
        }
    }

    /// Overrides the retry settings (tests use short backoffs).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    async fn attempt(&self, url: &Secret, body: &serde_json::Value, left: Duration) -> Attempt {
        let res = self
            .http
            .post(url.expose())
            .timeout(left.min(REQUEST_TIMEOUT))
            .json(body)
            .send()
            .await;
        let resp = match res {
            Ok(r) => r,
            // `without_url` keeps the webhook URL (a secret) out of the message.
            Err(e) => return Attempt::Transient(url.redact(&e.without_url().to_string())),
        };
        let status = resp.status();
        let retry_after = parse_retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let text = reflex_runtime::http::text_capped(resp, reflex_runtime::http::MAX_BODY).await;
        let text = url.redact(blockkit::truncate(text.trim(), 200).as_str());
        match status.as_u16() {
            200..=299 => Attempt::Delivered(()),
            429 => Attempt::RateLimited(retry_after.unwrap_or(self.policy.default_retry_after)),
            500..=599 => Attempt::Transient(format!("HTTP {} {text}", status.as_u16())),
            code => Attempt::Rejected(format!("HTTP {code} {text}")),
        }
    }
}

impl SlackWebhook {
    /// Posts an already-rendered payload; the error says whether a retry can help and
    /// never contains the URL.
    pub async fn post(&self, body: &serde_json::Value, deadline: Instant) -> Result<u32, GaveUp> {
        let url = match self.url.get_or_try_init(|| (self.source)()).await {
            Ok(u) => u,
            Err(e) => {
                return Err(GaveUp {
                    attempts: 0,
                    error: format!("cannot read the Slack webhook URL: {e}"),
                    retryable: true,
                });
            }
        };
        let d = deliver(self.policy, deadline, |left| self.attempt(url, body, left)).await;
        match d.error {
            None => Ok(d.attempts),
            Some(e) => Err(GaveUp {
                attempts: d.attempts,
                error: url.redact(&e),
                retryable: d.retryable,
            }),
        }
    }
}

#[async_trait]
impl Notifier for SlackWebhook {
    async fn send(&self, message: &Message, deadline: Instant) -> NotificationRecord {
        match self.post(&blockkit::render(message), deadline).await {
            Ok(attempts) => record(attempts, None),
            Err(g) => record(g.attempts, Some(g.error)),
        }
    }
}

fn record(attempts: u32, error: Option<String>) -> NotificationRecord {
    NotificationRecord::new("slack", attempts, error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reflex_testkit::{Reply, SlackSink};

    use reflex_core::NotificationStatus;

    use super::*;
    use crate::message::Severity;

    fn msg() -> Message {
        Message {
            severity: Severity::Remediated,
            title: "Closed tcp/22".into(),
            banner: None,
            summary: "s".into(),
            fields: vec![],
            sections: vec![],
            footer: vec![],
            links: vec![],
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_attempts: 4,
            default_retry_after: Duration::from_millis(10),
        }
    }

    fn deadline(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn the_webhook_debug_never_shows_the_url() {
        let hook = SlackWebhook::new(Secret::new(
            "https://hooks.slack.com/services/T0001/B0001/S3CR3TS3CR3T",
        ));
        let shown = format!("{hook:?}");
        assert!(!shown.contains("S3CR3T"), "{shown}");
    }

    #[tokio::test]
    async fn posts_block_kit_json_to_the_webhook() {
        let sink = SlackSink::start().await;
        let hook = SlackWebhook::new(Secret::new(sink.webhook_url()));
        let r = hook.send(&msg(), deadline(5)).await;
        assert_eq!(r.status, NotificationStatus::Sent);
        let reqs = sink.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/services/T0000/B0000/reflex-test-secret");
        assert_eq!(reqs[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(blockkit::blocks(&reqs[0].body)[0]["type"], "header");
    }

    #[tokio::test]
    async fn honours_retry_after_on_429() {
        let sink = SlackSink::start().await;
        sink.script([Reply::RateLimited {
            retry_after_secs: 1,
        }]);
        let hook = SlackWebhook::new(Secret::new(sink.webhook_url())).with_policy(fast());
        let r = hook.send(&msg(), deadline(10)).await;
        assert_eq!((r.status, r.attempts), (NotificationStatus::Sent, 2));
        let reqs = sink.requests();
        let gap = reqs[1].at.duration_since(reqs[0].at);
        assert!(
            gap >= Duration::from_millis(950),
            "waited only {gap:?} after Retry-After: 1"
        );
    }

    #[tokio::test]
    async fn retries_server_errors_with_backoff() {
        let sink = SlackSink::start().await;
        sink.script([
            Reply::Status(500, "rollup_error"),
            Reply::Status(503, "busy"),
        ]);
        let hook = SlackWebhook::new(Secret::new(sink.webhook_url())).with_policy(fast());
        let r = hook.send(&msg(), deadline(10)).await;
        assert_eq!((r.status, r.attempts), (NotificationStatus::Sent, 3));
        assert_eq!(sink.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_fails_without_waiting() {
        let sink = SlackSink::start().await;
        sink.script([Reply::RateLimited {
            retry_after_secs: 60,
        }]);
        let hook = SlackWebhook::new(Secret::new(sink.webhook_url())).with_policy(fast());
        let r = hook.send(&msg(), deadline(2)).await;
        assert_eq!(r.status, NotificationStatus::Failed);
        assert_eq!(sink.requests().len(), 1);
        assert!(
            r.error
                .unwrap_or_default()
                .contains("would pass the deadline")
        );
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_never_leak_the_url() {
        let sink = SlackSink::start().await;
        sink.script([Reply::Status(404, "no_service")]);
        let hook = SlackWebhook::new(Secret::new(sink.webhook_url())).with_policy(fast());
        let r = hook.send(&msg(), deadline(5)).await;
        assert_eq!((r.status, r.attempts), (NotificationStatus::Failed, 1));
        assert_eq!(r.error.as_deref(), Some("HTTP 404 no_service"));
    }

    #[tokio::test]
    async fn connection_failures_are_reported_without_the_url() {
        // Nothing listens on this port once the sink is dropped.
        let url = {
            let sink = SlackSink::start().await;
            sink.webhook_url()
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let hook = SlackWebhook::new(Secret::new(url)).with_policy(fast());
        let r = hook.send(&msg(), deadline(2)).await;
        assert_eq!(r.status, NotificationStatus::Failed);
        let e = r.error.unwrap_or_default();
        assert!(!e.contains("reflex-test-secret"), "secret leaked: {e}");
        assert!(!e.contains("127.0.0.1"), "URL leaked: {e}");
    }

    #[tokio::test]
    async fn a_missing_secret_is_a_failed_notification_not_a_crash() {
        let hook = SlackWebhook::lazy(Arc::new(|| {
            Box::pin(async { Err("ParameterNotFound: /reflex/slack".to_string()) })
        }));
        let r = hook.send(&msg(), deadline(2)).await;
        assert_eq!((r.status, r.attempts), (NotificationStatus::Failed, 0));
        assert!(r.error.unwrap_or_default().contains("ParameterNotFound"));
    }
}
