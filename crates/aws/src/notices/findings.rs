//! AWS Config compliance changes, AWS Health events and GuardDuty findings.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::ids::aws_console;
use reflex_core::notice::url_encode;
use reflex_core::{Level, Link, Notice, NoticeKind, NoticeState, Noticed, ParseError};
use serde::Deserialize;
use serde_json::Value;

use super::{delivery_key, text_of};
use crate::events::config::Detail as ConfigDetail;
use crate::events::typed;

/// A Config rule compliance change: non-compliance fires, compliance resolves, both
/// in the thread of (rule, resource).
pub fn config(env: &EventBridgeEvent<Value>) -> Result<Noticed, ParseError> {
    let d: ConfigDetail = typed(env.detail.clone(), "detail")?;
    let Some(new) = d.new_evaluation_result else {
        return Err(ParseError::at("detail.newEvaluationResult", "missing"));
    };
    let now = new.compliance_type.as_deref().unwrap_or("UNKNOWN");
    let before = d
        .old_evaluation_result
        .as_ref()
        .and_then(|e| e.compliance_type.as_deref());
    let trigger = format!("aws.config/{}", d.config_rule_name);
    let resource = format!(
        "{} {}",
        d.resource_type.as_deref().unwrap_or_default(),
        d.resource_id.as_deref().unwrap_or("(unknown resource)")
    )
    .trim()
    .to_string();
    let state = match (now, before) {
        ("NON_COMPLIANT", _) => NoticeState::Firing,
        ("COMPLIANT" | "NOT_APPLICABLE", Some("NON_COMPLIANT")) => NoticeState::Resolved,
        _ => {
            return Ok(Noticed::Ignored {
                trigger,
                reason: format!(
                    "{resource} is {now} under {} (was {}): nothing to report",
                    d.config_rule_name,
                    before.unwrap_or("not evaluated")
                ),
            });
        }
    };
    let title = match state {
        NoticeState::Firing => format!("Non-compliant: {}", d.config_rule_name),
        _ => format!("Compliant again: {}", d.config_rule_name),
    };
    let account = d.aws_account_id.clone().or_else(|| env.account.clone());
    let region = d.aws_region.clone().or_else(|| env.region.clone());
    let mut n = Notice::new(
        NoticeKind::Config,
        trigger,
        Level::Warning,
        state,
        title,
        delivery_key(env, "config"),
    );
    n.place = Some(match &region {
        Some(r) => format!("{resource} in {r}"),
        None => resource.clone(),
    });
    n.account.clone_from(&account);
    n.region.clone_from(&region);
    n.resource = Some(resource.clone());
    n.field("Account", account.clone());
    n.field("Region", region.clone());
    n.field("Resource", Some(resource.clone()));
    n.field("Rule", Some(d.config_rule_name.clone()));
    n.field(
        "Compliance",
        Some(match before {
            Some(b) => format!("{b} → {now}"),
            None => now.to_string(),
        }),
    );
    n.field("Recorded at", new.result_recorded_time.clone());
    n.reason = new.annotation.clone();
    if let Some(url) = region.as_deref().and_then(|r| {
        aws_console(
            r,
            "config/home",
            &format!(
                "/rules/details?configRuleName={}",
                url_encode(&d.config_rule_name)
            ),
        )
    }) {
        n.links.push(Link::new("Open rule", url));
    }
    n.thread_key = Some(format!(
        "config:{}:{}:{}:{resource}",
        account.unwrap_or_default(),
        region.unwrap_or_default(),
        d.config_rule_name
    ));
    n.at = new.result_recorded_time;
    Ok(Noticed::Notice(Box::new(n)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthDetail {
    event_arn: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    event_type_code: Option<String>,
    #[serde(default)]
    event_type_category: Option<String>,
    #[serde(default)]
    status_code: Option<String>,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    #[serde(default)]
    last_updated_time: Option<String>,
    #[serde(default)]
    event_region: Option<String>,
    #[serde(default)]
    event_description: Vec<Description>,
    #[serde(default)]
    affected_entities: Vec<Entity>,
    #[serde(default)]
    affected_account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    latest_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entity {
    #[serde(default)]
    entity_value: Option<String>,
}

/// An AWS Health event: open/upcoming fire, closed resolves, updates thread.
pub fn health(env: &EventBridgeEvent<Value>) -> Result<Noticed, ParseError> {
    let d: HealthDetail = typed(env.detail.clone(), "detail")?;
    let code = d
        .event_type_code
        .clone()
        .unwrap_or_else(|| "AWS Health event".into());
    let status = d.status_code.as_deref().unwrap_or("open");
    let state = if status == "closed" {
        NoticeState::Resolved
    } else {
        NoticeState::Firing
    };
    let level = match d.event_type_category.as_deref() {
        Some("issue") => Level::Error,
        Some("scheduledChange" | "investigation") => Level::Warning,
        _ => Level::Info,
    };
    let service = d.service.clone().unwrap_or_else(|| "AWS".into());
    let title = match state {
        NoticeState::Resolved => format!("{service}: {code} closed"),
        _ => format!("{service}: {code}"),
    };
    let account = d.affected_account.clone().or_else(|| env.account.clone());
    let region = d.event_region.clone().or_else(|| env.region.clone());
    let entities: Vec<String> = d
        .affected_entities
        .iter()
        .filter_map(|e| e.entity_value.clone())
        .collect();
    let mut n = Notice::new(
        NoticeKind::Health,
        format!("aws.health/{code}"),
        level,
        state,
        title,
        delivery_key(env, "health"),
    );
    n.place = region.clone();
    n.account.clone_from(&account);
    n.region.clone_from(&region);
    n.resource = (!entities.is_empty()).then(|| entities.join(", "));
    n.field("Account", account);
    n.field("Region", region);
    n.field("Service", d.service.clone());
    n.field("Category", d.event_type_category.clone());
    n.field("Status", Some(status.to_string()));
    n.field("Affected", n.resource.clone());
    n.field("Starts", d.start_time.clone());
    n.field("Ends", d.end_time.clone());
    n.reason = d
        .event_description
        .iter()
        .find(|e| e.language.as_deref().is_none_or(|l| l.starts_with("en")))
        .or(d.event_description.first())
        .and_then(|e| e.latest_description.clone());
    n.links.push(Link::new(
        "Open in AWS Health",
        format!(
            "https://health.console.aws.amazon.com/health/home#/account/event-log?eventID={}&eventTab=details",
            url_encode(&d.event_arn)
        ),
    ));
    n.thread_key = Some(format!(
        "health:{}:{}",
        n.account.clone().unwrap_or_default(),
        d.event_arn
    ));
    n.at = d.last_updated_time.or(d.start_time);
    Ok(Noticed::Notice(Box::new(n)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    severity: f64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    resource: Option<Value>,
    #[serde(default)]
    service: Option<Value>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// GuardDuty's bands: 9.0-10.0 critical, 7.0-8.9 high, 4.0-6.9 medium, below low.
fn finding_level(severity: f64) -> (Level, &'static str) {
    if severity >= 9.0 {
        (Level::Critical, "Critical")
    } else if severity >= 7.0 {
        (Level::Error, "High")
    } else if severity >= 4.0 {
        (Level::Warning, "Medium")
    } else {
        (Level::Info, "Low")
    }
}

/// The resource a finding is about: an instance, an access key, a bucket, …
fn finding_resource(r: &Value) -> Option<String> {
    let kind = r.get("resourceType").and_then(text_of);
    let id = r
        .pointer("/instanceDetails/instanceId")
        .or_else(|| r.pointer("/accessKeyDetails/userName"))
        .or_else(|| r.pointer("/accessKeyDetails/accessKeyId"))
        .or_else(|| r.pointer("/s3BucketDetails/0/name"))
        .or_else(|| r.pointer("/eksClusterDetails/name"))
        .and_then(text_of);
    match (kind, id) {
        (Some(k), Some(i)) => Some(format!("{k} {i}")),
        (k, i) => k.or(i),
    }
}

/// A GuardDuty finding: one thread per finding id; updates (count increases) and
/// archiving go into it.
pub fn guardduty(env: &EventBridgeEvent<Value>) -> Result<Noticed, ParseError> {
    let f: Finding = typed(env.detail.clone(), "detail")?;
    let (level, band) = finding_level(f.severity);
    let service = f.service.as_ref();
    let archived = service
        .and_then(|s| s.get("archived"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let state = if archived {
        NoticeState::Resolved
    } else {
        NoticeState::Firing
    };
    let region = f.region.clone().or_else(|| env.region.clone());
    let account = f.account_id.clone().or_else(|| env.account.clone());
    let resource = f.resource.as_ref().and_then(finding_resource);
    let title = f.title.clone().unwrap_or_else(|| f.kind.clone());
    let mut n = Notice::new(
        NoticeKind::Guardduty,
        format!("aws.guardduty/{}", f.kind),
        level,
        state,
        if archived {
            format!("Archived: {title}")
        } else {
            title
        },
        delivery_key(env, "guardduty"),
    );
    n.place = match (&resource, &region) {
        (Some(r), Some(g)) => Some(format!("{r} in {g}")),
        (r, g) => r.clone().or(g.clone()),
    };
    n.account.clone_from(&account);
    n.region.clone_from(&region);
    n.resource.clone_from(&resource);
    n.field("Account", account);
    n.field("Region", region.clone());
    n.field("Resource", resource);
    n.field("Finding type", Some(f.kind.clone()));
    n.field("Severity", Some(format!("{band} ({})", f.severity)));
    let remote = service.and_then(|s| {
        [
            "/action/networkConnectionAction/remoteIpDetails/ipAddressV4",
            "/action/awsApiCallAction/remoteIpDetails/ipAddressV4",
            "/action/portProbeAction/portProbeDetails/0/remoteIpDetails/ipAddressV4",
        ]
        .iter()
        .find_map(|p| s.pointer(p).and_then(text_of))
    });
    n.field("Remote IP", remote);
    n.field(
        "Count",
        service.and_then(|s| s.get("count")).and_then(text_of),
    );
    n.field(
        "Last seen",
        service
            .and_then(|s| s.get("eventLastSeen"))
            .and_then(text_of),
    );
    n.reason = f.description.clone();
    if let Some(url) = region.as_deref().and_then(|r| {
        aws_console(
            r,
            "guardduty/home",
            &format!("/findings?macros=current&fId={}", url_encode(&f.id)),
        )
    }) {
        n.links.push(Link::new("Open finding", url));
    }
    n.thread_key = Some(format!("guardduty:{}", f.id));
    n.at = f.updated_at;
    Ok(Noticed::Notice(Box::new(n)))
}
