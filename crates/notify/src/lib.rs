//! Reflex notifiers: one [`Message`] model, rendered to Slack Block Kit (within
//! Slack's limits) or plain text for SNS, delivered with one shared retrier.

pub mod blockkit;
pub mod message;
pub mod slack;
pub mod slack_api;
pub mod sns;

use std::time::Instant;

use async_trait::async_trait;
use reflex_core::NotificationRecord;

pub use message::{Message, Severity};
pub use reflex_runtime::retry;
pub use slack::{SlackWebhook, UrlSource};
pub use slack_api::{Posted, SlackApi};
pub use sns::SnsPublisher;

/// A channel a report is delivered to.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `message`, retrying what can be retried until `deadline`. Never
    /// panics and never returns secrets in the record.
    async fn send(&self, message: &Message, deadline: Instant) -> NotificationRecord;
}
