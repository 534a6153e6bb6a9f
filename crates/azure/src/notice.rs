//! Azure Monitor alerts (every common-schema context and the legacy payloads) as
//! notices for `alert-to-slack`.

use reflex_core::alert::{Alert, AlertContext, AlertState, HealthNotice, MetricCondition};
use reflex_core::notice::url_encode;
use reflex_core::{Level, Link, Notice, NoticeKind, NoticeState};

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/…/{name}` → its parts.
fn resource_parts(id: &str) -> (Option<String>, Option<String>, Option<String>) {
    let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let after = |key: &str| {
        segs.iter()
            .position(|s| s.eq_ignore_ascii_case(key))
            .and_then(|i| segs.get(i + 1))
            .map(|s| (*s).to_string())
    };
    let name = (segs.len() > 2)
        .then(|| segs.last().map(|s| (*s).to_string()))
        .flatten();
    (after("subscriptions"), after("resourceGroups"), name)
}

fn metric_text(c: &MetricCondition) -> String {
    let mut s = c.metric.clone();
    if let Some(a) = &c.aggregation {
        s.push_str(&format!(" ({a})"));
    }
    if let (Some(op), Some(t)) = (&c.operator, &c.threshold) {
        s.push_str(&format!(" {op} {t}"));
    } else if let Some(sens) = &c.sensitivity {
        s.push_str(&format!(" dynamic threshold, {sens} sensitivity"));
    }
    if let Some(v) = c.value {
        s.push_str(&format!(": value {v}"));
    }
    if !c.dimensions.is_empty() {
        let dims: Vec<String> = c
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" [{}]", dims.join(", ")));
    }
    s
}

fn health_fields(n: &mut Notice, h: &HealthNotice) {
    n.field("Type", h.kind.clone());
    n.field("Stage", h.stage.clone());
    n.field("Tracking id", h.tracking_id.clone());
    n.field(
        "Services",
        (!h.services.is_empty()).then(|| h.services.join(", ")),
    );
    n.field(
        "Regions",
        (!h.regions.is_empty()).then(|| h.regions.join(", ")),
    );
    n.field(
        "Health",
        h.current_status.as_ref().map(|c| match &h.previous_status {
            Some(p) => format!("{p} → {c}"),
            None => c.clone(),
        }),
    );
    n.field("Cause", h.cause.clone());
}

/// The notice for an alert. `delivery` is the payload's own identity when the alert
/// has no id (legacy schemas).
pub fn notice(alert: &Alert) -> Notice {
    let target = alert.targets.first().cloned();
    let (subscription, group, name) = target.as_deref().map(resource_parts).unwrap_or_default();
    let activity = alert.activity();
    let state = match (&alert.context, alert.state) {
        (AlertContext::ActivityLog(_), _) => NoticeState::Event,
        (_, AlertState::Resolved) => NoticeState::Resolved,
        (_, AlertState::Fired) => NoticeState::Firing,
    };
    let title = match (activity, state) {
        (Some(a), _) => match &a.caller {
            Some(c) => format!("{}: {} by {c}", alert.rule, a.operation),
            None => format!("{}: {}", alert.rule, a.operation),
        },
        (None, NoticeState::Resolved) => format!("{} resolved", alert.rule),
        (None, _) => format!("{} fired", alert.rule),
    };
    let condition = match alert.state {
        AlertState::Fired => "Fired",
        AlertState::Resolved => "Resolved",
    };
    let identity = alert
        .id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", alert.rule, alert.targets.join(",")));
    let context_kind = match &alert.context {
        AlertContext::Metric { .. } => "metric",
        AlertContext::LogV1 { .. } => "log",
        AlertContext::LogV2 { .. } => "log",
        AlertContext::ActivityLog(_) => "activity-log",
        AlertContext::ServiceHealth(_) => "service-health",
        AlertContext::ResourceHealth(_) => "resource-health",
    };
    let mut n = Notice::new(
        NoticeKind::AzureAlert,
        format!("azure.monitor/{context_kind}"),
        Level::from_azure(alert.severity.as_deref()),
        state,
        title,
        format!(
            "azure:{identity}:{condition}:{}",
            alert.fired_at.clone().unwrap_or_default()
        ),
    );
    n.place = match (&name, &group) {
        (Some(r), Some(g)) => Some(format!("{r} in {g}")),
        (r, g) => r.clone().or(g.clone()),
    };
    n.account.clone_from(&subscription);
    n.resource.clone_from(&target);
    n.field("Subscription", subscription);
    n.field("Resource group", group);
    n.field("Resource", name);
    n.field("Severity", alert.severity.clone());
    n.field("Monitoring service", Some(alert.monitoring_service.clone()));
    let mut reason = alert.description.clone().into_iter().collect::<Vec<_>>();
    match &alert.context {
        AlertContext::Metric { conditions, .. } => {
            for c in conditions {
                n.field("Condition", Some(metric_text(c)));
            }
        }
        AlertContext::LogV1 {
            query,
            result_count,
            link,
            ..
        } => {
            n.field("Results", result_count.map(|c| c.to_string()));
            reason.push(format!("Query: {query}"));
            if let Some(l) = link {
                n.links.push(Link::new("Log search", l.clone()));
            }
        }
        AlertContext::LogV2 { conditions, .. } => {
            for c in conditions {
                let mut text = format!(
                    "{} {}",
                    c.operator.as_deref().unwrap_or_default(),
                    c.threshold.as_deref().unwrap_or_default()
                );
                if let Some(v) = c.value {
                    text.push_str(&format!(": value {v}"));
                }
                n.field("Condition", Some(text.trim().to_string()));
                reason.push(format!("Query: {}", c.query));
                if let Some(l) = &c.link {
                    n.links.push(Link::new("Log search", l.clone()));
                }
            }
        }
        AlertContext::ActivityLog(a) => {
            n.field("Caller", a.caller.clone());
            n.field("Operation", Some(a.operation.clone()));
            n.field("Status", a.status.clone());
            n.field("Category", Some(a.category.clone()));
            n.field("Caller IP", a.caller_ip.clone());
            n.field("Scope", a.scope.clone());
        }
        AlertContext::ServiceHealth(h) | AlertContext::ResourceHealth(h) => {
            health_fields(&mut n, h);
            if !h.title.is_empty() {
                reason.push(h.title.clone());
            }
            reason.extend(h.details.clone());
        }
    }
    n.field("Fired at", alert.fired_at.clone());
    n.field("Resolved at", alert.resolved_at.clone());
    n.reason = (!reason.is_empty()).then(|| reason.join("\n\n"));
    if let Some(id) = &alert.id {
        n.links.push(Link::new(
            "Open in the portal",
            format!(
                "https://portal.azure.com/#blade/Microsoft_Azure_Monitoring/AlertDetailsTemplateBlade/alertId/{}",
                url_encode(id)
            ),
        ));
    } else if let Some(t) = target
        .as_deref()
        .and_then(|t| reflex_core::ids::ResourceId::parse(t).ok())
    {
        // Only a well-formed id goes into the link, rebuilt from its parts.
        n.links.push(Link::new(
            "Open resource",
            format!("https://portal.azure.com/#resource{t}"),
        ));
    }
    // Service Health incidents keep one tracking id across every update.
    let thread = match &alert.context {
        AlertContext::ServiceHealth(h) => h.tracking_id.clone().unwrap_or(identity),
        AlertContext::ActivityLog(_) => {
            n.at = alert.fired_at.clone();
            return n;
        }
        _ => identity,
    };
    n.thread_key = Some(format!("azure:{thread}"));
    n.at = alert.resolved_at.clone().or(alert.fired_at.clone());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_split_into_subscription_group_and_name() {
        let (s, g, n) = resource_parts(
            "/subscriptions/00000000-1111/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-1",
        );
        assert_eq!(s.as_deref(), Some("00000000-1111"));
        assert_eq!(g.as_deref(), Some("rg-web"));
        assert_eq!(n.as_deref(), Some("vm-1"));
        assert_eq!(
            resource_parts("/subscriptions/x"),
            (Some("x".into()), None, None)
        );
    }
}
