//! close-open-ports on Azure: an Activity Log alert for an NSG (rule) write,
//! delivered by an action-group webhook. The payload carries no rule body, so the
//! NSG is re-read through ARM before anything is decided.

use reflex_azure::NsgRef;
use reflex_azure::alerts;
use reflex_core::{Actor, AlertState, ParseError, Parsed, Signal, SignalKind};
use serde_json::Value;

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
            format!("'{scope}' is not an NSG or NSG security-rule id"),
        )
    };
    let nsg = NsgRef::parse(&scope).ok_or_else(bad_scope)?;
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
