//! Notices: anything worth telling people about (an alarm, a security event, a
//! finding), independent of the payload that carried it. `alert-to-slack` parses
//! every supported payload into a [`Notice`], routes it, and renders it.

use std::fmt;

use serde::Serialize;

/// How urgent a notice is: drives its colour, emoji and routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Critical,
    Error,
    Warning,
    Info,
}

impl Level {
    pub const ALL: [Self; 4] = [Self::Critical, Self::Error, Self::Warning, Self::Info];

    /// The lowercase name used in settings and the outcome.
    pub fn name(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == s)
    }

    /// Azure Monitor severities: `Sev0` critical … `Sev3`/`Sev4` info.
    pub fn from_azure(sev: Option<&str>) -> Self {
        match sev.map(str::trim) {
            Some("Sev0") => Self::Critical,
            Some("Sev1") => Self::Error,
            Some("Sev2") => Self::Warning,
            _ => Self::Info,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the thing is happening, has stopped, or is a one-off event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// An alarm in ALARM, an open issue, a non-compliant resource.
    Firing,
    /// Back to OK, closed, compliant.
    Resolved,
    /// A one-off event (an API call, a sign-in): nothing will resolve it.
    Event,
}

impl NoticeState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Event => "event",
        }
    }
}

/// What kind of source the notice came from; routing matches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    CloudwatchAlarm,
    Cloudtrail,
    Config,
    Health,
    Guardduty,
    AzureAlert,
    /// Any other SNS message or EventBridge event.
    Event,
}

impl NoticeKind {
    pub const ALL: [Self; 7] = [
        Self::CloudwatchAlarm,
        Self::Cloudtrail,
        Self::Config,
        Self::Health,
        Self::Guardduty,
        Self::AzureAlert,
        Self::Event,
    ];

    /// The name used in settings and the outcome.
    pub fn name(self) -> &'static str {
        match self {
            Self::CloudwatchAlarm => "cloudwatch-alarm",
            Self::Cloudtrail => "cloudtrail",
            Self::Config => "config",
            Self::Health => "health",
            Self::Guardduty => "guardduty",
            Self::AzureAlert => "azure-alert",
            Self::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A link shown as a button: console, portal, log search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

impl Link {
    pub fn new(label: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            url: url.into(),
        }
    }
}

/// Something worth telling people about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// `aws.cloudwatch/ALARM`, `aws.cloudtrail/StopLogging`, `azure.monitor/Metric`, …
    pub trigger: String,
    pub level: Level,
    pub state: NoticeState,
    /// What happened, in one line (the header says "what" then "where").
    pub title: String,
    /// Where, in one short phrase: a resource, a region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// AWS account id or Azure subscription id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Labelled facts: metric, threshold, value, who, …
    pub fields: Vec<(String, String)>,
    /// Why: the alarm's reason, a finding's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub links: Vec<Link>,
    /// When it happened, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What makes repeats and the resolution one conversation (an alarm ARN, an Azure
    /// alert id); `None` for one-off events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_key: Option<String>,
    /// What makes two deliveries the same notification (an SNS MessageId, an
    /// EventBridge id, an Azure alert id + monitor condition).
    pub delivery_key: String,
    /// Set for events that only matter in numbers (access denied): who is counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_key: Option<String>,
}

impl Notice {
    /// A notice with the required parts; the rest is filled in by the parser.
    pub fn new(
        kind: NoticeKind,
        trigger: impl Into<String>,
        level: Level,
        state: NoticeState,
        title: impl Into<String>,
        delivery_key: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            trigger: trigger.into(),
            level,
            state,
            title: title.into(),
            place: None,
            account: None,
            region: None,
            resource: None,
            fields: Vec::new(),
            reason: None,
            links: Vec::new(),
            at: None,
            thread_key: None,
            delivery_key: delivery_key.into(),
            burst_key: None,
        }
    }

    /// Adds a field when the value is present and not empty.
    pub fn field(&mut self, label: &str, value: Option<impl Into<String>>) {
        if let Some(v) = value.map(Into::into).filter(|v| !v.trim().is_empty()) {
            self.fields.push((label.to_string(), v));
        }
    }
}

/// Percent-encodes `text` for a URL path segment, query value or fragment (RFC 3986
/// unreserved characters pass through), like JavaScript's `encodeURIComponent`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(url_encode("web-cpu_high.1~"), "web-cpu_high.1~");
        assert_eq!(url_encode("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
    }

    #[test]
    fn levels_and_kinds_round_trip_through_their_names() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
        }
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(k.name()), Some(k));
        }
        assert_eq!(Level::from_azure(Some("Sev0")), Level::Critical);
        assert_eq!(Level::from_azure(Some("Sev4")), Level::Info);
        assert_eq!(Level::from_azure(None), Level::Info);
    }

    #[test]
    fn empty_field_values_are_left_out() {
        let mut n = Notice::new(
            NoticeKind::Event,
            "t",
            Level::Info,
            NoticeState::Event,
            "x",
            "d",
        );
        n.field("Who", Some("alice"));
        n.field("Where", Some("  "));
        n.field("What", None::<String>);
        assert_eq!(n.fields, vec![("Who".to_string(), "alice".to_string())]);
    }
}

/// The result of reading one well-formed payload for notices.
#[derive(Debug, Clone, PartialEq)]
pub enum Noticed {
    Notice(Box<Notice>),
    /// A valid payload that needs no message; the reason says why.
    Ignored {
        trigger: String,
        reason: String,
    },
}
