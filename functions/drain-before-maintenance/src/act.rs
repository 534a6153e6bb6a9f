//! Runs a drain or recovery plan, one step at a time, recording each.
//!
//! Order is the point: the acknowledge (or lifecycle CONTINUE) runs only after every
//! drain step succeeded. A step that cannot finish in this invocation (no free drain
//! slot, a wait longer than the time left) stops the plan; the node is then saved as
//! pending and the scheduled resume carries on.

use std::time::{Duration, Instant};

use reflex_core::maintenance::Maintenance;
use reflex_core::{ActionRecord, ActionStatus, CloudError};
use serde_json::{Value, json};

pub use reflex_core::store::epoch_now as now;

use crate::Deps;
use crate::decide::{DrainRecord, Planned, Pool, Step};

/// How often a lifecycle hook gets a heartbeat while the node drains.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// Kept back from the notice: the last seconds are the cloud's.
const NOTICE_MARGIN_SECS: i64 = 5;

/// Why the rest of a plan did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A drain step failed: no acknowledge, no CONTINUE.
    Failed,
    /// It must carry on later (resume): no slot free, or the wait outlasts the
    /// invocation.
    Deferred(String),
}

/// What running a plan did.
#[derive(Debug)]
pub struct Run {
    pub records: Vec<ActionRecord>,
    pub stop: Option<Stop>,
}

fn record(p: &Planned, status: ActionStatus) -> ActionRecord {
    ActionRecord {
        action: p.step.name().to_string(),
        target: p.step.target().to_string(),
        detail: p.step.detail(),
        status,
        reason: match (&p.skip, status) {
            (Some(why), ActionStatus::Skipped) => why.clone(),
            _ => p.reason.clone(),
        },
        error: None,
        retryable: false,
    }
}

fn is_finish(step: &Step) -> bool {
    matches!(
        step,
        Step::Acknowledge { .. } | Step::CompleteLifecycle { .. }
    )
}

/// When a wait must end: the invocation's deadline, or the notice left (whichever
/// comes first). `true` when the notice is the limit.
fn limit(m: &Maintenance, deadline: Instant) -> (Instant, bool) {
    let Some(nb) = m.not_before else {
        return (deadline, false);
    };
    let left = u64::try_from(nb - NOTICE_MARGIN_SECS - now()).unwrap_or(0);
    let by_notice = Instant::now() + Duration::from_secs(left);
    if by_notice < deadline {
        (by_notice, true)
    } else {
        (deadline, false)
    }
}

/// Runs `plan` for node `node` of `m`, updating `rec` with what was done.
pub async fn run(
    deps: &Deps,
    m: &Maintenance,
    plan: &[Planned],
    rec: &mut DrainRecord,
    deadline: Instant,
) -> Run {
    let mut out = Run {
        records: Vec::with_capacity(plan.len()),
        stop: None,
    };
    for p in plan {
        if let Some(stop) = &out.stop {
            let why = match stop {
                Stop::Failed if is_finish(&p.step) => {
                    "a drain step failed: the maintenance starts at its own time instead"
                        .to_string()
                }
                Stop::Failed => {
                    // Later drain steps still help; only the finish is held back.
                    String::new()
                }
                Stop::Deferred(why) => why.clone(),
            };
            if !why.is_empty() {
                let mut r = record(p, ActionStatus::Skipped);
                r.reason = why;
                out.records.push(r);
                continue;
            }
        }
        if p.skip.is_some() {
            out.records.push(record(p, ActionStatus::Skipped));
            continue;
        }
        if deps.config.dry_run {
            out.records.push(record(p, ActionStatus::Planned));
            continue;
        }
        let mut r = record(p, ActionStatus::Done);
        match step(deps, m, &p.step, rec, deadline).await {
            Ok(Done::Yes(detail)) => merge(&mut r.detail, detail),
            Ok(Done::Deferred(why)) => {
                r.status = ActionStatus::Skipped;
                r.reason.clone_from(&why);
                out.stop = Some(Stop::Deferred(why));
            }
            Err(e) if e.is_not_found() && matches!(p.step, Step::ReleaseLease { .. }) => {}
            Err(e) => {
                tracing::warn!(action = p.step.name(), target = p.step.target(), error = %e, "Drain step failed");
                r.status = ActionStatus::Failed;
                r.retryable = e.is_retryable();
                r.error = Some(e.to_string());
                if out.stop.is_none() {
                    out.stop = Some(Stop::Failed);
                }
            }
        }
        out.records.push(r);
    }
    out
}

fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, more) {
        a.extend(b);
    }
}

enum Done {
    Yes(Value),
    Deferred(String),
}

fn unavailable(what: &str) -> CloudError {
    CloudError::new(
        reflex_core::CloudErrorKind::Other,
        "NotConfigured",
        format!("{what} is not configured in this build or environment"),
    )
}

async fn step(
    deps: &Deps,
    m: &Maintenance,
    s: &Step,
    rec: &mut DrainRecord,
    deadline: Instant,
) -> Result<Done, CloudError> {
    let node = rec.node.clone();
    let ok = || Ok(Done::Yes(json!({})));
    match s {
        Step::Lease { group } => {
            // A drain carried on from an earlier call keeps the slot it holds.
            if let Some(key) = rec.lease.clone() {
                deps.store
                    .confirm(&key, deps.config.lease)
                    .await
                    .map_err(store)?;
                return Ok(Done::Yes(json!({"slot": key, "held": true})));
            }
            for slot in 0..deps.config.max_concurrent {
                let key = format!("lease/{group}/{slot}");
                let taken = deps
                    .store
                    .claim(&key, deps.config.lease)
                    .await
                    .map_err(store)?;
                if taken {
                    rec.lease = Some(key.clone());
                    return Ok(Done::Yes(json!({"slot": key})));
                }
            }
            Ok(Done::Deferred(format!(
                "{} drain(s) already in progress in {group} (REFLEX_DRAIN_MAX_CONCURRENT): retried on the next resume",
                deps.config.max_concurrent
            )))
        }
        Step::Deregister { target_group, port } => {
            deps.fleet.deregister(target_group, &node, *port).await?;
            if !rec
                .registrations
                .iter()
                .any(|r| &r.target_group == target_group && r.port == *port)
            {
                rec.registrations.push(reflex_aws::fleet::Registration {
                    target_group: target_group.clone(),
                    port: *port,
                    state: "draining".into(),
                });
            }
            ok()
        }
        Step::EnterStandby { group } => {
            deps.fleet.enter_standby(group, &node).await?;
            rec.standby = Some(group.clone());
            ok()
        }
        Step::WaitDrained { targets } => wait_drained(deps, m, targets, &node, deadline).await,
        Step::CompleteLifecycle { group, hook, token } => {
            deps.fleet
                .complete_lifecycle(group, hook, token.as_deref(), &node, "CONTINUE")
                .await?;
            ok()
        }
        Step::Register { target_group, port } => {
            deps.fleet.register(target_group, &node, *port).await?;
            ok()
        }
        Step::ExitStandby { group } => {
            deps.fleet.exit_standby(group, &node).await?;
            ok()
        }
        Step::Cordon { node: k } => {
            let nodes = deps
                .nodes
                .as_ref()
                .ok_or_else(|| unavailable("Kubernetes"))?;
            nodes.cordon(k, &m.id).await?;
            rec.kube_node = Some(k.clone());
            ok()
        }
        Step::Evict { node: k } => {
            let nodes = deps
                .nodes
                .as_ref()
                .ok_or_else(|| unavailable("Kubernetes"))?;
            rec.kube_node = Some(k.clone());
            let (until, _) = limit(m, deadline);
            let e = nodes.evict(k, until).await?;
            let detail =
                json!({"evicted": e.evicted, "skipped": e.skipped, "pdb_refusals": e.refusals});
            if e.blocked.is_empty() {
                Ok(Done::Yes(detail))
            } else {
                Err(CloudError::new(
                    reflex_core::CloudErrorKind::Other,
                    "DisruptionBudget",
                    format!(
                        "PodDisruptionBudgets still protected {} pod(s) when the time ran out: {}",
                        e.blocked.len(),
                        e.blocked.join(", ")
                    ),
                ))
            }
        }
        Step::Uncordon { node: k } => {
            let nodes = deps
                .nodes
                .as_ref()
                .ok_or_else(|| unavailable("Kubernetes"))?;
            let removed = nodes.uncordon(k).await?;
            Ok(Done::Yes(json!({"marker_removed": removed})))
        }
        Step::AdminDown { pool, addresses } => {
            azure_admin(deps, pool, addresses, "Down", deadline).await?;
            rec.pools.push(Pool {
                pool: pool.clone(),
                addresses: addresses.clone(),
                down: true,
            });
            ok()
        }
        Step::AdminUp { pool, addresses } => {
            azure_admin(deps, pool, addresses, "None", deadline).await?;
            ok()
        }
        Step::Acknowledge { owner, event } => {
            azure_ack(deps, owner, event, deadline).await?;
            rec.acknowledged = true;
            ok()
        }
        Step::ReleaseLease { key } => {
            deps.store.release(key).await.map_err(store)?;
            ok()
        }
    }
}

fn store(e: reflex_core::StoreError) -> CloudError {
    let kind = if e.retryable {
        reflex_core::CloudErrorKind::Transient
    } else {
        reflex_core::CloudErrorKind::Other
    };
    CloudError::new(kind, "Store", e.message)
}

#[cfg(feature = "azure")]
async fn azure_admin(
    deps: &Deps,
    pool: &str,
    addresses: &[String],
    state: &str,
    deadline: Instant,
) -> Result<(), CloudError> {
    deps.azure
        .set_admin_state(pool, addresses, state, deadline)
        .await
}

#[cfg(not(feature = "azure"))]
async fn azure_admin(
    _: &Deps,
    _: &str,
    _: &[String],
    _: &str,
    _: Instant,
) -> Result<(), CloudError> {
    Err(unavailable("Azure"))
}

#[cfg(feature = "azure")]
async fn azure_ack(
    deps: &Deps,
    owner: &str,
    event: &str,
    deadline: Instant,
) -> Result<(), CloudError> {
    deps.azure.acknowledge(owner, event, deadline).await
}

#[cfg(not(feature = "azure"))]
async fn azure_ack(_: &Deps, _: &str, _: &str, _: Instant) -> Result<(), CloudError> {
    Err(unavailable("Azure"))
}

/// Polls the target groups until the node has left them all, heartbeating a
/// lifecycle hook meanwhile. The notice bounds the wait; when the invocation ends
/// first, the wait is deferred to the next resume.
async fn wait_drained(
    deps: &Deps,
    m: &Maintenance,
    targets: &[(String, Option<i32>)],
    node: &str,
    deadline: Instant,
) -> Result<Done, CloudError> {
    let started = Instant::now();
    let (until, by_notice) = limit(m, deadline);
    let mut beat: Option<Instant> = None;
    loop {
        if let Some(l) = m
            .lifecycle
            .as_ref()
            .filter(|_| beat.is_none_or(|b| b.elapsed() >= HEARTBEAT_EVERY))
        {
            deps.fleet
                .heartbeat(&l.group, &l.hook, l.token.as_deref(), node)
                .await?;
            beat = Some(Instant::now());
        }
        let mut still = Vec::new();
        for (tg, port) in targets {
            if let Some(state) = deps.fleet.target_state(tg, node, *port).await? {
                still.push(json!({"target_group": tg, "state": state}));
            }
        }
        let waited = started.elapsed().as_secs();
        if still.is_empty() {
            return Ok(Done::Yes(json!({"waited_secs": waited})));
        }
        if Instant::now() + deps.config.poll >= until {
            return if by_notice {
                Ok(Done::Yes(
                    json!({"waited_secs": waited, "still_draining": still, "cut_short": "the notice ran out"}),
                ))
            } else {
                Ok(Done::Deferred(format!(
                    "still draining after {waited} s and this invocation is ending: the wait carries on at the next resume"
                )))
            };
        }
        tokio::time::sleep(deps.config.poll).await;
    }
}
