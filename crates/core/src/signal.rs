//! Signals: what an event means, independent of its envelope.

use serde::Serialize;

use crate::model::RuleSpec;

/// Who made a change, as the audit trail reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Actor {
    /// `userIdentity.arn` (AWS) or `caller` (Azure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The service that made the call on the user's behalf, e.g.
    /// `cloudformation.amazonaws.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// A rule an API call reports it opened: its id when the response names it, and what
/// it opens when the request or response says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenedRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<RuleSpec>,
}

/// What happened, in Reflex's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalKind {
    /// Ingress was opened on a group (CloudTrail): the rules the call created or
    /// changed, as the call reported them.
    IngressOpened {
        group_id: String,
        opened: Vec<OpenedRule>,
    },
    /// A compliance rule found the group non-compliant: check all of it.
    GroupNonCompliant { group_id: String, rule_name: String },
    /// A periodic sweep of every group in the region.
    Sweep,
    /// An Azure NSG (or one of its rules) was written: check that rule, or every
    /// rule of the NSG when `rule_name` is `None`.
    NsgWritten {
        nsg_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        rule_name: Option<String>,
    },
}

/// A recognised event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    /// `aws.cloudtrail/AuthorizeSecurityGroupIngress`, `aws.config/restricted-ssh`, …
    pub trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(flatten)]
    pub kind: SignalKind,
}

/// The result of parsing a payload that is well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Signal(Box<Signal>),
    /// A valid event this function has nothing to do with; the reason says why.
    Ignored {
        trigger: String,
        reason: String,
    },
}
