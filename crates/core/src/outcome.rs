//! The outcome: what was seen, what the policy said, what was done.
//!
//! It is printed by the CLI, returned by Lambda, answered by the Azure host, and
//! logged as one JSON line (the audit trail). Field names are a public contract.

use serde::Serialize;

use crate::plan::Step;
use crate::signal::Signal;

/// The status of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Done,
    /// Dry-run: it would have been done.
    Planned,
    /// Not done, on purpose; `reason` says why.
    Skipped,
    /// Tried and failed; `error` says how.
    Failed,
}

/// One action of the outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
    pub status: ActionStatus,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For failures: whether a later retry may succeed (throttling, 5xx).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

impl ActionRecord {
    /// A record for `step` with the given status, before any error is known.
    pub fn from_step(step: &Step, status: ActionStatus) -> Self {
        let reason = match (&step.skip, status) {
            (Some(why), ActionStatus::Skipped) => why.clone(),
            _ => step.reason.clone(),
        };
        Self {
            action: step.action.name().to_string(),
            target: step.action.target().to_string(),
            detail: step.action.detail(),
            status,
            reason,
            error: None,
            retryable: false,
        }
    }
}

/// The status of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Sent,
    Failed,
}

/// One notification of the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    /// `slack`, `sns`.
    pub channel: String,
    pub status: NotificationStatus,
    /// HTTP attempts made (retries included).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NotificationRecord {
    /// `sent` when there is no error, `failed` with it otherwise.
    pub fn new(channel: &str, attempts: u32, error: Option<String>) -> Self {
        Self {
            channel: channel.to_string(),
            status: if error.is_none() {
                NotificationStatus::Sent
            } else {
                NotificationStatus::Failed
            },
            attempts,
            error,
        }
    }
}

/// Everything one invocation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub function: String,
    pub trigger: String,
    pub dry_run: bool,
    /// `None`, or why the event needs nothing.
    pub ignored: Option<String>,
    /// The event as understood (who, where, what); absent when ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// The policy in force, for the audit trail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
    /// What was re-read from the cloud before deciding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<serde_json::Value>,
    /// What was understood from the payload, for functions that report rather than
    /// remediate (`alert-to-slack`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<crate::notice::Notice>,
    pub actions: Vec<ActionRecord>,
    pub notifications: Vec<NotificationRecord>,
    /// Event Grid's subscription handshake: a webhook endpoint proves itself by
    /// answering `{"validationResponse": code}`.
    #[serde(rename = "validationResponse", skip_serializing_if = "Option::is_none")]
    pub validation_response: Option<String>,
    /// For a drain: whether the node is out of service now. A caller that approves
    /// maintenance (`reflex-agent`) approves only on [`DrainState::Drained`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainState>,
}

/// Where a drain stands at the end of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainState {
    /// Every drain step is done: the maintenance may start.
    Drained,
    /// Dry-run: the drain was planned, nothing changed. Not a drain.
    Planned,
    /// Not finished (no free drain slot, a wait longer than the invocation, a time
    /// set by the drain policy): it carries on at the next call or resume.
    Deferred,
    /// A drain step failed: the maintenance must not be approved.
    Failed,
}

impl DrainState {
    /// The state of several nodes together: the worst one (failed, then deferred,
    /// then planned, then drained).
    pub fn worst(a: Option<Self>, b: Self) -> Self {
        a.map_or(b, |a| a.max(b))
    }
}

impl Outcome {
    /// An outcome for an event that needs nothing.
    pub fn ignored(function: &str, trigger: &str, dry_run: bool, reason: &str) -> Self {
        Self {
            function: function.to_string(),
            trigger: trigger.to_string(),
            dry_run,
            ignored: Some(reason.to_string()),
            signal: None,
            policy: None,
            observed: None,
            notices: Vec::new(),
            actions: Vec::new(),
            notifications: Vec::new(),
            validation_response: None,
            drain: None,
        }
    }

    /// Whether any action failed.
    pub fn has_failures(&self) -> bool {
        self.actions
            .iter()
            .any(|a| a.status == ActionStatus::Failed)
    }

    /// Whether a redelivery could finish the job: some action failed retryably.
    pub fn needs_retry(&self) -> bool {
        self.actions
            .iter()
            .any(|a| a.status == ActionStatus::Failed && a.retryable)
    }

    /// Whether anything is worth telling people: something done, planned or failed.
    pub fn is_noteworthy(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a.status,
                ActionStatus::Done | ActionStatus::Planned | ActionStatus::Failed
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_outcome_serialises_with_the_contract_fields() {
        let o = Outcome::ignored("close-open-ports", "aws.ec2/Foo", false, "not ours");
        let v = serde_json::to_value(&o).unwrap_or_default();
        assert_eq!(v["function"], "close-open-ports");
        assert_eq!(v["trigger"], "aws.ec2/Foo");
        assert_eq!(v["dry_run"], false);
        assert_eq!(v["ignored"], "not ours");
        assert_eq!(v["actions"], serde_json::json!([]));
        assert_eq!(v["notifications"], serde_json::json!([]));
        assert!(!o.is_noteworthy());
    }
}
