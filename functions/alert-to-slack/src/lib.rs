//! `alert-to-slack`: every AWS and Azure alert as one clear Slack message. A resolved
//! alarm updates its thread instead of adding noise; a duplicate delivery posts
//! nothing.
//!
//! parse ([`reflex_aws::notices`], Azure alerts) → route + dedup + thread lookup →
//! [`decide`] (pure) → post / reply / update → outcome.

mod config;
mod decide;
mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reflex_aws::LazySdk;
use reflex_core::json::parse_json;
use reflex_core::settings::Lookup;
use reflex_core::store::epoch_secs;
use reflex_core::{
    ActionRecord, ActionStatus, HandleError, Notice, NoticeState, Noticed, Outcome, ParseError,
    Route, Store, Target, ThreadRef,
};
use reflex_notify::blockkit::render;
use reflex_notify::retry::GaveUp;
use reflex_notify::{Notifier, SlackApi, SlackWebhook, SnsPublisher};
use reflex_runtime::Invocation;
use serde_json::json;

pub use config::{Burst, Config, StoreSetting};
pub use decide::{Decision, decide};
pub use report::{parent, reply};

/// The function's name: crate, binary, Lambda function and Azure folder.
pub const NAME: &str = "alert-to-slack";

/// The triggers it accepts, for `reflex functions`.
pub const TRIGGERS: &[&str] = &[
    "aws.sns/CloudWatch alarm (alarm actions) and any other SNS message",
    "aws.cloudwatch/CloudWatch Alarm State Change (EventBridge)",
    "aws.cloudtrail/root use, ConsoleLogin failures, AccessDenied bursts, security group / NACL / IAM policy changes, CloudTrail stopped",
    "aws.config/Config Rules Compliance Change",
    "aws.health/AWS Health Event",
    "aws.guardduty/GuardDuty Finding",
    "aws.events/any other EventBridge event",
    #[cfg(feature = "azure")]
    "azure.monitor/common alert schema (metric, log, activity log, service and resource health) and legacy schemas (action-group webhook)",
];

/// How long a claimed delivery blocks duplicates while it is being posted: longer
/// than any invocation, so a delivery that died mid-way is retried after it.
const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);
/// How long a posted delivery blocks duplicates (SNS and EventBridge redeliver within
/// hours).
const DEDUP_TTL: Duration = Duration::from_secs(2 * 24 * 3600);
/// How long an alert's thread is remembered.
const THREAD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Everything built once per cold start.
pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// With a bot token.
    pub api: Option<SlackApi>,
    /// The default incoming webhook.
    pub webhook: Option<SlackWebhook>,
    /// Webhooks named by routes, by URL.
    pub route_webhooks: HashMap<String, SlackWebhook>,
    pub sns: Option<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish()
    }
}

impl Deps {
    /// Reads the configuration from the environment and builds the clients.
    pub async fn from_env() -> Result<Self, reflex_core::ConfigError> {
        Self::from_lookup(&reflex_runtime::env_lookup).await
    }

    /// Reads the configuration from `env` and builds the clients. Cloud clients
    /// connect on first use.
    pub async fn from_lookup(env: &impl Lookup) -> Result<Self, reflex_core::ConfigError> {
        let config = Config::from_lookup(env)?;
        let sdk = LazySdk::default();
        let store = reflex_aws::dynamo::store(&config.store, &sdk, AZURE_TABLE)?;
        let api = config
            .bot_token
            .source(&sdk, "bot_token")
            .map(|s| SlackApi::new(config.api_url.clone(), s));
        let webhook = config
            .webhook
            .source(&sdk, "webhook_url")
            .map(SlackWebhook::lazy);
        let route_webhooks = config
            .routes
            .targets()
            .filter_map(|t| match t {
                Target::Webhook(url) => {
                    Some((url.expose().to_string(), SlackWebhook::new(url.clone())))
                }
                _ => None,
            })
            .collect();
        let sns: Option<Arc<dyn Notifier>> = match &config.sns_topic_arn {
            Some(topic) => Some(Arc::new(SnsPublisher::from_sdk(
                sdk.get().await,
                topic.clone(),
            ))),
            None => None,
        };
        Ok(Self {
            config,
            store,
            api,
            webhook,
            route_webhooks,
            sns,
        })
    }
}

#[cfg(feature = "azure")]
const AZURE_TABLE: reflex_aws::dynamo::OpenAzureTable = reflex_azure::table::open;
#[cfg(not(feature = "azure"))]
const AZURE_TABLE: reflex_aws::dynamo::OpenAzureTable = reflex_aws::dynamo::no_azure;

#[async_trait::async_trait]
impl reflex_runtime::Function for Deps {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, raw: &[u8], invocation: &Invocation) -> Result<Outcome, HandleError> {
        handle(self, raw, invocation).await
    }
}

/// Reads any payload the function accepts, recognised from the payload itself.
/// Security-group and NACL changes made by `own_roles` (Reflex's own remediations,
/// reported by the function that made them) are ignored.
pub fn parse(raw: &[u8], own_roles: &[String]) -> Result<Vec<Noticed>, ParseError> {
    let value = parse_json(raw)?;
    if let Some((role, call)) = reflex_aws::notices::own_change(&value, own_roles) {
        return Ok(vec![Noticed::Ignored {
            trigger: format!("aws.cloudtrail/{call}"),
            reason: format!(
                "{call} by Reflex's own role {role} (REFLEX_OWN_ROLE_ARNS): the function that made the change reported it"
            ),
        }]);
    }
    #[cfg(feature = "azure")]
    if reflex_azure::alerts::is_azure_alert(&value) {
        let alert = reflex_azure::alerts::parse(value)?;
        return Ok(vec![Noticed::Notice(Box::new(
            reflex_azure::notice::notice(&alert),
        ))]);
    }
    match reflex_aws::notices::parse(&value) {
        Some(r) => r,
        None => Ok(vec![Noticed::Ignored {
            trigger: "unknown".into(),
            reason: "not an SNS message, an EventBridge event or an Azure Monitor alert".into(),
        }]),
    }
}

/// Handles one payload: parse, route, dedup, thread, post, and the outcome.
pub async fn handle(
    deps: &Deps,
    raw: &[u8],
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    let dry_run = deps.config.dry_run;
    let mut outcome = Outcome::ignored(NAME, "unknown", dry_run, "");
    outcome.ignored = None;
    let mut reasons = Vec::new();
    for (i, noticed) in parse(raw, &deps.config.own_roles)?.into_iter().enumerate() {
        match noticed {
            Noticed::Ignored { trigger, reason } => {
                if i == 0 {
                    outcome.trigger = trigger;
                }
                reasons.push(reason);
            }
            Noticed::Notice(mut n) => {
                if i == 0 {
                    outcome.trigger.clone_from(&n.trigger);
                }
                if let Some(why) = deliver(deps, &mut n, invocation, &mut outcome).await? {
                    reasons.push(why);
                }
                outcome.notices.push(*n);
            }
        }
    }
    if outcome.actions.is_empty() {
        outcome.ignored = Some(reasons.join("; "));
    }
    Ok(outcome)
}

/// Counts a burst member; `Some(reason)` when this one does not post.
async fn burst_gate(deps: &Deps, n: &mut Notice, key: &str) -> Result<Option<String>, HandleError> {
    let Burst { count, window } = deps.config.burst;
    if deps.config.dry_run {
        return Ok(None);
    }
    let bucket = epoch_secs(SystemTime::now()) / window.as_secs().max(1);
    let seen = deps
        .store
        .count(&format!("burst:{key}:{bucket}"), window * 2)
        .await?;
    if seen < count {
        return Ok(Some(format!(
            "denial {seen} of {count} for this principal in the current {}s window: alerting at {count}",
            window.as_secs()
        )));
    }
    if seen > count {
        return Ok(Some(format!(
            "denial {seen} in the current {}s window: this burst was already reported",
            window.as_secs()
        )));
    }
    n.fields.insert(
        0,
        (
            "Burst".into(),
            format!("{count} denials within {}s", window.as_secs()),
        ),
    );
    // One thread per burst: the next window's burst is a new message.
    n.delivery_key = format!("burst:{key}:{bucket}");
    Ok(None)
}

/// Routes, dedups, decides and posts one notice. `Ok(Some(reason))` when nothing was
/// posted on purpose.
async fn deliver(
    deps: &Deps,
    n: &mut Notice,
    invocation: &Invocation,
    outcome: &mut Outcome,
) -> Result<Option<String>, HandleError> {
    let route = deps.config.routes.route(n);
    if let Decision::Ignore(why) = decide(n, route.as_ref(), None) {
        return Ok(Some(why));
    }
    if let Some(key) = n.burst_key.clone()
        && let Some(why) = burst_gate(deps, n, &key).await?
    {
        return Ok(Some(why));
    }
    let dry_run = deps.config.dry_run;
    let claim = format!("delivery:{}", n.delivery_key);
    if !dry_run && !deps.store.claim(&claim, CLAIM_LEASE).await? {
        return Ok(Some(format!(
            "duplicate delivery ({}): already posted",
            n.delivery_key
        )));
    }
    let thread_key = n.thread_key.as_ref().map(|k| format!("thread:{k}"));
    let thread = match (&thread_key, &deps.api) {
        (Some(k), Some(_)) => deps.store.thread(k).await?,
        _ => None,
    };
    let decision = decide(n, route.as_ref(), thread.as_ref());
    let rule = route.map(|r: Route| r.rule).unwrap_or_default();
    let records = act(deps, n, &decision, &rule, thread_key.as_deref(), invocation).await;
    let failed = records.iter().any(|r| r.status == ActionStatus::Failed);
    if !dry_run {
        // A failed post frees the claim so the redelivery can post; a success keeps
        // it long enough to drop every duplicate.
        let kept = if failed {
            deps.store.release(&claim).await
        } else {
            deps.store.confirm(&claim, DEDUP_TTL).await
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "Could not update the delivery claim");
        }
    }
    outcome.actions.extend(records);
    if !failed && let Some(sns) = &deps.sns {
        let msg = parent(n, None, dry_run);
        outcome
            .notifications
            .push(sns.send(&msg, invocation.deadline).await);
    }
    Ok(None)
}

fn record(action: &str, target: &str, detail: serde_json::Value, reason: &str) -> ActionRecord {
    ActionRecord {
        action: action.into(),
        target: target.into(),
        detail,
        status: ActionStatus::Planned,
        reason: reason.into(),
        error: None,
        retryable: false,
    }
}

fn finish(mut r: ActionRecord, result: Result<serde_json::Value, GaveUp>) -> ActionRecord {
    match result {
        Ok(extra) => {
            r.status = ActionStatus::Done;
            if let (Some(d), Some(e)) = (r.detail.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
        }
        Err(g) => {
            r.status = ActionStatus::Failed;
            r.error = Some(g.error);
            r.retryable = g.retryable;
        }
    }
    r
}

fn no_client(what: &str) -> GaveUp {
    GaveUp {
        attempts: 0,
        error: format!("no {what} is configured"),
        retryable: false,
    }
}

/// Carries out a decision. Dry-run records each step as planned and calls nothing.
async fn act(
    deps: &Deps,
    n: &Notice,
    decision: &Decision,
    rule: &str,
    thread_key: Option<&str>,
    inv: &Invocation,
) -> Vec<ActionRecord> {
    let dry_run = deps.config.dry_run;
    let deadline = inv.deadline;
    let why = format!("route: {rule}");
    match decision {
        Decision::Ignore(_) => Vec::new(),
        Decision::NewThread { channel } => {
            let r = record(
                "post_message",
                channel,
                json!({"thread_key": thread_key}),
                &why,
            );
            if dry_run {
                return vec![r];
            }
            let payload = render(&parent(n, None, false));
            let result = match &deps.api {
                Some(api) => api.post(channel, &payload, None, deadline).await,
                None => Err(no_client("bot token")),
            };
            if let (Ok(p), Some(key)) = (&result, thread_key) {
                let t = ThreadRef {
                    channel: p.channel.clone(),
                    ts: p.ts.clone(),
                    state: n.state.name().into(),
                    since: n.at.clone().unwrap_or_default(),
                };
                if let Err(e) = deps.store.save_thread(key, &t, THREAD_TTL).await {
                    tracing::warn!(error = %e, "Could not record the alert's thread; later updates will start a new one");
                }
            }
            vec![finish(
                r,
                result
                    .map(|p| json!({"channel_id": p.channel, "ts": p.ts, "attempts": p.attempts})),
            )]
        }
        Decision::Continue { thread } => {
            let reply_rec = record(
                "reply_in_thread",
                &thread.channel,
                json!({"thread_ts": thread.ts}),
                &why,
            );
            let update_rec = record(
                "update_message",
                &thread.channel,
                json!({"ts": thread.ts, "state": n.state.name()}),
                "the parent shows the current state",
            );
            if dry_run {
                return vec![reply_rec, update_rec];
            }
            let Some(api) = &deps.api else {
                return vec![finish(reply_rec, Err(no_client("bot token")))];
            };
            let replied = api
                .post(
                    &thread.channel,
                    &render(&reply(n)),
                    Some(&thread.ts),
                    deadline,
                )
                .await
                .map(|p| json!({"ts": p.ts, "attempts": p.attempts}));
            if replied.is_err() {
                return vec![finish(reply_rec, replied)];
            }
            let since = (!thread.since.is_empty()).then_some(thread.since.as_str());
            let updated = api
                .update(
                    &thread.channel,
                    &thread.ts,
                    &render(&parent(n, since, false)),
                    deadline,
                )
                .await
                .map(|a| json!({"attempts": a}));
            if updated.is_ok()
                && let Some(key) = thread_key
            {
                let t = ThreadRef {
                    state: if n.state == NoticeState::Resolved {
                        "resolved".into()
                    } else {
                        "firing".into()
                    },
                    ..thread.clone()
                };
                if let Err(e) = deps.store.save_thread(key, &t, THREAD_TTL).await {
                    tracing::warn!(error = %e, "Could not record the thread's new state");
                }
            }
            vec![finish(reply_rec, replied), finish(update_rec, updated)]
        }
        Decision::Plain { target } => {
            let r = record("post_message", &target.to_string(), json!({}), &why);
            if dry_run {
                return vec![r];
            }
            let payload = render(&parent(n, None, false));
            let result = match target {
                Target::Channel(c) => match &deps.api {
                    Some(api) => api.post(c, &payload, None, deadline).await.map(
                        |p| json!({"channel_id": p.channel, "ts": p.ts, "attempts": p.attempts}),
                    ),
                    None => Err(no_client("bot token")),
                },
                Target::DefaultWebhook => match &deps.webhook {
                    Some(w) => w
                        .post(&payload, deadline)
                        .await
                        .map(|a| json!({"attempts": a})),
                    None => Err(no_client("incoming webhook")),
                },
                Target::Webhook(url) => match deps.route_webhooks.get(url.expose()) {
                    Some(w) => w
                        .post(&payload, deadline)
                        .await
                        .map(|a| json!({"attempts": a})),
                    None => Err(no_client("webhook for this route")),
                },
                Target::Mute => Ok(json!({})),
            };
            vec![finish(r, result)]
        }
    }
}

#[cfg(test)]
mod tests;
