//! Any SNS message or EventBridge event not recognised as something more specific:
//! a readable message (title, facts, flattened fields), never raw JSON.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::{Level, Notice, NoticeKind, NoticeState};
use serde_json::Value;

use super::{delivery_key, flatten, region};

/// One SNS notification, as Lambda delivers it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// A generic SNS message: its subject, topic, and text (or flattened JSON).
pub fn sns(m: &SnsMessage, body: Option<&Value>) -> Notice {
    let topic = m
        .topic_arn
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .unwrap_or("SNS");
    let title = m
        .subject
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("Message on {topic}"));
    let delivery = m
        .message_id
        .clone()
        .map_or_else(|| format!("sns:{topic}:{title}"), |id| format!("sns:{id}"));
    let mut n = Notice::new(
        NoticeKind::Event,
        format!("aws.sns/{topic}"),
        Level::Info,
        NoticeState::Event,
        title,
        delivery,
    );
    let arn = m.topic_arn.as_deref().unwrap_or_default();
    n.account = region::account_from_arn(arn).map(str::to_string);
    n.region = region::from_arn(arn).map(str::to_string);
    n.place = Some(format!("SNS topic {topic}"));
    n.field("Topic", Some(topic.to_string()));
    n.field("Account", n.account.clone());
    n.field("Region", n.region.clone());
    n.field("Sent at", m.timestamp.clone());
    n.reason = Some(match body {
        Some(v) => flatten(v).join("\n"),
        None => m.message.clone(),
    });
    n.at.clone_from(&m.timestamp);
    n
}

/// A generic EventBridge event: detail-type, source, where, and the detail's fields.
pub fn eventbridge(env: &EventBridgeEvent<Value>) -> Notice {
    let mut n = Notice::new(
        NoticeKind::Event,
        format!("{}/{}", env.source, env.detail_type),
        Level::Info,
        NoticeState::Event,
        env.detail_type.clone(),
        delivery_key(env, "event"),
    );
    n.account.clone_from(&env.account);
    n.region.clone_from(&env.region);
    n.place = Some(match &env.region {
        Some(r) => format!("{} in {r}", env.source),
        None => env.source.clone(),
    });
    n.resource = env
        .resources
        .as_ref()
        .filter(|r| !r.is_empty())
        .map(|r| r.join(", "));
    n.field("Source", Some(env.source.clone()));
    n.field("Account", env.account.clone());
    n.field("Region", env.region.clone());
    n.field("Resources", n.resource.clone());
    n.field("When", env.time.map(|t| t.to_rfc3339()));
    let lines = flatten(&env.detail);
    if !lines.is_empty() {
        n.reason = Some(lines.join("\n"));
    }
    n.at = env.time.map(|t| t.to_rfc3339());
    n
}
