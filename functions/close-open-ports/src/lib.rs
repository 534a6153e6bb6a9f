//! `close-open-ports`: someone opens SSH or RDP to the world, and within seconds
//! exactly that rule is gone and the team has a clear message.
//!
//! parse ([`reflex_aws::events`]) → [`decide`] (pure) → [`act`] → notify → outcome.

mod act;
#[cfg(feature = "azure")]
mod azure;
mod config;
mod decide;
mod report;

use std::sync::Arc;

use reflex_aws::LazySdk;
use reflex_aws::ec2::{LazyEc2, SecurityGroups};
use reflex_core::json::parse_json;
use reflex_core::settings::Lookup;
use reflex_core::{HandleError, Outcome, ParseError, Parsed, Signal, SignalKind};
use reflex_notify::Notifier;
use reflex_runtime::Invocation;
use serde_json::Value;

pub use act::{Executor, act};
pub use config::Config;
pub use decide::{decide, decide_nsg};
pub use report::{Place, message};

/// The function's name: crate, binary, Lambda function and Azure folder.
pub const NAME: &str = "close-open-ports";

/// The triggers it accepts, for `reflex functions`.
pub const TRIGGERS: &[&str] = &[
    "aws.cloudtrail/AuthorizeSecurityGroupIngress (EventBridge)",
    "aws.cloudtrail/ModifySecurityGroupRules (EventBridge)",
    "aws.config/restricted-ssh | restricted-common-ports | vpc-sg-open-only-to-authorized-ports (incl. securityhub-*)",
    "aws.events/Scheduled Event (sweep of every group in the region)",
    #[cfg(feature = "azure")]
    "azure.activitylog/Microsoft.Network/networkSecurityGroups[/securityRules]/write (action-group webhook)",
];

/// Everything built once per cold start. Cloud clients connect on first use, so the
/// Azure host never loads the AWS SDK chain and Lambda never asks for an Azure token.
pub struct Deps {
    pub config: Config,
    pub groups: Arc<dyn SecurityGroups>,
    #[cfg(feature = "azure")]
    pub nsgs: Arc<dyn reflex_azure::NetworkSecurityGroups>,
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

    /// Reads the configuration from `env` and builds the clients and notifiers.
    pub async fn from_lookup(env: &impl Lookup) -> Result<Self, reflex_core::ConfigError> {
        let config = Config::from_lookup(env)?;
        let sdk = LazySdk::default();
        #[cfg(feature = "azure")]
        let nsgs = Arc::new(reflex_azure::ArmNsgs::new(
            reflex_azure::ArmClient::from_lookup(env)?,
        ));
        let notifiers = config.reporting.notifiers(&sdk).await;
        Ok(Self {
            config,
            groups: Arc::new(LazyEc2::new(sdk)),
            #[cfg(feature = "azure")]
            nsgs,
            notifiers,
        })
    }
}

#[async_trait::async_trait]
impl reflex_runtime::Function for Deps {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, raw: &[u8], invocation: &Invocation) -> Result<Outcome, HandleError> {
        handle(self, raw, invocation).await
    }
}

/// Parses any payload the function accepts: AWS (EventBridge) or Azure (Monitor
/// alert webhooks), recognised from the payload itself.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    let value = parse_json(raw)?;
    #[cfg(feature = "azure")]
    if reflex_azure::alerts::is_azure_alert(&value) {
        return azure::parse(value);
    }
    reflex_aws::events::parse_ports_value(&value)
}

/// Handles one payload: parse, re-read, decide, act, notify.
pub async fn handle(
    deps: &Deps,
    raw: &[u8],
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    let dry_run = deps.config.dry_run;
    let signal = match parse(raw)? {
        Parsed::Ignored { trigger, reason } => {
            return Ok(Outcome::ignored(NAME, &trigger, dry_run, &reason));
        }
        Parsed::Signal(s) => *s,
    };
    #[cfg(feature = "azure")]
    if let SignalKind::NsgWritten { nsg_id, .. } = &signal.kind {
        return azure::handle(deps, signal.clone(), nsg_id, invocation).await;
    }

    // Re-read the cloud: never trust the event alone.
    let observed = match &signal.kind {
        SignalKind::IngressOpened { group_id, .. }
        | SignalKind::GroupNonCompliant { group_id, .. } => {
            deps.groups.describe(std::slice::from_ref(group_id)).await?
        }
        _ => deps.groups.all().await?,
    };
    let plan = decide(&signal, &deps.config.policy, &observed);
    let mut outcome = start(deps, &signal, report::observed_summary(&signal, &observed));
    if plan.is_empty() {
        outcome.ignored = Some(report::nothing_to_do(&signal, &observed));
    }
    outcome.actions = act(&plan, &act::Ec2(deps.groups.as_ref()), dry_run).await;
    let place = report::aws_place(&signal, &observed);
    finish(deps, signal, &place, outcome, invocation).await
}

pub(crate) fn start(deps: &Deps, signal: &Signal, observed: Value) -> Outcome {
    Outcome {
        function: NAME.into(),
        trigger: signal.trigger.clone(),
        dry_run: deps.config.dry_run,
        ignored: None,
        signal: None,
        policy: serde_json::to_value(&deps.config.policy).ok(),
        observed: Some(observed),
        notices: Vec::new(),
        actions: Vec::new(),
        notifications: Vec::new(),
        validation_response: None,
        drain: None,
    }
}

/// Notifies when something was done, planned or failed, and records each delivery.
pub(crate) async fn finish(
    deps: &Deps,
    signal: Signal,
    place: &Place,
    mut outcome: Outcome,
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    if outcome.is_noteworthy() {
        let msg = message(&signal, place, &outcome);
        for n in &deps.notifiers {
            let record = n.send(&msg, invocation.deadline).await;
            outcome.notifications.push(record);
        }
    }
    outcome.signal = Some(signal);
    Ok(outcome)
}
