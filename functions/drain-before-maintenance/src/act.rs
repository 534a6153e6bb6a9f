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
/// How often a drain in progress renews its slots (each renewal holds them for
/// another `REFLEX_DRAIN_LEASE_SECS`).
const RENEW_EVERY: Duration = Duration::from_secs(60);
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
    let mut renewed = Instant::now();
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
        if renewed.elapsed() >= renew_every(deps)
            && let Err(e) = renew(deps, rec).await
        {
            tracing::warn!(error = %e, "Could not renew the drain slot");
        }
        renewed = Instant::now();
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
            let owner = node.as_str();
            let prefix = format!("lease/{group}");
            let cap = deps.config.max_concurrent;
            let Some(key) = take_slot(deps, &prefix, cap, rec.lease.as_deref(), owner).await?
            else {
                return Ok(Done::Deferred(format!(
                    "{cap} drain(s) already in progress in {group} (REFLEX_DRAIN_MAX_CONCURRENT): retried on the next resume"
                )));
            };
            rec.lease = Some(key.clone());
            if let Some(global) = deps.config.max_global {
                match take_slot(deps, GLOBAL, global, rec.global_lease.as_deref(), owner).await? {
                    Some(g) => rec.global_lease = Some(g),
                    None => {
                        // Not both: the group slot goes back for another node.
                        deps.store.let_go(&key, owner).await.map_err(store)?;
                        rec.lease = None;
                        return Ok(Done::Deferred(format!(
                            "{global} drain(s) already in progress in this account or subscription (REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL): retried on the next resume"
                        )));
                    }
                }
            }
            Ok(Done::Yes(
                json!({"slot": key, "global_slot": rec.global_lease, "owner": owner}),
            ))
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
        Step::WaitDrained { targets } => wait_drained(deps, m, targets, rec, deadline).await,
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
            let (until, by_notice) = limit(m, deadline);
            let e = nodes.evict(k, until).await?;
            let detail =
                json!({"evicted": e.evicted, "skipped": e.skipped, "pdb_refusals": e.refusals});
            if e.blocked.is_empty() {
                Ok(Done::Yes(detail))
            } else if !by_notice {
                // The invocation ends before the notice does: carried on by the next
                // resume (or call), which evicts what is left.
                Ok(Done::Deferred(format!(
                    "PodDisruptionBudgets still protect {} pod(s) ({}) and this invocation is ending: the evictions carry on at the next resume",
                    e.blocked.len(),
                    e.blocked.join(", ")
                )))
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
            if !rec.pools.iter().any(|p| p.pool == *pool) {
                rec.pools.push(Pool {
                    pool: pool.clone(),
                    addresses: addresses.clone(),
                    down: true,
                });
            }
            ok()
        }
        Step::AdminUp { pool, addresses } => {
            azure_admin(deps, pool, addresses, "None", deadline).await?;
            ok()
        }
        Step::Acknowledge { owner, event } => {
            azure_ack(deps, owner, event, deadline).await?;
            if rec.event == *event {
                rec.acknowledged = true;
            } else if !rec.acked.contains(event) {
                rec.acked.push(event.clone());
            }
            ok()
        }
        Step::ReleaseLease { key } => {
            // Only the node's own slot: one that expired and went to another node
            // stays with it.
            let ours = deps.store.let_go(key, &node).await.map_err(store)?;
            Ok(Done::Yes(json!({"released": ours})))
        }
    }
}

/// The account- or subscription-wide slots' key prefix.
const GLOBAL: &str = "lease-global";

/// A slot under `prefix` for `owner`: the one it already holds (renewed), else the
/// first of `cap` that is free. `None`: all are held by other nodes.
async fn take_slot(
    deps: &Deps,
    prefix: &str,
    cap: u32,
    held: Option<&str>,
    owner: &str,
) -> Result<Option<String>, CloudError> {
    let lease = deps.config.lease;
    if let Some(key) = held.filter(|k| k.starts_with(&format!("{prefix}/")))
        && deps.store.hold(key, owner, lease).await.map_err(store)?
    {
        return Ok(Some(key.to_string()));
    }
    for slot in 0..cap {
        let key = format!("{prefix}/{slot}");
        if deps.store.hold(&key, owner, lease).await.map_err(store)? {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// How often to renew: every minute, or a third of a shorter lease.
fn renew_every(deps: &Deps) -> Duration {
    RENEW_EVERY.min(deps.config.lease / 3)
}

/// Renews the slots `rec` holds, so a slow drain keeps them past the lease.
async fn renew(deps: &Deps, rec: &DrainRecord) -> Result<(), CloudError> {
    for key in rec.lease.iter().chain(&rec.global_lease) {
        if !deps
            .store
            .hold(key, &rec.node, deps.config.lease)
            .await
            .map_err(store)?
        {
            tracing::warn!(slot = %key, node = %rec.node, "Drain slot lost to another node while draining");
        }
    }
    Ok(())
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
    rec: &DrainRecord,
    deadline: Instant,
) -> Result<Done, CloudError> {
    let node = rec.node.as_str();
    let started = Instant::now();
    let (until, by_notice) = limit(m, deadline);
    let mut beat: Option<Instant> = None;
    let mut renewed = Instant::now();
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
        if renewed.elapsed() >= renew_every(deps) {
            renew(deps, rec).await?;
            renewed = Instant::now();
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
