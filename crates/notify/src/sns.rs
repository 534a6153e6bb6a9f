//! Optional SNS publish of each report.

use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use reflex_core::NotificationRecord;

use crate::Notifier;
use crate::blockkit::truncate;
use crate::message::Message;

/// SNS subjects: at most 100 characters, ASCII, no line breaks.
const MAX_SUBJECT: usize = 100;
/// SNS messages: at most 256 KiB; stay well below.
const MAX_MESSAGE: usize = 200_000;

/// Publishes the plain-text report to one topic. The SDK retries throttling and 5xx.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher from the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_types::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self::new(aws_sdk_sns::Client::new(sdk), topic_arn)
    }

    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn subject(title: &str) -> String {
    let ascii: String = title
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let ascii = ascii.trim();
    if ascii.len() <= MAX_SUBJECT {
        return ascii.to_string();
    }
    format!("{}...", &ascii[..MAX_SUBJECT - 3])
}

#[async_trait]
impl Notifier for SnsPublisher {
    async fn send(&self, message: &Message, _deadline: Instant) -> NotificationRecord {
        let res = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&message.title))
            .message(truncate(&message.to_text(), MAX_MESSAGE))
            .send()
            .await;
        let error = res.err().map(|e| {
            format!(
                "{}: {}",
                e.code().unwrap_or("SnsError"),
                e.message().unwrap_or("publish failed")
            )
        });
        NotificationRecord::new("sns", 1, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_short_ascii_single_lines() {
        let s = subject(&format!("✅ Closed\ntcp/22 {}", "x".repeat(300)));
        assert!(s.len() <= MAX_SUBJECT);
        assert!(
            s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()),
            "{s}"
        );
        assert!(s.ends_with("..."));
    }
}
