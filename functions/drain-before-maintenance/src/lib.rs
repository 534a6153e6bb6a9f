//! `drain-before-maintenance`: the cloud warns that a node is about to be rebooted,
//! moved, reclaimed or terminated; Reflex takes it out of service first (ELBv2,
//! Auto Scaling standby or lifecycle hook, Kubernetes, Azure Load Balancer), lets the
//! maintenance proceed, and brings the node back afterwards.
//!
//! parse ([`parse`]) → re-read ([`observe`]) → [`decide`] (pure) → [`act`] → notify
//! → outcome.

pub mod act;
mod config;
pub mod decide;
mod observe;
pub mod parse;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reflex_aws::LazySdk;
use reflex_aws::fleet::{Fleet, SdkFleet};
use reflex_core::maintenance::{Announced, Maintenance};
use reflex_core::settings::Lookup;
use reflex_core::{ActionRecord, ActionStatus, DrainState, HandleError, Outcome, Store};
use reflex_kube::{KubeNodes, KubeSettings, Nodes};
use reflex_notify::Notifier;
use reflex_runtime::Invocation;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use config::Config;
pub use decide::{Decision, DrainRecord, Observed, Rules, decide};
pub use parse::{Input, Intent};
pub use report::{Stage, message};

/// The function's name: crate, binary, Lambda function and Azure folder.
pub const NAME: &str = "drain-before-maintenance";

/// The Azure function folder of the timer-triggered resume (its function.json is
/// `resume/function.json`); the host routes it to this function.
pub const RESUME: &str = "drain-before-maintenance-resume";

/// The triggers it accepts, for `reflex functions`.
pub const TRIGGERS: &[&str] = &[
    "aws.health/AWS Health Event (EC2 scheduledChange; instance ids or ARNs)",
    "aws.ec2/EC2 Spot Instance Interruption Warning",
    "aws.ec2/EC2 Instance Rebalance Recommendation",
    "aws.autoscaling/EC2 Instance-terminate Lifecycle Action",
    "aws.events/Scheduled Event (resume deferred drains and waits)",
    #[cfg(feature = "azure")]
    "azure.timer/drain-before-maintenance-resume (timer trigger: resume deferred drains)",
    #[cfg(feature = "azure")]
    "azure.eventgrid/Microsoft.ResourceNotifications.MaintenanceResources.ScheduledEventEmitted",
    #[cfg(feature = "azure")]
    "azure.monitor/Log Alerts V2 on the scheduled-events log (Computer, EventType dimensions)",
    "reflex-agent (drain / recover calls from the VM)",
];

#[cfg(feature = "azure")]
const AZURE_TABLE: reflex_aws::dynamo::OpenAzureTable = reflex_azure::table::open;
#[cfg(not(feature = "azure"))]
const AZURE_TABLE: reflex_aws::dynamo::OpenAzureTable = reflex_aws::dynamo::no_azure;

/// How long a handled delivery is remembered, so a duplicate changes nothing.
const SEEN_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long a delivery in progress holds its claim.
const SEEN_LEASE: Duration = Duration::from_secs(900);
/// How long a drain record is kept if the node is never recovered.
const RECORD_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Everything built once per cold start.
pub struct Deps {
    pub config: Config,
    pub fleet: Arc<dyn Fleet>,
    pub nodes: Option<Arc<dyn Nodes>>,
    #[cfg(feature = "azure")]
    pub azure: Arc<dyn reflex_azure::drain::AzureFleet>,
    pub store: Arc<dyn Store>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .field("kubernetes", &self.nodes.is_some())
            .field("store", &self.store)
            .field("notifiers", &self.notifiers.len())
            .finish()
    }
}

impl Deps {
    /// Reads the configuration from the environment and builds the clients.
    pub async fn from_env() -> Result<Self, reflex_core::ConfigError> {
        Self::from_lookup(&reflex_runtime::env_lookup).await
    }

    /// Reads the configuration from `env` and builds the clients (which connect on
    /// first use) and notifiers.
    pub async fn from_lookup(env: &impl Lookup) -> Result<Self, reflex_core::ConfigError> {
        let config = Config::from_lookup(env)?;
        let sdk = LazySdk::default();
        let store = reflex_aws::dynamo::store(&config.store, &sdk, AZURE_TABLE)?;
        let nodes: Option<Arc<dyn Nodes>> = match KubeSettings::from_lookup(env)? {
            Some(s) => Some(Arc::new(KubeNodes::new(&s)?)),
            None => None,
        };
        let notifiers = config.reporting.notifiers(&sdk).await;
        Ok(Self {
            #[cfg(feature = "azure")]
            azure: Arc::new(reflex_azure::drain::ArmFleet::new(
                reflex_azure::ArmClient::from_lookup(env)?,
            )),
            config,
            fleet: Arc::new(SdkFleet::new(sdk)),
            nodes,
            store,
            notifiers,
        })
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            policy: &self.config.policy,
            opt_in: &self.config.opt_in,
            exempt: &self.config.exempt,
            ack_when_nothing: self.config.ack_when_nothing,
        }
    }
}

#[async_trait::async_trait]
impl reflex_runtime::Function for Deps {
    fn name(&self) -> &'static str {
        NAME
    }

    fn also_serves(&self) -> &'static [&'static str] {
        &[RESUME]
    }

    async fn handle(&self, raw: &[u8], invocation: &Invocation) -> Result<Outcome, HandleError> {
        handle(self, raw, invocation).await
    }
}

/// A drain waiting for its time, a free slot, or the end of a long wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub maintenance: Maintenance,
    pub node: String,
    /// Epoch seconds from which the resume may carry on.
    pub due: i64,
    pub why: String,
    /// When it was saved (nanoseconds since the epoch): a run that defers again
    /// within the same second still writes a different entry, so the resume that ran
    /// it does not mistake the new entry for its own and drop it.
    #[serde(default)]
    pub saved: u128,
}

fn outcome(deps: &Deps, trigger: &str) -> Outcome {
    let mut o = Outcome::ignored(NAME, trigger, deps.config.dry_run, "");
    o.ignored = None;
    o.policy = serde_json::to_value(&deps.config.policy).ok();
    o
}

/// Handles one payload.
pub async fn handle(
    deps: &Deps,
    raw: &[u8],
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    let input = parse::parse(raw)?;
    let mut out;
    let mut ignored = Vec::new();
    let mut observed = Vec::new();
    let mut work: Vec<(Maintenance, Intent)> = Vec::new();
    match input {
        Input::Validation(code) => {
            let mut o = Outcome::ignored(
                NAME,
                "azure.eventgrid/SubscriptionValidationEvent",
                deps.config.dry_run,
                "Event Grid subscription validation",
            );
            o.validation_response = Some(code);
            return Ok(o);
        }
        Input::Resume { trigger } => return resume(deps, &trigger, invocation).await,
        Input::Agent {
            intent,
            maintenance,
        } => {
            out = outcome(deps, &maintenance.trigger);
            work.push((*maintenance, intent));
        }
        Input::Events(events) => {
            let trigger = events.first().map_or("unknown".to_string(), |a| match a {
                Announced::Maintenance(m) => m.trigger.clone(),
                Announced::Ignored { trigger, .. } => trigger.clone(),
            });
            out = outcome(deps, &trigger);
            for a in events {
                match a {
                    Announced::Ignored { reason, .. } => ignored.push(reason),
                    Announced::Maintenance(m) => {
                        let intent = Intent::of(m.phase);
                        work.push((*m, intent));
                    }
                }
            }
        }
    }
    for (m, intent) in &work {
        for node in &m.targets {
            node_run(
                deps,
                m,
                *intent,
                node,
                true,
                invocation,
                &mut out,
                &mut ignored,
                &mut observed,
            )
            .await?;
        }
    }
    if !observed.is_empty() {
        out.observed = Some(Value::Array(observed));
    }
    if out.actions.is_empty() {
        out.ignored = Some(if ignored.is_empty() {
            "nothing to do".into()
        } else {
            summary(&ignored)
        });
    }
    Ok(out)
}

/// The reasons, each once with its count, at most [`MAX_REASONS`] of them.
fn summary(reasons: &[String]) -> String {
    const MAX_REASONS: usize = 10;
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for r in reasons {
        match counted.iter_mut().find(|(x, _)| *x == r.as_str()) {
            Some((_, n)) => *n += 1,
            None => counted.push((r, 1)),
        }
    }
    let mut parts: Vec<String> = counted
        .iter()
        .take(MAX_REASONS)
        .map(|(r, n)| {
            if *n > 1 {
                format!("{r} (x{n})")
            } else {
                (*r).to_string()
            }
        })
        .collect();
    if counted.len() > MAX_REASONS {
        parts.push(format!("and {} other reasons", counted.len() - MAX_REASONS));
    }
    parts.join("; ")
}

/// The dedup key of one delivery for one node.
fn seen_key(m: &Maintenance, intent: Intent, node: &str) -> String {
    format!("seen/{}/{}/{:?}/{node}", m.id, intent.name(), m.phase)
}

fn record_key(node: &str) -> String {
    format!("drain/{node}")
}

fn pending_key(node: &str) -> String {
    format!("pending/{node}")
}

/// Handles one node of one event: dedup, re-read, decide, act, record, notify.
#[allow(clippy::too_many_arguments)]
async fn node_run(
    deps: &Deps,
    m: &Maintenance,
    intent: Intent,
    node: &str,
    dedup: bool,
    inv: &Invocation,
    out: &mut Outcome,
    ignored: &mut Vec<String>,
    observed: &mut Vec<Value>,
) -> Result<(), HandleError> {
    let dry = deps.config.dry_run;
    let seen = seen_key(m, intent, node);
    if dedup && !dry && !deps.store.claim(&seen, SEEN_LEASE).await? {
        ignored.push(format!(
            "duplicate delivery of {} for {node}: already handled",
            m.id
        ));
        // The answer still says where the drain stands, so a caller that asks again
        // (the agent after a restart) approves only what is drained.
        if intent == Intent::Drain
            && let Some(state) = recorded(&load_record(deps, node).await?, m)
        {
            out.drain = Some(DrainState::worst(out.drain, state));
        }
        return Ok(());
    }
    let result = node_act(deps, m, intent, node, inv, out, ignored, observed).await;
    if dedup && !dry {
        // A deferred drain is not handled yet: the next delivery or call carries on.
        let retry = matches!(&result, Err(e) if e.is_retryable())
            || out.needs_retry()
            || matches!(result, Ok(Some(DrainState::Deferred)));
        let kept = if retry {
            deps.store.release(&seen).await
        } else {
            deps.store.confirm(&seen, SEEN_TTL).await
        };
        kept?;
    }
    if let Ok(Some(state)) = result {
        out.drain = Some(DrainState::worst(out.drain, state));
    }
    result.map(|_| ())
}

/// The drain on record for `node`, if readable.
async fn load_record(deps: &Deps, node: &str) -> Result<Option<DrainRecord>, HandleError> {
    Ok(deps
        .store
        .get(&record_key(node))
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

/// Where the recorded drain of `m` stands, when the record is about `m`.
fn recorded(record: &Option<DrainRecord>, m: &Maintenance) -> Option<DrainState> {
    let r = record.as_ref().filter(|r| r.event == m.id)?;
    Some(match r.status.as_str() {
        "drained" => DrainState::Drained,
        "failed" => DrainState::Failed,
        _ => DrainState::Deferred,
    })
}

/// Runs one node; `Some` is where its drain stands (`None`: a recovery, or nothing
/// to drain).
#[allow(clippy::too_many_arguments)]
async fn node_act(
    deps: &Deps,
    m: &Maintenance,
    intent: Intent,
    node: &str,
    inv: &Invocation,
    out: &mut Outcome,
    ignored: &mut Vec<String>,
    observed: &mut Vec<Value>,
) -> Result<Option<DrainState>, HandleError> {
    let now = act::now();
    let record = load_record(deps, node).await?;
    let seen = match observe::observe(deps, m, node, record, inv.deadline).await? {
        Ok(o) => o,
        Err(why) => {
            ignored.push(why);
            return Ok(None);
        }
    };
    let decision = decide(m, intent, deps.rules(), &seen, now);
    // Each target's own decision, so a mixed batch shows why each node was or was
    // not touched.
    let mut entry = serde_json::to_value(&seen).unwrap_or_default();
    entry["decision"] = match &decision {
        Decision::Ignore(why) => json!({"verdict": "ignore", "reason": why}),
        Decision::Later { at } => json!({"verdict": "later", "at": at}),
        Decision::Hold(why) => json!({"verdict": "hold", "reason": why}),
        Decision::Drain(p) | Decision::Recover(p) => json!({
            "verdict": if matches!(decision, Decision::Drain(_)) { "drain" } else { "recover" },
            "steps": p.iter().map(|s| s.step.name()).collect::<Vec<_>>(),
        }),
    };
    observed.push(entry);
    let (plan, stage) = match decision {
        Decision::Ignore(why) => {
            ignored.push(why);
            // "Already drained for this event" is still drained.
            return Ok(recorded(&seen.record, m)
                .filter(|s| intent == Intent::Drain && *s == DrainState::Drained));
        }
        Decision::Later { at } => {
            let r = ActionRecord {
                action: "schedule_drain".into(),
                target: node.to_string(),
                detail: json!({"at": at, "policy": deps.config.policy.rule(m.kind).to_string()}),
                status: if deps.config.dry_run {
                    ActionStatus::Planned
                } else {
                    ActionStatus::Done
                },
                reason: format!(
                    "the drain policy drains {} {} s before it starts",
                    m.kind,
                    m.not_before.map_or(0, |nb| nb - at)
                ),
                error: None,
                retryable: false,
            };
            if !deps.config.dry_run {
                save_pending(deps, m, node, at, "scheduled by the drain policy").await?;
            }
            notify(
                deps,
                Stage::Scheduled,
                m,
                node,
                std::slice::from_ref(&r),
                inv,
                out,
            )
            .await;
            out.actions.push(r);
            return Ok(Some(if deps.config.dry_run {
                DrainState::Planned
            } else {
                DrainState::Deferred
            }));
        }
        Decision::Hold(why) => {
            // Only this event leaves the record; the drain stays for the others.
            if let (Some(mut r), false) = (seen.record.clone(), deps.config.dry_run)
                && r.leave(&m.id)
            {
                let text = serde_json::to_string(&r).unwrap_or_default();
                deps.store.put(&record_key(node), &text, RECORD_TTL).await?;
            }
            ignored.push(why);
            return Ok(None);
        }
        Decision::Drain(plan) => (plan, Stage::Started),
        Decision::Recover(plan) => (plan, Stage::Recovered),
    };
    // A node already out for another event is not given a new record: this event
    // joins that drain, so recovery still undoes everything it did.
    let mut rec = match seen.record.clone() {
        Some(r) if stage == Stage::Recovered || r.holds(&m.id) => r,
        Some(mut r) => {
            r.join(&m.id);
            r
        }
        None => DrainRecord {
            event: m.id.clone(),
            kind: m.kind.to_string(),
            node: node.to_string(),
            status: "draining".into(),
            ..DrainRecord::default()
        },
    };
    // An empty plan (nothing to drain, approved by REFLEX_DRAIN_ACK_WHEN_NOTHING) says
    // nothing in Slack: nothing changed.
    let quiet = plan.is_empty();
    if stage == Stage::Started && !deps.config.dry_run && seen.record.is_none() && !quiet {
        notify(deps, Stage::Started, m, node, &[], inv, out).await;
    }
    let run = act::run(deps, m, &plan, &mut rec, inv.deadline).await;
    if !deps.config.dry_run {
        match stage {
            // A recovery step that failed keeps the record, so a redelivery (or the
            // next call) still knows what to undo.
            Stage::Recovered if run.stop.is_some() => {}
            Stage::Recovered => {
                deps.store.release(&record_key(node)).await?;
                deps.store.release(&pending_key(node)).await?;
            }
            _ => {
                rec.touched = now;
                rec.status = match run.stop {
                    None => "drained",
                    Some(act::Stop::Failed) => "failed",
                    Some(act::Stop::Deferred(_)) => "draining",
                }
                .into();
                let text = serde_json::to_string(&rec).unwrap_or_default();
                deps.store.put(&record_key(node), &text, RECORD_TTL).await?;
                match &run.stop {
                    Some(act::Stop::Deferred(why)) => save_pending(deps, m, node, now, why).await?,
                    _ => deps.store.release(&pending_key(node)).await?,
                }
            }
        }
    }
    let finished = match (&run.stop, stage) {
        (_, Stage::Recovered) => Stage::Recovered,
        (Some(act::Stop::Deferred(_)), _) => Stage::Deferred,
        _ => Stage::Finished,
    };
    let deferred_only = matches!(run.stop, Some(act::Stop::Deferred(_)))
        && !run
            .records
            .iter()
            .any(|r| matches!(r.status, ActionStatus::Done | ActionStatus::Failed));
    if !deferred_only && !quiet {
        notify(deps, finished, m, node, &run.records, inv, out).await;
    }
    out.actions.extend(run.records);
    Ok(
        (stage != Stage::Recovered).then_some(match (&run.stop, deps.config.dry_run) {
            (_, true) => DrainState::Planned,
            (None, false) => DrainState::Drained,
            (Some(act::Stop::Failed), false) => DrainState::Failed,
            (Some(act::Stop::Deferred(_)), false) => DrainState::Deferred,
        }),
    )
}

async fn save_pending(
    deps: &Deps,
    m: &Maintenance,
    node: &str,
    due: i64,
    why: &str,
) -> Result<(), HandleError> {
    let p = Pending {
        maintenance: m.clone(),
        node: node.to_string(),
        due,
        why: why.to_string(),
        saved: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    };
    let keep = m.not_before.map_or(RECORD_TTL, |nb| {
        Duration::from_secs(u64::try_from(nb - act::now() + 86_400).unwrap_or(86_400))
    });
    let text = serde_json::to_string(&p).unwrap_or_default();
    Ok(deps.store.put(&pending_key(node), &text, keep).await?)
}

async fn notify(
    deps: &Deps,
    stage: Stage,
    m: &Maintenance,
    node: &str,
    records: &[ActionRecord],
    inv: &Invocation,
    out: &mut Outcome,
) {
    let msg = message(stage, m, node, records, deps.config.dry_run, act::now());
    for n in &deps.notifiers {
        out.notifications.push(n.send(&msg, inv.deadline).await);
    }
}

/// The scheduled re-invocation: every pending drain whose time has come is run
/// again from the top (re-read, decide, act), which carries on where it stopped.
async fn resume(deps: &Deps, trigger: &str, inv: &Invocation) -> Result<Outcome, HandleError> {
    let mut out = outcome(deps, trigger);
    let mut ignored = Vec::new();
    let mut observed = Vec::new();
    let now = act::now();
    let pending = deps.store.list("pending/").await?;
    let mut due = 0;
    for (key, text) in pending {
        let Ok(p) = serde_json::from_str::<Pending>(&text) else {
            tracing::warn!(key = %key, "Unreadable pending drain dropped");
            deps.store.release(&key).await?;
            continue;
        };
        if p.due > now {
            continue;
        }
        if inv.deadline.saturating_duration_since(Instant::now()) < Duration::from_secs(10) {
            break;
        }
        due += 1;
        node_run(
            deps,
            &p.maintenance,
            Intent::Drain,
            &p.node,
            false,
            inv,
            &mut out,
            &mut ignored,
            &mut observed,
        )
        .await?;
        if !deps.config.dry_run {
            // Ran (or was ignored): the record now says what is left, and a new
            // deferral wrote a fresh pending entry (a later due time).
            let still = deps.store.get(&key).await?;
            if still.as_deref() == Some(text.as_str()) {
                deps.store.release(&key).await?;
            }
        }
    }
    if !observed.is_empty() {
        out.observed = Some(Value::Array(observed));
    }
    if out.actions.is_empty() {
        out.ignored = Some(if due == 0 {
            "no pending drain is due".into()
        } else {
            summary(&ignored)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn repeated_reasons_are_counted_and_the_list_is_capped() {
        let mut r = vec!["a".to_string(); 3];
        r.push("b".into());
        assert_eq!(summary(&r), "a (x3); b");
        let many: Vec<String> = (0..15).map(|i| format!("r{i}")).collect();
        let s = summary(&many);
        assert!(s.ends_with("and 5 other reasons"), "{s}");
        assert_eq!(s.matches("; ").count(), 10);
    }
}
