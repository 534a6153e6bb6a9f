//! Reflex notifiers: one [`Message`] model, rendered to Slack Block Kit (within
//! Slack's limits) or plain text for SNS, delivered with one shared retrier.

pub mod blockkit;
pub mod message;
pub mod reporting;
pub mod slack;
pub mod slack_api;
pub mod sns;

use std::time::Instant;

use async_trait::async_trait;
use reflex_core::NotificationRecord;

pub use message::{Message, Severity};
pub use reflex_runtime::retry;
pub use reporting::Reporting;
pub use slack::{SlackWebhook, UrlSource};
pub use slack_api::{Posted, SlackApi};
pub use sns::SnsPublisher;

/// The HTTP client settings every Slack endpoint uses. Not a process-wide static:
/// a pooled connection must not outlive the async runtime that opened it.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("reflex/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// A channel a report is delivered to.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `message`, retrying what can be retried until `deadline`. Never
    /// panics and never returns secrets in the record.
    async fn send(&self, message: &Message, deadline: Instant) -> NotificationRecord;
}
