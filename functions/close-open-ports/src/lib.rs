//! `close-open-ports`: someone opens SSH or RDP to the world, and within seconds
//! exactly that rule is gone and the team has a clear message.
//!
//! parse ([`reflex_aws::events`]) → [`decide`] (pure) → [`act`] → notify → outcome.

mod act;
mod config;
mod decide;
mod report;

use std::sync::Arc;

use reflex_aws::ec2::{Ec2SecurityGroups, SecurityGroups};
use reflex_aws::events::parse_ports_event;
use reflex_core::settings::Lookup;
use reflex_core::{HandleError, Outcome, Parsed, SignalKind};
use reflex_notify::Notifier;
use reflex_runtime::Invocation;

pub use act::act;
pub use config::{Config, SlackSetting};
pub use decide::decide;
pub use report::message;

/// The function's name: crate, binary, Lambda function and Azure folder.
pub const NAME: &str = "close-open-ports";

/// The triggers it accepts, for `reflex functions`.
pub const TRIGGERS: &[&str] = &[
    "aws.cloudtrail/AuthorizeSecurityGroupIngress (EventBridge)",
    "aws.cloudtrail/ModifySecurityGroupRules (EventBridge)",
    "aws.config/restricted-ssh | restricted-common-ports | vpc-sg-open-only-to-authorized-ports (incl. securityhub-*)",
    "aws.events/Scheduled Event (sweep of every group in the region)",
];

/// Everything built once per cold start.
pub struct Deps {
    pub config: Config,
    pub groups: Arc<dyn SecurityGroups>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .field("notifiers", &self.notifiers.len())
            .finish()
    }
}

impl Deps {
    /// Reads the configuration from the environment and builds the clients.
    pub async fn from_env() -> Result<Self, reflex_core::ConfigError> {
        Self::from_lookup(&reflex_runtime::env_lookup).await
    }

    /// Reads the configuration from `env` and builds the AWS clients and notifiers.
    pub async fn from_lookup(env: &impl Lookup) -> Result<Self, reflex_core::ConfigError> {
        let config = Config::from_lookup(env)?;
        let sdk = reflex_aws::sdk_config().await;
        let groups = Arc::new(Ec2SecurityGroups::from_sdk(&sdk));
        let notifiers = config.notifiers(&sdk);
        Ok(Self {
            config,
            groups,
            notifiers,
        })
    }
}

/// Handles one payload: parse, re-read, decide, act, notify.
pub async fn handle(
    deps: &Deps,
    raw: &[u8],
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    let dry_run = deps.config.dry_run;
    let signal = match parse_ports_event(raw)? {
        Parsed::Ignored { trigger, reason } => {
            return Ok(Outcome::ignored(NAME, &trigger, dry_run, &reason));
        }
        Parsed::Signal(s) => *s,
    };

    // Re-read the cloud: never trust the event alone.
    let observed = match &signal.kind {
        SignalKind::IngressOpened { group_id, .. }
        | SignalKind::GroupNonCompliant { group_id, .. } => {
            deps.groups.describe(std::slice::from_ref(group_id)).await?
        }
        SignalKind::Sweep => deps.groups.all().await?,
    };

    let plan = decide(&signal, &deps.config.policy, &observed);
    let mut outcome = Outcome {
        function: NAME.into(),
        trigger: signal.trigger.clone(),
        dry_run,
        ignored: None,
        signal: None,
        policy: serde_json::to_value(&deps.config.policy).ok(),
        observed: Some(report::observed_summary(&signal, &observed)),
        actions: Vec::new(),
        notifications: Vec::new(),
    };
    if plan.is_empty() {
        outcome.ignored = Some(report::nothing_to_do(&signal, &observed));
    }
    outcome.actions = act(&plan, deps.groups.as_ref(), dry_run).await;

    if outcome.is_noteworthy() {
        let msg = message(&signal, &observed, &outcome);
        for n in &deps.notifiers {
            let record = n.send(&msg, invocation.deadline).await;
            outcome.notifications.push(record);
        }
    }
    outcome.signal = Some(signal);
    Ok(outcome)
}
