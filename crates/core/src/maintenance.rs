//! Planned maintenance and interruptions, as the clouds announce them, and the drain
//! policy that says what to do about each kind.
//!
//! Azure scheduled events (IMDS, Event Grid, a log alert on them) and AWS notices
//! (Health scheduled changes, spot interruptions, rebalance recommendations, ASG
//! terminate lifecycle actions) all become one [`Maintenance`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigError, Lookup};

/// What the cloud is about to do to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaintenanceKind {
    /// Azure: the VM pauses for a few seconds (memory-preserving update).
    Freeze,
    /// Azure: the VM reboots in place.
    Reboot,
    /// Azure: the VM moves to another host; local disks are lost.
    Redeploy,
    /// Azure: a Spot VM is evicted (30 s notice).
    Preempt,
    /// Azure: the VM is deleted (scale-set terminate notification).
    Terminate,
    /// AWS: the two-minute spot interruption warning.
    SpotInterruption,
    /// AWS: an EC2 rebalance recommendation (elevated interruption risk).
    Rebalance,
    /// AWS: instance retirement (the host is degraded).
    Retirement,
    /// AWS: any other EC2 scheduled change (system/instance reboot, stop).
    Maintenance,
    /// AWS: an Auto Scaling terminate lifecycle hook is holding the instance.
    LifecycleTerminate,
}

impl MaintenanceKind {
    pub const ALL: [Self; 10] = [
        Self::Freeze,
        Self::Reboot,
        Self::Redeploy,
        Self::Preempt,
        Self::Terminate,
        Self::SpotInterruption,
        Self::Rebalance,
        Self::Retirement,
        Self::Maintenance,
        Self::LifecycleTerminate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Freeze => "freeze",
            Self::Reboot => "reboot",
            Self::Redeploy => "redeploy",
            Self::Preempt => "preempt",
            Self::Terminate => "terminate",
            Self::SpotInterruption => "spot-interruption",
            Self::Rebalance => "rebalance",
            Self::Retirement => "retirement",
            Self::Maintenance => "maintenance",
            Self::LifecycleTerminate => "lifecycle-terminate",
        }
    }

    /// An Azure IMDS `EventType`.
    pub fn from_azure(event_type: &str) -> Option<Self> {
        match event_type {
            "Freeze" => Some(Self::Freeze),
            "Reboot" => Some(Self::Reboot),
            "Redeploy" => Some(Self::Redeploy),
            "Preempt" => Some(Self::Preempt),
            "Terminate" => Some(Self::Terminate),
            _ => None,
        }
    }
}

impl fmt::Display for MaintenanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the announced event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Announced; the node should be drained before it starts.
    Scheduled,
    /// Under way (approved, or its time came).
    Started,
    /// Over: recover the node.
    Completed,
    /// Called off: recover the node.
    Canceled,
}

impl Phase {
    /// An Azure `EventStatus`.
    pub fn from_azure(status: &str) -> Option<Self> {
        match status {
            "Scheduled" => Some(Self::Scheduled),
            "Started" => Some(Self::Started),
            "Completed" => Some(Self::Completed),
            "Canceled" | "Cancelled" => Some(Self::Canceled),
            _ => None,
        }
    }

    /// Whether the event is over, one way or the other.
    pub fn is_over(self) -> bool {
        matches!(self, Self::Completed | Self::Canceled)
    }
}

/// An Auto Scaling lifecycle hook holding an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub group: String,
    pub hook: String,
    pub token: Option<String>,
}

/// One announced maintenance or interruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// `aws` or `azure`.
    pub cloud: String,
    /// The cloud's id for the event (Azure EventId, Health event ARN, EventBridge id).
    pub id: String,
    pub kind: MaintenanceKind,
    pub phase: Phase,
    /// The nodes it affects: EC2 instance ids, or Azure VM names / resource ids.
    pub targets: Vec<String>,
    /// Seconds since the epoch when the cloud may start (Azure `NotBefore`, the spot
    /// `instance-action` time, a Health `startTime`); `None` when it gave none.
    pub not_before: Option<i64>,
    /// How long the impact lasts, when known (Azure `DurationInSeconds`).
    pub duration_secs: Option<i64>,
    pub description: Option<String>,
    /// Set for an Auto Scaling terminate lifecycle action.
    pub lifecycle: Option<Lifecycle>,
    /// `source/type` for the outcome's trigger, e.g. `aws.ec2/EC2 Spot Instance Interruption Warning`.
    pub trigger: String,
    /// The AWS region or the Azure resource-id scope the targets live in, if known.
    pub scope: Option<String>,
}

impl Maintenance {
    /// Checks every id the event supplied against its grammar before any of them
    /// reaches an API call, a URL or a console link: on AWS the targets are instance
    /// ids and the scope a region; on Azure the scope is an ARM resource id and the
    /// targets are VM names. `Err((field, why))` names the field.
    pub fn check_ids(&self) -> Result<(), (String, String)> {
        use crate::ids;
        match self.cloud.as_str() {
            "aws" => {
                if let Some((i, t)) = self
                    .targets
                    .iter()
                    .enumerate()
                    .find(|(_, t)| !ids::is_instance_id(t))
                {
                    return Err((
                        format!("targets[{i}]"),
                        format!("`{}` is not an EC2 instance id (i-…)", t.escape_debug()),
                    ));
                }
                if let Some(r) = self.scope.as_deref().filter(|r| !ids::is_region(r)) {
                    return Err((
                        "scope".into(),
                        format!("`{}` is not an AWS region", r.escape_debug()),
                    ));
                }
            }
            "azure" => {
                for (i, t) in self.targets.iter().enumerate() {
                    ids::check_name(t).map_err(|e| (format!("targets[{i}]"), e.to_string()))?;
                }
                if let Some(scope) = &self.scope {
                    ids::ResourceId::parse(scope)
                        .map_err(|e| ("scope".to_string(), e.to_string()))?;
                }
            }
            other => {
                return Err((
                    "cloud".into(),
                    format!("`{}`: expected aws or azure", other.escape_debug()),
                ));
            }
        }
        Ok(())
    }
}

/// What a payload announced: maintenance, or why it needs nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    Maintenance(Box<Maintenance>),
    Ignored { trigger: String, reason: String },
}

/// What to do about one kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "when", content = "secs")]
pub enum DrainRule {
    /// Drain as soon as the notice arrives.
    Now,
    /// Drain when this many seconds are left before `not_before` (now, if fewer are
    /// left already).
    Before(i64),
    /// Ignore events whose impact lasts less than this many seconds; drain the rest now.
    IgnoreUnder(i64),
    /// Do nothing.
    Ignore,
}

impl DrainRule {
    fn parse(text: &str) -> Option<Self> {
        let secs = |v: &str| v.trim().parse::<i64>().ok().filter(|s| *s >= 0);
        match text.trim().split_once(':') {
            None if text.trim() == "now" => Some(Self::Now),
            None if text.trim() == "ignore" => Some(Self::Ignore),
            Some(("before", v)) => secs(v).map(Self::Before),
            Some(("ignore-under", v)) => secs(v).map(Self::IgnoreUnder),
            _ => None,
        }
    }
}

impl fmt::Display for DrainRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now => f.write_str("now"),
            Self::Ignore => f.write_str("ignore"),
            Self::Before(s) => write!(f, "before:{s}"),
            Self::IgnoreUnder(s) => write!(f, "ignore-under:{s}"),
        }
    }
}

/// `REFLEX_DRAIN_POLICY`: one rule per kind, e.g.
/// `freeze=ignore-under:60, maintenance=before:900, rebalance=now`. Kinds not named
/// keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainPolicy {
    rules: Vec<(MaintenanceKind, DrainRule)>,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        use MaintenanceKind as K;
        let rules = K::ALL
            .into_iter()
            .map(|k| {
                let rule = match k {
                    // A freeze of a few seconds is cheaper to ride out than a drain.
                    K::Freeze => DrainRule::IgnoreUnder(60),
                    // AWS announces these days ahead: drain 15 minutes before.
                    K::Maintenance => DrainRule::Before(900),
                    // A recommendation, not a notice: opt in.
                    K::Rebalance => DrainRule::Ignore,
                    _ => DrainRule::Now,
                };
                (k, rule)
            })
            .collect();
        Self { rules }
    }
}

impl DrainPolicy {
    pub const SETTING: &'static str = "REFLEX_DRAIN_POLICY";

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut policy = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: String| ConfigError::new(Self::SETTING, text, why);
            let (kind, rule) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("`{entry}`: expected KIND=RULE, e.g. freeze=ignore")))?;
            let kind = MaintenanceKind::ALL
                .into_iter()
                .find(|k| k.name() == kind.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = MaintenanceKind::ALL.iter().map(|k| k.name()).collect();
                    bad(format!(
                        "`{}` is not a kind; use one of {}",
                        kind.trim(),
                        names.join(", ")
                    ))
                })?;
            let rule = DrainRule::parse(rule).ok_or_else(|| {
                bad(format!(
                    "`{}`: the rule is one of now, ignore, before:SECONDS, ignore-under:SECONDS",
                    rule.trim()
                ))
            })?;
            if let Some(slot) = policy.rules.iter_mut().find(|(k, _)| *k == kind) {
                slot.1 = rule;
            }
        }
        Ok(policy)
    }

    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        env.get(Self::SETTING)
            .map_or_else(|| Ok(Self::default()), |v| Self::parse(&v))
    }

    pub fn rule(&self, kind: MaintenanceKind) -> DrainRule {
        self.rules
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(DrainRule::Now, |(_, r)| *r)
    }
}

/// When to drain, by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Now. `left` is the notice remaining, when the cloud gave a start time.
    Now { left: Option<i64> },
    /// Not yet: at this time (epoch seconds).
    At(i64),
    /// Not at all, and why.
    Ignore(&'static str),
}

/// The policy applied to one event at `now` (epoch seconds).
pub fn timing(policy: &DrainPolicy, m: &Maintenance, now: i64) -> Timing {
    let left = m.not_before.map(|t| t - now);
    match policy.rule(m.kind) {
        DrainRule::Ignore => Timing::Ignore("the drain policy ignores this kind"),
        DrainRule::IgnoreUnder(secs) if m.duration_secs.is_some_and(|d| d < secs) => {
            Timing::Ignore("shorter than the policy's ignore-under threshold")
        }
        DrainRule::Now | DrainRule::IgnoreUnder(_) => Timing::Now { left },
        DrainRule::Before(budget) => match m.not_before {
            Some(start) if start - budget > now => Timing::At(start - budget),
            _ => Timing::Now { left },
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn event(kind: MaintenanceKind, not_before: Option<i64>, duration: Option<i64>) -> Maintenance {
        Maintenance {
            cloud: "azure".into(),
            id: "e1".into(),
            kind,
            phase: Phase::Scheduled,
            targets: vec!["vm-1".into()],
            not_before,
            duration_secs: duration,
            description: None,
            lifecycle: None,
            trigger: "test".into(),
            scope: None,
        }
    }

    #[test]
    fn the_default_policy_rides_out_short_freezes_and_drains_the_rest_in_time() {
        let p = DrainPolicy::default();
        let now = 1_000_000;
        assert_eq!(
            timing(
                &p,
                &event(MaintenanceKind::Freeze, Some(now + 900), Some(5)),
                now
            ),
            Timing::Ignore("shorter than the policy's ignore-under threshold")
        );
        assert_eq!(
            timing(
                &p,
                &event(MaintenanceKind::Freeze, Some(now + 900), Some(120)),
                now
            ),
            Timing::Now { left: Some(900) }
        );
        assert_eq!(
            timing(
                &p,
                &event(MaintenanceKind::Preempt, Some(now + 30), None),
                now
            ),
            Timing::Now { left: Some(30) }
        );
        // Days ahead: drain 15 minutes before; already inside the budget: now.
        let start = now + 3 * 86_400;
        assert_eq!(
            timing(
                &p,
                &event(MaintenanceKind::Maintenance, Some(start), None),
                now
            ),
            Timing::At(start - 900)
        );
        assert_eq!(
            timing(
                &p,
                &event(MaintenanceKind::Maintenance, Some(now + 600), None),
                now
            ),
            Timing::Now { left: Some(600) }
        );
        assert!(matches!(
            timing(&p, &event(MaintenanceKind::Rebalance, None, None), now),
            Timing::Ignore(_)
        ));
    }

    #[test]
    fn the_policy_setting_overrides_kinds_and_names_its_mistakes() {
        let p = DrainPolicy::parse("rebalance=now, freeze=ignore, reboot=before:300").unwrap();
        assert_eq!(p.rule(MaintenanceKind::Rebalance), DrainRule::Now);
        assert_eq!(p.rule(MaintenanceKind::Freeze), DrainRule::Ignore);
        assert_eq!(p.rule(MaintenanceKind::Reboot), DrainRule::Before(300));
        assert_eq!(p.rule(MaintenanceKind::Preempt), DrainRule::Now);
        for (bad, says) in [
            ("reboot", "expected KIND=RULE"),
            ("restart=now", "`restart` is not a kind"),
            ("reboot=later", "the rule is one of"),
            ("reboot=before:-5", "the rule is one of"),
            ("reboot=before:x", "the rule is one of"),
        ] {
            let e = DrainPolicy::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("REFLEX_DRAIN_POLICY") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn azure_names_map_to_kinds_and_phases() {
        assert_eq!(
            MaintenanceKind::from_azure("Redeploy"),
            Some(MaintenanceKind::Redeploy)
        );
        assert_eq!(MaintenanceKind::from_azure("Live"), None);
        assert_eq!(Phase::from_azure("Canceled"), Some(Phase::Canceled));
        assert!(Phase::Completed.is_over() && !Phase::Started.is_over());
    }
}
