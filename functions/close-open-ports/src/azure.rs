//! close-open-ports on Azure: an Activity Log alert for an NSG (rule) write,
//! delivered by an action-group webhook. The payload carries no rule body, so the
//! NSG is re-read through ARM before anything is decided.

use std::time::Instant;

use async_trait::async_trait;
use reflex_azure::alerts;
use reflex_azure::{NetworkSecurityGroups, NsgRef};
use reflex_core::ids::ResourceId;
use reflex_core::{
    Action, Actor, AlertState, CloudError, HandleError, NsgState, Outcome, ParseError, Parsed,
    Plan, Signal, SignalKind,
};
use reflex_runtime::Invocation;
use serde_json::Value;

use crate::Deps;
use crate::act::{Executor, act, wrong_cloud};
use crate::decide::decide_nsg;
use crate::report::{Place, actor_name, rule_text};

const RULE_WRITE: &str = "microsoft.network/networksecuritygroups/securityrules/write";
const NSG_WRITE: &str = "microsoft.network/networksecuritygroups/write";

/// Turns an Azure Monitor alert into a signal, or says why it needs nothing.
pub fn parse(value: Value) -> Result<Parsed, ParseError> {
    let alert = alerts::parse(value)?;
    let ignored = |trigger: String, reason: String| Ok(Parsed::Ignored { trigger, reason });
    let Some(event) = alert.activity() else {
        return ignored(
            format!("azure.monitor/{}", alert.monitoring_service),
            format!(
                "'{}' alerts are not handled by close-open-ports: it takes Activity Log \
                 alerts for NSG rule writes",
                alert.monitoring_service
            ),
        );
    };
    let trigger = format!("azure.activitylog/{}", event.operation);
    let operation = event.operation.to_ascii_lowercase();
    if operation != RULE_WRITE && operation != NSG_WRITE {
        return ignored(
            trigger,
            format!(
                "operation {} is not an NSG write: close-open-ports takes \
                 Microsoft.Network/networkSecurityGroups[/securityRules]/write",
                event.operation
            ),
        );
    }
    if alert.state == AlertState::Resolved {
        return ignored(trigger, "the alert resolved; nothing to check".into());
    }
    if let Some(status) = event
        .status
        .as_deref()
        .filter(|s| !s.eq_ignore_ascii_case("Succeeded"))
    {
        return ignored(
            trigger,
            format!("the write's status is {status}: only Succeeded writes change rules"),
        );
    }
    let scope = event.scope.clone().unwrap_or_default();
    let bad_scope = || {
        ParseError::at(
            "authorization.scope",
            format!(
                "'{}' is not an NSG or NSG security-rule id",
                scope.escape_debug()
            ),
        )
    };
    let nsg = NsgRef::parse(&scope)
        .map_err(|e| ParseError::at("authorization.scope", e.to_string()))?
        .ok_or_else(bad_scope)?;
    if (operation == RULE_WRITE) != nsg.rule.is_some() {
        return Err(bad_scope());
    }
    Ok(Parsed::Signal(Box::new(Signal {
        trigger,
        event_id: event.correlation_id.clone().or_else(|| alert.id.clone()),
        account: Some(nsg.subscription.clone()),
        region: None,
        time: event.event_time.clone().or_else(|| alert.fired_at.clone()),
        actor: Some(Actor {
            arn: event.caller.clone(),
            source_ip: event.caller_ip.clone(),
            ..Actor::default()
        }),
        kind: SignalKind::NsgWritten {
            nsg_id: nsg.nsg_id(),
            rule_name: nsg.rule,
        },
    })))
}

/// Handles an NSG write: re-read the NSG through ARM, decide, delete, notify.
pub(crate) async fn handle(
    deps: &Deps,
    signal: Signal,
    nsg_id: &str,
    invocation: &Invocation,
) -> Result<Outcome, HandleError> {
    let reference = NsgRef::parse(nsg_id)
        .ok()
        .flatten()
        .ok_or_else(|| HandleError::Fatal(format!("{nsg_id} is not an NSG id")))?;
    let rid = reference
        .resource()
        .map_err(|e| HandleError::Fatal(e.to_string()))?;
    if let Some(why) = reflex_core::ids::outside_scopes(&deps.config.azure_scopes, &rid) {
        let mut outcome = crate::start(deps, &signal, serde_json::json!({}));
        outcome.ignored = Some(why);
        outcome.signal = Some(signal);
        return Ok(outcome);
    }
    let nsg = deps.nsgs.read(&reference, invocation.deadline).await?;
    let plan: Plan = decide_nsg(&signal, &deps.config.policy, nsg.as_ref());
    let observed = serde_json::json!({
        "nsg": nsg.as_ref().map(|n| serde_json::json!({
            "id": n.id, "name": n.name, "location": n.location, "tags": n.tags,
            "rules": n.rules.iter().map(reflex_core::NsgRule::to_json).collect::<Vec<_>>(),
        })),
    });
    let mut outcome = crate::start(deps, &signal, observed);
    if plan.is_empty() {
        outcome.ignored = Some(match &nsg {
            None => format!("{nsg_id} no longer exists"),
            Some(_) => "no rule opens a forbidden port to the world".into(),
        });
    }
    let executor = Nsgs(deps.nsgs.as_ref(), invocation.deadline);
    outcome.actions = act(&plan, &executor, deps.config.dry_run).await;
    let place = azure_place(&signal, nsg.as_ref(), &outcome);
    crate::finish(deps, signal, &place, outcome, invocation).await
}

/// Azure: delete NSG rules through ARM, within the invocation's deadline.
struct Nsgs<'a>(&'a dyn NetworkSecurityGroups, Instant);

#[async_trait]
impl Executor for Nsgs<'_> {
    async fn run(&self, action: &Action) -> Result<(), CloudError> {
        match action {
            Action::DeleteSecurityRule { rule, .. } => {
                let id = ResourceId::parse(&rule.id).map_err(|e| {
                    CloudError::new(
                        reflex_core::CloudErrorKind::Other,
                        "InvalidResourceId",
                        e.to_string(),
                    )
                })?;
                self.0.delete_rule(&id, self.1).await
            }
            _ => Err(wrong_cloud(action)),
        }
    }
}

/// The Azure place: the NSG as re-read, its portal link, and what the write was.
fn azure_place(signal: &Signal, nsg: Option<&NsgState>, outcome: &Outcome) -> Place {
    let who = actor_name(signal);
    let (nsg_id, rule_name) = match &signal.kind {
        SignalKind::NsgWritten { nsg_id, rule_name } => (nsg_id.clone(), rule_name.clone()),
        _ => (String::new(), None),
    };
    let reference = reflex_azure::NsgRef::parse(&nsg_id).ok().flatten();
    let name = nsg
        .map(|n| n.name.clone())
        .or_else(|| reference.as_ref().map(|r| r.name.clone()))
        .unwrap_or_else(|| nsg_id.clone());
    let label = match &reference {
        Some(r) => format!("{name} (resource group {})", r.resource_group),
        None => name,
    };
    let opened: Vec<String> = outcome
        .actions
        .iter()
        .map(|a| rule_text(&a.detail))
        .collect();
    let summary = match (&rule_name, opened.is_empty()) {
        (Some(rule), true) => format!("{who} wrote NSG rule {rule} on {label}."),
        (Some(_), false) => format!("{who} wrote {} on {label}.", opened.join(", ")),
        (None, _) => format!("{who} wrote NSG {label}."),
    };
    Place {
        labels: vec![(nsg_id, label)],
        region: nsg.and_then(|n| n.location.clone()),
        account_field: "Subscription",
        resource_field: "NSG",
        resources: "NSGs",
        link: reference.map(|r| r.portal_link()),
        summary,
    }
}
