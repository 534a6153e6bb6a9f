//! The drain plan: a pure function of the event, the policy, what was re-read from
//! the cloud, and the time.

use std::collections::BTreeMap;

use reflex_aws::fleet::{Membership, Registration};
use reflex_core::Tag;
use reflex_core::maintenance::{DrainPolicy, Maintenance, MaintenanceKind, Timing, timing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::parse::Intent;

/// An Azure backend pool membership (mirrors `reflex_azure::drain::PoolMember`, so
/// the plan does not depend on the Azure build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub pool: String,
    pub addresses: Vec<String>,
    pub down: bool,
}

/// What was done to a node, kept until it is recovered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DrainRecord {
    pub event: String,
    pub kind: String,
    pub node: String,
    /// Target groups it was deregistered from, to register it again.
    pub registrations: Vec<Registration>,
    /// The Auto Scaling group it was put in Standby in.
    pub standby: Option<String>,
    pub pools: Vec<Pool>,
    pub kube_node: Option<String>,
    /// The drain slot held (`lease/{group}/{n}`), owned by the node.
    pub lease: Option<String>,
    /// The account- or subscription-wide slot held (`lease-global/{n}`), with
    /// `REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL`.
    #[serde(default)]
    pub global_lease: Option<String>,
    /// `draining` until every step is done, then `drained` (`failed` when a step
    /// failed).
    pub status: String,
    /// Whether `event` was acknowledged.
    pub acknowledged: bool,
    /// Other events that found the node already out under this drain. The node comes
    /// back only when the last of them (and `event`) is over.
    #[serde(default)]
    pub joined: Vec<String>,
    /// Which of `joined` were acknowledged.
    #[serde(default)]
    pub acked: Vec<String>,
    /// When an event last drained or joined (epoch seconds). A hold older than
    /// [`HOLD_STALE_SECS`] no longer keeps the node out: its end was lost.
    #[serde(default)]
    pub touched: i64,
}

/// How long another event's hold on a drain keeps a node out of service after the
/// last drain or join: a day, far beyond any maintenance window a notice announces.
pub const HOLD_STALE_SECS: i64 = 86_400;

impl DrainRecord {
    /// Whether event `id` holds this drain (it took the node out, or joined).
    pub fn holds(&self, id: &str) -> bool {
        self.event == id || self.joined.iter().any(|e| e == id)
    }

    /// Whether event `id`'s maintenance was acknowledged.
    pub fn acknowledged(&self, id: &str) -> bool {
        (self.event == id && self.acknowledged) || self.acked.iter().any(|e| e == id)
    }

    /// Adds event `id` to the drain (a second notice for a node already out).
    pub fn join(&mut self, id: &str) {
        if !self.holds(id) {
            self.joined.push(id.to_string());
        }
    }

    /// Event `id` is over; `false` when no other event holds the drain any more.
    pub fn leave(&mut self, id: &str) -> bool {
        if self.event == id {
            if self.joined.is_empty() {
                return false;
            }
            self.event = self.joined.remove(0);
            self.acknowledged = self.acked.contains(&self.event);
        }
        self.joined.retain(|e| e != id);
        self.acked.retain(|e| e != id);
        true
    }
}

/// The cloud's current view of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Observed {
    /// The node as the event names it.
    pub node: String,
    pub exists: bool,
    pub tags: BTreeMap<String, String>,
    pub registrations: Vec<Registration>,
    pub asg: Option<Membership>,
    pub pools: Vec<Pool>,
    /// The Kubernetes node running it, if a cluster is configured.
    pub kube_node: Option<String>,
    pub kube_marked: bool,
    /// The Azure VM (or scale set) resource id, for the acknowledge.
    pub owner: Option<String>,
    /// What an earlier delivery did.
    pub record: Option<DrainRecord>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take one of the group's drain slots (the concurrency cap).
    Lease {
        group: String,
    },
    Deregister {
        target_group: String,
        port: Option<i32>,
    },
    EnterStandby {
        group: String,
    },
    AdminDown {
        pool: String,
        addresses: Vec<String>,
    },
    Cordon {
        node: String,
    },
    Evict {
        node: String,
    },
    /// Wait until the target groups have finished draining the node.
    WaitDrained {
        targets: Vec<(String, Option<i32>)>,
    },
    /// `CompleteLifecycleAction CONTINUE`: the group may terminate the instance.
    CompleteLifecycle {
        group: String,
        hook: String,
        token: Option<String>,
    },
    /// Approve the Azure scheduled event, so the maintenance can start.
    Acknowledge {
        owner: String,
        event: String,
    },
    Register {
        target_group: String,
        port: Option<i32>,
    },
    ExitStandby {
        group: String,
    },
    AdminUp {
        pool: String,
        addresses: Vec<String>,
    },
    Uncordon {
        node: String,
    },
    ReleaseLease {
        key: String,
    },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lease { .. } => "take_drain_slot",
            Self::Deregister { .. } => "deregister_target",
            Self::EnterStandby { .. } => "enter_standby",
            Self::AdminDown { .. } => "lb_admin_down",
            Self::Cordon { .. } => "cordon_node",
            Self::Evict { .. } => "evict_pods",
            Self::WaitDrained { .. } => "wait_draining",
            Self::CompleteLifecycle { .. } => "complete_lifecycle_action",
            Self::Acknowledge { .. } => "acknowledge_event",
            Self::Register { .. } => "register_target",
            Self::ExitStandby { .. } => "exit_standby",
            Self::AdminUp { .. } => "lb_admin_up",
            Self::Uncordon { .. } => "uncordon_node",
            Self::ReleaseLease { .. } => "release_drain_slot",
        }
    }

    /// The resource acted on.
    pub fn target(&self) -> &str {
        match self {
            Self::Lease { group } | Self::EnterStandby { group } | Self::ExitStandby { group } => {
                group
            }
            Self::Deregister { target_group, .. } | Self::Register { target_group, .. } => {
                target_group
            }
            Self::AdminDown { pool, .. } | Self::AdminUp { pool, .. } => pool,
            Self::Cordon { node } | Self::Evict { node } | Self::Uncordon { node } => node,
            Self::WaitDrained { targets } => targets.first().map_or("", |t| t.0.as_str()),
            Self::CompleteLifecycle { group, .. } => group,
            Self::Acknowledge { owner, .. } => owner,
            Self::ReleaseLease { key } => key,
        }
    }

    pub fn detail(&self) -> Value {
        match self {
            Self::Deregister { port, .. } | Self::Register { port, .. } => json!({"port": port}),
            Self::AdminDown { addresses, .. } | Self::AdminUp { addresses, .. } => {
                json!({"addresses": addresses})
            }
            Self::WaitDrained { targets } => {
                json!({"target_groups": targets.iter().map(|t| &t.0).collect::<Vec<_>>()})
            }
            Self::CompleteLifecycle { hook, .. } => json!({"hook": hook, "result": "CONTINUE"}),
            Self::Acknowledge { event, .. } => json!({"event_id": event}),
            _ => json!({}),
        }
    }
}

/// A step with why it is wanted, or why it will not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub step: Step,
    pub reason: String,
    pub skip: Option<String>,
}

/// What to do about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing, and why.
    Ignore(String),
    /// Not yet: drain at this time (epoch seconds).
    Later { at: i64 },
    /// Take the node out of service, in this order (the acknowledge last).
    Drain(Vec<Planned>),
    /// Bring it back.
    Recover(Vec<Planned>),
    /// This event is over, but another still holds the node's drain: it stays out
    /// of service, and only this event is taken off the record.
    Hold(String),
}

/// The parts of the configuration `decide` reads.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub policy: &'a DrainPolicy,
    pub opt_in: &'a Tag,
    pub exempt: &'a Tag,
    /// `REFLEX_DRAIN_ACK_WHEN_NOTHING`: approve an Azure maintenance even when the
    /// node is in no target group, Auto Scaling group, backend pool or cluster. Off:
    /// an early start for nothing could overtake the VM's own agent hook.
    pub ack_when_nothing: bool,
}

fn step(step: Step, reason: impl Into<String>) -> Planned {
    Planned {
        step,
        reason: reason.into(),
        skip: None,
    }
}

/// The drain slot group: the Auto Scaling group, else the first target group, else
/// the first backend pool, else the cloud.
pub fn group_of(m: &Maintenance, o: &Observed) -> String {
    o.asg
        .as_ref()
        .map(|a| a.group.clone())
        .or_else(|| o.registrations.first().map(|r| r.target_group.clone()))
        .or_else(|| o.pools.first().map(|p| p.pool.clone()))
        .unwrap_or_else(|| format!("{}-default", m.cloud))
}

/// The plan for one node.
pub fn decide(
    m: &Maintenance,
    intent: Intent,
    rules: Rules<'_>,
    o: &Observed,
    now: i64,
) -> Decision {
    match intent {
        Intent::Drain => drain(m, rules, o, now),
        Intent::Recover => recover(m, o, now),
    }
}

fn drain(m: &Maintenance, rules: Rules<'_>, o: &Observed, now: i64) -> Decision {
    if !o.exists {
        return Decision::Ignore(format!("{} does not exist (any more)", o.node));
    }
    if rules.exempt.is_on(&o.tags) {
        return Decision::Ignore(format!("{} is exempt ({})", o.node, rules.exempt));
    }
    if !rules.opt_in.is_on(&o.tags) {
        return Decision::Ignore(format!(
            "{} has not opted in to draining (tag {} missing)",
            o.node, rules.opt_in
        ));
    }
    let left = match timing(rules.policy, m, now) {
        Timing::Ignore(why) => return Decision::Ignore(format!("{}: {why}", m.kind)),
        Timing::At(at) => return Decision::Later { at },
        Timing::Now { left } => left,
    };
    if o.record
        .as_ref()
        .is_some_and(|r| r.status == "drained" && r.holds(&m.id))
    {
        return Decision::Ignore(format!("{} is already drained for event {}", o.node, m.id));
    }
    let why = match left {
        Some(s) if s > 0 => format!("{} in {s} s", m.kind),
        _ => format!("{} now", m.kind),
    };
    let mut steps = Vec::new();
    let mut waits = Vec::new();
    for r in &o.registrations {
        waits.push((r.target_group.clone(), r.port));
        if r.state != "draining" {
            steps.push(step(
                Step::Deregister {
                    target_group: r.target_group.clone(),
                    port: r.port,
                },
                format!("take {} out of the target group before {why}", o.node),
            ));
        }
    }
    if let Some(a) = &o.asg
        && m.kind != MaintenanceKind::LifecycleTerminate
        && a.lifecycle_state == "InService"
    {
        steps.push(step(
            Step::EnterStandby {
                group: a.group.clone(),
            },
            "keep the instance out of the group's traffic; the group launches a replacement",
        ));
    }
    for p in o.pools.iter().filter(|p| !p.down) {
        steps.push(step(
            Step::AdminDown {
                pool: p.pool.clone(),
                addresses: p.addresses.clone(),
            },
            format!("stop new flows to {} before {why}", o.node),
        ));
    }
    if let Some(node) = &o.kube_node {
        if !o.kube_marked {
            steps.push(step(
                Step::Cordon { node: node.clone() },
                "no new pods on the node",
            ));
        }
        steps.push(step(
            Step::Evict { node: node.clone() },
            "move the pods away, within their disruption budgets",
        ));
    }
    if !waits.is_empty() {
        steps.push(step(
            Step::WaitDrained { targets: waits },
            "let open connections finish, within the notice left",
        ));
    }
    let mut finish = Vec::new();
    if let Some(l) = &m.lifecycle {
        finish.push(step(
            Step::CompleteLifecycle {
                group: l.group.clone(),
                hook: l.hook.clone(),
                token: l.token.clone(),
            },
            "drained: let the group terminate the instance",
        ));
    }
    let acked = o.record.as_ref().is_some_and(|r| r.acknowledged(&m.id));
    // Something to take out of service (now, or already out): only then does an
    // approval stand for a drain.
    let drainable = !o.registrations.is_empty()
        || o.asg.is_some()
        || !o.pools.is_empty()
        || o.kube_node.is_some();
    if let Some(owner) = o
        .owner
        .as_ref()
        .filter(|_| ackable(m) && !acked && (drainable || rules.ack_when_nothing))
    {
        finish.push(step(
            Step::Acknowledge {
                owner: owner.clone(),
                event: m.id.clone(),
            },
            "drained: approve the maintenance so it starts now, not at NotBefore",
        ));
    }
    // The agent approves in IMDS itself, on "drained": with the opt-in, a VM with
    // nothing to drain is reported drained (an empty plan) so that its agent
    // approves, as the acknowledge would for an Event Grid notice.
    if steps.is_empty()
        && finish.is_empty()
        && rules.ack_when_nothing
        && m.cloud == "azure"
        && m.trigger.starts_with("azure.imds/")
        && m.phase == reflex_core::maintenance::Phase::Scheduled
    {
        return Decision::Drain(Vec::new());
    }
    if steps.is_empty() && finish.is_empty() {
        let not_acked = if ackable(m) && !acked && o.owner.is_some() {
            " (not acknowledged: set REFLEX_DRAIN_ACK_WHEN_NOTHING=true to approve such events)"
        } else {
            ""
        };
        return Decision::Ignore(format!(
            "nothing to drain: {} is in no target group, Auto Scaling group, backend pool or cluster{not_acked}",
            o.node
        ));
    }
    let mut plan = Vec::with_capacity(steps.len() + finish.len() + 1);
    if !steps.is_empty() {
        plan.push(step(
            Step::Lease {
                group: group_of(m, o),
            },
            "at most the configured number of drains at once per group",
        ));
    }
    plan.extend(steps);
    plan.extend(finish);
    Decision::Drain(plan)
}

/// Only an Event Grid scheduled event carries an EventId ARM can acknowledge (the
/// agent approves through IMDS itself), and only while it is still scheduled.
fn ackable(m: &Maintenance) -> bool {
    m.cloud == "azure"
        && m.trigger.starts_with("azure.eventgrid/")
        && m.phase == reflex_core::maintenance::Phase::Scheduled
}

fn recover(m: &Maintenance, o: &Observed, now: i64) -> Decision {
    if m.kind == MaintenanceKind::LifecycleTerminate {
        return Decision::Ignore("the instance is terminated: nothing to bring back".into());
    }
    let Some(r) = &o.record else {
        return Decision::Ignore(format!(
            "nothing to recover: Reflex has no drain on record for {}",
            o.node
        ));
    };
    // Recovery belongs to the drain that took the node out: while another event still
    // holds it, the node stays out.
    let others: Vec<&str> = std::iter::once(r.event.as_str())
        .chain(r.joined.iter().map(String::as_str))
        .filter(|e| *e != m.id)
        .collect();
    if r.holds(&m.id) && !others.is_empty() && now - r.touched < HOLD_STALE_SECS {
        return Decision::Hold(format!(
            "{} stays out of service: event {} still holds its drain",
            o.node,
            others.join(", ")
        ));
    }
    let mut plan = Vec::new();
    for reg in &r.registrations {
        let back = o.registrations.iter().any(|c| {
            c.target_group == reg.target_group && c.port == reg.port && c.state != "draining"
        });
        let s = Step::Register {
            target_group: reg.target_group.clone(),
            port: reg.port,
        };
        if back {
            plan.push(Planned {
                step: s,
                reason: "serve traffic again".into(),
                skip: Some("already registered".into()),
            });
        } else if o.exists {
            plan.push(step(s, "serve traffic again"));
        }
    }
    if let Some(group) = &r.standby
        && o.asg
            .as_ref()
            .is_some_and(|a| a.lifecycle_state == "Standby")
    {
        plan.push(step(
            Step::ExitStandby {
                group: group.clone(),
            },
            "back in service",
        ));
    }
    for p in &r.pools {
        plan.push(step(
            Step::AdminUp {
                pool: p.pool.clone(),
                addresses: p.addresses.clone(),
            },
            "hand the addresses back to the health probes",
        ));
    }
    if let Some(node) = &r.kube_node
        && o.kube_marked
    {
        plan.push(step(
            Step::Uncordon { node: node.clone() },
            "schedulable again (Reflex's cordon only)",
        ));
    }
    for key in r.lease.iter().chain(&r.global_lease) {
        plan.push(step(
            Step::ReleaseLease { key: key.clone() },
            "free the drain slot",
        ));
    }
    Decision::Recover(plan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use reflex_core::maintenance::{Lifecycle, Phase};

    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn spot() -> Maintenance {
        Maintenance {
            cloud: "aws".into(),
            id: "e-1".into(),
            kind: MaintenanceKind::SpotInterruption,
            phase: Phase::Scheduled,
            targets: vec!["i-1".into()],
            not_before: Some(NOW + 120),
            duration_secs: None,
            description: None,
            lifecycle: None,
            trigger: "aws.ec2/EC2 Spot Instance Interruption Warning".into(),
            scope: None,
        }
    }

    fn opted_in() -> Observed {
        Observed {
            node: "i-1".into(),
            exists: true,
            tags: [("reflex:drain".to_string(), "true".to_string())].into(),
            registrations: vec![Registration {
                target_group: "arn:tg/web".into(),
                port: Some(80),
                state: "healthy".into(),
            }],
            asg: Some(Membership {
                group: "asg-web".into(),
                lifecycle_state: "InService".into(),
            }),
            ..Observed::default()
        }
    }

    /// The default policy and tags.
    struct Defaults(DrainPolicy, Tag, Tag);

    impl Defaults {
        fn new() -> Self {
            let t = |k: &str| Tag {
                key: k.into(),
                value: "true".into(),
            };
            Self(
                DrainPolicy::default(),
                t("reflex:drain"),
                t("reflex:exempt"),
            )
        }

        fn rules(&self) -> Rules<'_> {
            Rules {
                policy: &self.0,
                opt_in: &self.1,
                exempt: &self.2,
                ack_when_nothing: false,
            }
        }
    }

    fn names(d: &Decision) -> Vec<&'static str> {
        match d {
            Decision::Drain(p) | Decision::Recover(p) => p.iter().map(|s| s.step.name()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_spot_warning_drains_in_order_with_the_slot_first() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let d = decide(&spot(), Intent::Drain, rules, &opted_in(), NOW);
        assert_eq!(
            names(&d),
            [
                "take_drain_slot",
                "deregister_target",
                "enter_standby",
                "wait_draining"
            ]
        );
    }

    #[test]
    fn a_lifecycle_hook_is_completed_last_and_never_standby() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let mut m = spot();
        m.kind = MaintenanceKind::LifecycleTerminate;
        m.lifecycle = Some(Lifecycle {
            group: "asg-web".into(),
            hook: "drain".into(),
            token: Some("t".into()),
        });
        let d = decide(&m, Intent::Drain, rules, &opted_in(), NOW);
        assert_eq!(
            names(&d),
            [
                "take_drain_slot",
                "deregister_target",
                "wait_draining",
                "complete_lifecycle_action"
            ]
        );
    }

    #[test]
    fn an_azure_event_grid_notice_is_acknowledged_after_the_drain() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let mut m = spot();
        m.cloud = "azure".into();
        m.kind = MaintenanceKind::Redeploy;
        m.trigger = "azure.eventgrid/x".into();
        let obs = Observed {
            registrations: vec![],
            asg: None,
            pools: vec![Pool {
                pool: "/subscriptions/s/pool".into(),
                addresses: vec!["a1".into()],
                down: false,
            }],
            kube_node: Some("aks-1".into()),
            owner: Some("/subscriptions/s/vm".into()),
            ..opted_in()
        };
        let d = decide(&m, Intent::Drain, rules, &obs, NOW);
        assert_eq!(
            names(&d),
            [
                "take_drain_slot",
                "lb_admin_down",
                "cordon_node",
                "evict_pods",
                "acknowledge_event"
            ]
        );
        // Already started: nothing left to approve.
        m.phase = Phase::Started;
        assert!(
            !names(&decide(&m, Intent::Drain, rules, &obs, NOW)).contains(&"acknowledge_event")
        );
        m.phase = Phase::Scheduled;
        // Through the agent (which approves via IMDS itself): no acknowledge.
        m.trigger = "azure.imds/redeploy".into();
        assert!(
            !names(&decide(&m, Intent::Drain, rules, &obs, NOW)).contains(&"acknowledge_event")
        );
    }

    #[test]
    fn a_vm_in_no_pool_or_cluster_is_not_acknowledged_unless_configured() {
        let fix = Defaults::new();
        let mut m = spot();
        m.cloud = "azure".into();
        m.kind = MaintenanceKind::Redeploy;
        m.trigger = "azure.eventgrid/x".into();
        let obs = Observed {
            registrations: vec![],
            asg: None,
            owner: Some("/subscriptions/s/vm".into()),
            ..opted_in()
        };
        let d = decide(&m, Intent::Drain, fix.rules(), &obs, NOW);
        assert!(
            matches!(d, Decision::Ignore(ref r) if r.contains("not acknowledged") && r.contains("REFLEX_DRAIN_ACK_WHEN_NOTHING")),
            "{d:?}"
        );
        let opted = Rules {
            ack_when_nothing: true,
            ..fix.rules()
        };
        assert_eq!(
            names(&decide(&m, Intent::Drain, opted, &obs, NOW)),
            ["acknowledge_event"]
        );
        // The agent's call: ignored by default; with the opt-in an empty plan (the
        // answer says drained, so the agent approves).
        let mut agent = m.clone();
        agent.trigger = "azure.imds/Redeploy".into();
        assert!(matches!(
            decide(&agent, Intent::Drain, fix.rules(), &obs, NOW),
            Decision::Ignore(_)
        ));
        assert_eq!(
            decide(&agent, Intent::Drain, opted, &obs, NOW),
            Decision::Drain(Vec::new())
        );
        // Already out of its pool (Down from an earlier delivery): the approval stands
        // for a drain, so it is sent.
        let out = Observed {
            pools: vec![Pool {
                pool: "/subscriptions/s/pool".into(),
                addresses: vec!["a1".into()],
                down: true,
            }],
            ..obs
        };
        assert_eq!(
            names(&decide(&m, Intent::Drain, fix.rules(), &out, NOW)),
            ["acknowledge_event"]
        );
    }

    #[test]
    fn untagged_exempt_missing_and_policy_ignored_nodes_are_left_alone() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let mut obs = opted_in();
        obs.tags.clear();
        assert!(
            matches!(decide(&spot(), Intent::Drain, rules, &obs, NOW), Decision::Ignore(ref r) if r.contains("reflex:drain=true missing"))
        );
        obs = opted_in();
        obs.tags.insert("reflex:exempt".into(), "true".into());
        assert!(
            matches!(decide(&spot(), Intent::Drain, rules, &obs, NOW), Decision::Ignore(ref r) if r.contains("exempt"))
        );
        obs = opted_in();
        obs.exists = false;
        assert!(matches!(
            decide(&spot(), Intent::Drain, rules, &obs, NOW),
            Decision::Ignore(_)
        ));
        let mut m = spot();
        m.kind = MaintenanceKind::Rebalance;
        assert!(
            matches!(decide(&m, Intent::Drain, rules, &opted_in(), NOW), Decision::Ignore(ref r) if r.contains("ignores"))
        );
        m.kind = MaintenanceKind::Maintenance;
        m.not_before = Some(NOW + 86_400);
        assert_eq!(
            decide(&m, Intent::Drain, rules, &opted_in(), NOW),
            Decision::Later {
                at: NOW + 86_400 - 900
            }
        );
    }

    #[test]
    fn a_drained_node_is_not_drained_twice_and_recovery_undoes_only_what_was_done() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let record = DrainRecord {
            event: "e-1".into(),
            node: "i-1".into(),
            registrations: opted_in().registrations,
            standby: Some("asg-web".into()),
            lease: Some("lease/asg-web/0".into()),
            status: "drained".into(),
            ..DrainRecord::default()
        };
        let mut obs = opted_in();
        obs.registrations.clear();
        obs.asg.as_mut().unwrap().lifecycle_state = "Standby".into();
        obs.record = Some(record);
        assert!(
            matches!(decide(&spot(), Intent::Drain, rules, &obs, NOW), Decision::Ignore(ref r) if r.contains("already drained"))
        );
        assert_eq!(
            names(&decide(&spot(), Intent::Recover, rules, &obs, NOW)),
            ["register_target", "exit_standby", "release_drain_slot"]
        );
        obs.record = None;
        assert!(
            matches!(decide(&spot(), Intent::Recover, rules, &obs, NOW), Decision::Ignore(ref r) if r.contains("nothing to recover"))
        );
    }

    #[test]
    fn a_node_held_by_two_events_comes_back_only_when_both_are_over() {
        let fix = Defaults::new();
        let rules = fix.rules();
        let mut record = DrainRecord {
            event: "e-1".into(),
            node: "i-1".into(),
            registrations: opted_in().registrations,
            status: "drained".into(),
            acknowledged: true,
            touched: NOW - 600,
            ..DrainRecord::default()
        };
        record.join("e-2");
        record.join("e-2");
        assert_eq!(record.joined, ["e-2"], "joined once");
        let mut obs = opted_in();
        obs.registrations.clear();
        obs.record = Some(record.clone());
        let mut first = spot();
        first.phase = Phase::Completed;
        assert!(
            matches!(decide(&first, Intent::Recover, rules, &obs, NOW), Decision::Hold(ref r) if r.contains("event e-2 still holds")),
        );
        assert!(
            matches!(
                decide(&first, Intent::Recover, rules, &obs, NOW + HOLD_STALE_SECS),
                Decision::Recover(_)
            ),
            "a hold whose end was lost does not keep the node out for ever"
        );
        assert!(record.leave("e-1"), "e-2 still holds it");
        assert_eq!(
            (
                record.event.as_str(),
                record.joined.len(),
                record.acknowledged
            ),
            ("e-2", 0, false)
        );
        obs.record = Some(record.clone());
        let mut second = spot();
        second.id = "e-2".into();
        assert_eq!(
            names(&decide(&second, Intent::Recover, rules, &obs, NOW)),
            ["register_target"]
        );
        assert!(!record.leave("e-2"), "nobody holds it any more");
    }
}
