//! Azure Monitor alert payloads, as action groups deliver them to a webhook:
//! the common alert schema (every alertContext), and the legacy payloads
//! (`AzureMonitorMetricAlert`, `Microsoft.Insights/activityLogs`, and the Log
//! Analytics V1 webhook with no `schemaId`).
//!
//! Azure is loose with types across alert kinds (Service Health sends `level` and
//! `channels` as numbers; thresholds come as `"80"` or `80`), so scalar fields are
//! read as [`Text`], which takes a string, number or boolean. Structure is still
//! checked: an object where a string belongs is an error naming the field.

use std::collections::BTreeMap;

use reflex_core::ParseError;
use reflex_core::alert::{
    ActivityEvent, Alert, AlertContext, AlertSchema, AlertState, HealthNotice, LogCondition,
    MetricCondition, SearchResults,
};
use reflex_core::json::typed;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The common alert schema's id.
pub const COMMON_SCHEMA: &str = "azureMonitorCommonAlertSchema";

/// A scalar Azure sends as a string, number or boolean; `None` for null/absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self(None)),
            Value::String(s) => Ok(Self(Some(s))),
            Value::Number(n) => Ok(Self(Some(n.to_string()))),
            Value::Bool(b) => Ok(Self(Some(b.to_string()))),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or number, found {}",
                reflex_core::json::kind_of(&other)
            ))),
        }
    }
}

impl Text {
    fn get(self) -> Option<String> {
        self.0.filter(|s| !s.trim().is_empty())
    }
}

/// A number Azure may send as `31.1` or `"31.1"`.
fn number(t: Text) -> Option<f64> {
    t.0.and_then(|s| s.trim().parse().ok())
}

/// Whether the payload is an Azure Monitor alert in any schema this module reads
/// (including unknown `schemaId`s, which are then rejected by [`parse`]).
pub fn is_azure_alert(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    o.contains_key("schemaId")
        || (o.contains_key("AlertRuleName") && o.contains_key("SearchQuery"))
        || v.pointer("/context/portalLink").is_some()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    schema_id: Option<String>,
    #[serde(default)]
    data: Value,
}

/// Parses an Azure Monitor alert payload.
pub fn parse(value: Value) -> Result<Alert, ParseError> {
    if value.get("schemaId").is_none() {
        return if value.get("AlertRuleName").is_some() {
            legacy_log(value)
        } else {
            classic_metric(value)
        };
    }
    let env: Envelope = typed(value, "")?;
    match env.schema_id.as_deref() {
        Some(COMMON_SCHEMA) => common(env.data),
        Some("AzureMonitorMetricAlert") => legacy_metric(env.data),
        Some("Microsoft.Insights/activityLogs") => legacy_activity(env.data),
        Some(other) => Err(ParseError::at(
            "schemaId",
            format!(
                "unknown schema '{other}': expected {COMMON_SCHEMA}, AzureMonitorMetricAlert \
                 or Microsoft.Insights/activityLogs"
            ),
        )),
        None => Err(ParseError::at("schemaId", "is null")),
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

// ---------------------------------------------------------------- common schema

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommonData {
    essentials: Essentials,
    #[serde(default)]
    alert_context: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Essentials {
    alert_id: Text,
    alert_rule: Text,
    severity: Text,
    signal_type: Text,
    monitor_condition: Text,
    monitoring_service: Text,
    #[serde(default, rename = "alertTargetIDs")]
    alert_target_ids: Option<Vec<String>>,
    fired_date_time: Text,
    resolved_date_time: Text,
    description: Text,
}

fn common(data: Value) -> Result<Alert, ParseError> {
    if !data.is_object() {
        return Err(ParseError::at("data", "expected an object"));
    }
    let d: CommonData = typed(data, "data")?;
    let e = d.essentials;
    let service = e
        .monitoring_service
        .get()
        .ok_or_else(|| ParseError::at("data.essentials.monitoringService", "missing"))?;
    let signal = e.signal_type.get().unwrap_or_default();
    let ctx = d.alert_context;
    let at = "data.alertContext";
    let context = match (service.as_str(), signal.as_str()) {
        ("Log Analytics" | "Application Insights", _) => log_v1(ctx, at, "SearchResults")?,
        ("Log Alerts V2", _) => log_v2(ctx, at)?,
        ("ServiceHealth", _) => service_health(ctx, at)?,
        ("Resource Health", _) => resource_health(ctx, at)?,
        (s, _) if s.starts_with("Activity Log") => {
            AlertContext::ActivityLog(activity(ctx, at, category_of(s))?)
        }
        (_, "Log") if ctx.get("condition").is_some() => log_v2(ctx, at)?,
        _ => metric(ctx, at)?,
    };
    Ok(Alert {
        schema: AlertSchema::AzureCommon,
        id: e.alert_id.get(),
        rule: e.alert_rule.get().unwrap_or_default(),
        severity: e.severity.get(),
        state: state(e.monitor_condition.get().as_deref()),
        monitoring_service: service,
        targets: e.alert_target_ids.unwrap_or_default(),
        fired_at: e.fired_date_time.get(),
        resolved_at: e.resolved_date_time.get(),
        description: e.description.get(),
        context,
    })
}

/// `Activity Log - Administrative` → `Administrative`.
fn category_of(service: &str) -> &str {
    service.split_once(" - ").map_or(service, |(_, c)| c.trim())
}

fn state(condition: Option<&str>) -> AlertState {
    match condition.map(str::to_ascii_lowercase).as_deref() {
        Some("resolved" | "deactivated") => AlertState::Resolved,
        _ => AlertState::Fired,
    }
}

// ---------------------------------------------------------------- metric

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricContext {
    condition_type: Text,
    #[serde(default)]
    condition: Option<MetricConditions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricConditions {
    #[serde(default)]
    all_of: Option<Vec<MetricCriterion>>,
    window_start_time: Text,
    window_end_time: Text,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricCriterion {
    metric_name: Text,
    metric_namespace: Text,
    operator: Text,
    threshold: Text,
    time_aggregation: Text,
    #[serde(default)]
    dimensions: Option<Vec<Dimension>>,
    metric_value: Text,
    alert_sensitivity: Text,
    web_test_name: Text,
}

#[derive(Deserialize)]
struct Dimension {
    name: Text,
    value: Text,
}

fn dimensions(d: Option<Vec<Dimension>>) -> BTreeMap<String, String> {
    d.unwrap_or_default()
        .into_iter()
        .filter_map(|d| Some((d.name.get()?, d.value.0.unwrap_or_default())))
        .collect()
}

fn metric(ctx: Value, at: &str) -> Result<AlertContext, ParseError> {
    let m: MetricContext = if ctx.is_null() {
        MetricContext::default()
    } else {
        typed(ctx, at)?
    };
    let c = m.condition.unwrap_or_default();
    Ok(AlertContext::Metric {
        condition_type: m.condition_type.get().unwrap_or_default(),
        conditions: c
            .all_of
            .unwrap_or_default()
            .into_iter()
            .map(|c| MetricCondition {
                metric: c.metric_name.get().unwrap_or_default(),
                namespace: c.metric_namespace.get(),
                operator: c.operator.get(),
                threshold: c.threshold.get(),
                aggregation: c.time_aggregation.get(),
                value: number(c.metric_value),
                dimensions: dimensions(c.dimensions),
                sensitivity: c.alert_sensitivity.get(),
                web_test: c.web_test_name.get(),
            })
            .collect(),
        window_start: c.window_start_time.get(),
        window_end: c.window_end_time.get(),
    })
}

// ---------------------------------------------------------------- logs

#[derive(Deserialize)]
struct Table {
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    rows: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct Column {
    name: Text,
}

#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    tables: Vec<Table>,
}

fn results(v: Option<Value>, at: &str) -> Result<Option<SearchResults>, ParseError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let t: Tables = typed(v, at)?;
    let Some(first) = t.tables.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(SearchResults {
        columns: first
            .columns
            .into_iter()
            .map(|c| c.name.0.unwrap_or_default())
            .collect(),
        rows: first.rows,
    }))
}

/// Log Alerts V1 fields. Azure spells the end of the window
/// `SearchIntervalEndtimeUtc` (lower-case `t`), unlike its start.
#[derive(Deserialize)]
struct LogV1 {
    #[serde(rename = "SearchQuery")]
    query: Text,
    #[serde(rename = "SearchIntervalStartTimeUtc")]
    start: Text,
    #[serde(rename = "SearchIntervalEndtimeUtc")]
    end: Text,
    #[serde(rename = "ResultCount")]
    count: Text,
    #[serde(rename = "LinkToSearchResults")]
    link: Text,
}

fn log_v1(ctx: Value, at: &str, results_key: &str) -> Result<AlertContext, ParseError> {
    if !ctx.is_object() {
        return Err(ParseError::at(at, "expected an object"));
    }
    let rows = ctx.get(results_key).cloned();
    let l: LogV1 = typed(ctx, at)?;
    Ok(AlertContext::LogV1 {
        query: l.query.get().unwrap_or_default(),
        interval_start: l.start.get(),
        interval_end: l.end.get(),
        result_count: number(l.count).map(|n| n.max(0.0) as u64),
        link: l.link.get(),
        results: results(rows, &join(at, results_key))?,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogV2Context {
    condition: LogV2Conditions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogV2Conditions {
    #[serde(default)]
    all_of: Option<Vec<LogCriterion>>,
    window_start_time: Text,
    window_end_time: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogCriterion {
    search_query: Text,
    operator: Text,
    threshold: Text,
    time_aggregation: Text,
    metric_value: Text,
    #[serde(default)]
    dimensions: Option<Vec<Dimension>>,
    link_to_filtered_search_results_ui: Text,
    link_to_search_results_ui: Text,
}

fn log_v2(ctx: Value, at: &str) -> Result<AlertContext, ParseError> {
    let l: LogV2Context = typed(ctx, at)?;
    Ok(AlertContext::LogV2 {
        conditions: l
            .condition
            .all_of
            .unwrap_or_default()
            .into_iter()
            .map(|c| LogCondition {
                query: c.search_query.get().unwrap_or_default(),
                operator: c.operator.get(),
                threshold: c.threshold.get(),
                aggregation: c.time_aggregation.get(),
                value: number(c.metric_value),
                dimensions: dimensions(c.dimensions),
                link: c
                    .link_to_filtered_search_results_ui
                    .get()
                    .or_else(|| c.link_to_search_results_ui.get()),
            })
            .collect(),
        window_start: l.condition.window_start_time.get(),
        window_end: l.condition.window_end_time.get(),
    })
}

// ---------------------------------------------------------------- activity log

#[derive(Deserialize)]
struct Authorization {
    action: Text,
    scope: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityLog {
    #[serde(default)]
    authorization: Option<Authorization>,
    /// A JSON document in a string.
    claims: Text,
    caller: Text,
    correlation_id: Text,
    event_source: Text,
    event_timestamp: Text,
    level: Text,
    operation_name: Text,
    resource_id: Text,
    status: Text,
    sub_status: Text,
    #[serde(default)]
    properties: Option<BTreeMap<String, Text>>,
}

fn activity(ctx: Value, at: &str, category: &str) -> Result<ActivityEvent, ParseError> {
    if !ctx.is_object() {
        return Err(ParseError::at(at, "expected an object"));
    }
    let a: ActivityLog = typed(ctx, at)?;
    let (action, scope) = a
        .authorization
        .map_or((None, None), |z| (z.action.get(), z.scope.get()));
    let operation = action
        .or_else(|| a.operation_name.get())
        .ok_or_else(|| ParseError::at(format!("{at}.operationName"), "missing"))?;
    Ok(ActivityEvent {
        category: a
            .event_source
            .get()
            .filter(|s| s.parse::<f64>().is_err())
            .unwrap_or_else(|| category.to_string()),
        operation,
        scope: scope.or_else(|| a.resource_id.get()),
        caller: a.caller.get(),
        status: a.status.get(),
        sub_status: a.sub_status.get(),
        correlation_id: a.correlation_id.get(),
        event_time: a.event_timestamp.get(),
        level: a.level.get(),
        caller_ip: a.claims.get().as_deref().and_then(claim_ip),
        properties: a
            .properties
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.get()?)))
            .collect(),
    })
}

/// The caller's IP from the `claims` JSON string (`ipaddr`), if present.
fn claim_ip(claims: &str) -> Option<String> {
    let v: Value = serde_json::from_str(claims).ok()?;
    v.get("ipaddr")?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------- health

#[derive(Deserialize)]
struct HealthContext {
    #[serde(default)]
    properties: Option<BTreeMap<String, Text>>,
}

fn health_props(ctx: Value, at: &str) -> Result<BTreeMap<String, String>, ParseError> {
    if !ctx.is_object() {
        return Err(ParseError::at(at, "expected an object"));
    }
    let h: HealthContext = typed(ctx, at)?;
    Ok(h.properties
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.get()?)))
        .collect())
}

fn service_health(ctx: Value, at: &str) -> Result<AlertContext, ParseError> {
    let mut p = health_props(ctx, at)?;
    // `impactedServices` is a JSON array in a string.
    let impacted: Vec<Value> = p
        .get("impactedServices")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let services = impacted
        .iter()
        .filter_map(|s| s.get("ServiceName")?.as_str().map(str::to_string))
        .collect();
    let mut regions: Vec<String> = impacted
        .iter()
        .filter_map(|s| s.get("ImpactedRegions")?.as_array().cloned())
        .flatten()
        .filter_map(|r| r.get("RegionName")?.as_str().map(str::to_string))
        .collect();
    regions.sort();
    regions.dedup();
    Ok(AlertContext::ServiceHealth(HealthNotice {
        title: p.remove("title").unwrap_or_default(),
        details: p
            .remove("communication")
            .or_else(|| p.remove("defaultLanguageContent")),
        kind: p.remove("incidentType"),
        stage: p.remove("stage"),
        tracking_id: p.remove("trackingId"),
        services,
        regions,
        ..HealthNotice::default()
    }))
}

fn resource_health(ctx: Value, at: &str) -> Result<AlertContext, ParseError> {
    let mut p = health_props(ctx, at)?;
    Ok(AlertContext::ResourceHealth(HealthNotice {
        title: p.remove("title").unwrap_or_default(),
        details: p.remove("details"),
        kind: p.remove("type"),
        current_status: p.remove("currentHealthStatus"),
        previous_status: p.remove("previousHealthStatus"),
        cause: p.remove("cause"),
        ..HealthNotice::default()
    }))
}

// ---------------------------------------------------------------- legacy

#[derive(Deserialize)]
struct LegacyMetricData {
    status: Text,
    context: LegacyMetricContext,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMetricContext {
    id: Text,
    name: Text,
    description: Text,
    severity: Text,
    timestamp: Text,
    resource_id: Text,
}

/// `schemaId: AzureMonitorMetricAlert`: `data.context` carries the rule and the
/// same `condition.allOf` as the common schema's metric context.
fn legacy_metric(data: Value) -> Result<Alert, ParseError> {
    let ctx = data.get("context").cloned().unwrap_or(Value::Null);
    let d: LegacyMetricData = typed(data, "data")?;
    let c = d.context;
    Ok(Alert {
        schema: AlertSchema::AzureLegacyMetric,
        id: c.id.get(),
        rule: c.name.get().unwrap_or_default(),
        severity: c.severity.get().map(|s| format!("Sev{s}")),
        state: state(d.status.get().as_deref()),
        monitoring_service: "Platform".into(),
        targets: c.resource_id.get().into_iter().collect(),
        fired_at: c.timestamp.get(),
        resolved_at: None,
        description: c.description.get(),
        context: metric(ctx, "data.context")?,
    })
}

/// The classic metric alert webhook (no `schemaId`): `status` and `context` with a
/// single `condition`.
fn classic_metric(value: Value) -> Result<Alert, ParseError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Classic {
        status: Text,
        context: ClassicContext,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ClassicContext {
        id: Text,
        name: Text,
        description: Text,
        timestamp: Text,
        resource_id: Text,
        condition_type: Text,
        condition: Option<ClassicCondition>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ClassicCondition {
        metric_name: Text,
        operator: Text,
        threshold: Text,
        time_aggregation: Text,
        metric_value: Text,
    }
    let c: Classic = typed(value, "")?;
    let x = c.context;
    let conditions = x
        .condition
        .map(|k| MetricCondition {
            metric: k.metric_name.get().unwrap_or_default(),
            operator: k.operator.get(),
            threshold: k.threshold.get(),
            aggregation: k.time_aggregation.get(),
            value: number(k.metric_value),
            ..MetricCondition::default()
        })
        .into_iter()
        .collect();
    Ok(Alert {
        schema: AlertSchema::AzureLegacyMetric,
        id: x.id.get(),
        rule: x.name.get().unwrap_or_default(),
        severity: None,
        state: state(c.status.get().as_deref()),
        monitoring_service: "Platform".into(),
        targets: x.resource_id.get().into_iter().collect(),
        fired_at: x.timestamp.get(),
        resolved_at: None,
        description: x.description.get(),
        context: AlertContext::Metric {
            condition_type: x.condition_type.get().unwrap_or_else(|| "Metric".into()),
            conditions,
            window_start: None,
            window_end: None,
        },
    })
}

/// `schemaId: Microsoft.Insights/activityLogs`: `data.context.activityLog`.
fn legacy_activity(data: Value) -> Result<Alert, ParseError> {
    #[derive(Deserialize)]
    struct Data {
        status: Text,
        context: Ctx,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ctx {
        activity_log: Value,
    }
    let d: Data = typed(data, "data")?;
    let log = d.context.activity_log;
    let description = log
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    let event = activity(log, "data.context.activityLog", "Administrative")?;
    let rule = format!("activity log: {}", event.operation);
    Ok(Alert {
        schema: AlertSchema::AzureLegacyActivityLog,
        id: event.correlation_id.clone(),
        rule,
        severity: None,
        state: state(d.status.get().as_deref()),
        monitoring_service: format!("Activity Log - {}", event.category),
        targets: event.scope.clone().into_iter().collect(),
        fired_at: event.event_time.clone(),
        resolved_at: None,
        description,
        context: AlertContext::ActivityLog(event),
    })
}

/// The Log Analytics V1 webhook: no `schemaId`, fields at the top level, and the
/// rows under `SearchResult` (singular).
fn legacy_log(value: Value) -> Result<Alert, ParseError> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(rename = "AlertRuleName")]
        rule: Text,
        #[serde(rename = "Severity")]
        severity: Text,
        #[serde(rename = "Description")]
        description: Text,
        #[serde(rename = "WorkspaceId")]
        workspace: Text,
        #[serde(rename = "ResourceId")]
        resource: Text,
    }
    let top: Top = typed(value.clone(), "")?;
    let context = log_v1(value, "", "SearchResult")?;
    let fired_at = match &context {
        AlertContext::LogV1 { interval_end, .. } => interval_end.clone(),
        _ => None,
    };
    Ok(Alert {
        schema: AlertSchema::AzureLegacyLog,
        id: None,
        rule: top.rule.get().unwrap_or_default(),
        severity: top.severity.get(),
        state: AlertState::Fired,
        monitoring_service: "Log Analytics".into(),
        targets: top
            .resource
            .get()
            .or_else(|| top.workspace.get())
            .into_iter()
            .collect(),
        fired_at,
        resolved_at: None,
        description: top.description.get(),
        context,
    })
}
