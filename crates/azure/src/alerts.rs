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

#[derive(Deserialize, Default)]
#[serde(default)]
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
        Some("Microsoft.Insights/LogAlert") => legacy_log_in(env.data, "data"),
        Some(other) => Err(ParseError::at(
            "schemaId",
            format!(
                "unknown schema '{other}': expected {COMMON_SCHEMA}, AzureMonitorMetricAlert, \
                 Microsoft.Insights/activityLogs or Microsoft.Insights/LogAlert"
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

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct CommonData {
    essentials: Essentials,
    #[serde(default)]
    alert_context: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
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
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct MetricContext {
    condition_type: Text,
    #[serde(default)]
    condition: Option<MetricConditions>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct MetricConditions {
    #[serde(default)]
    all_of: Option<Vec<MetricCriterion>>,
    window_start_time: Text,
    window_end_time: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
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

#[derive(Deserialize, Default)]
#[serde(default)]
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct Table {
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    rows: Vec<Vec<Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Column {
    name: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
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
#[derive(Deserialize, Default)]
#[serde(default)]
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

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct LogV2Context {
    condition: LogV2Conditions,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct LogV2Conditions {
    #[serde(default)]
    all_of: Option<Vec<LogCriterion>>,
    window_start_time: Text,
    window_end_time: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct LogCriterion {
    search_query: Text,
    operator: Text,
    threshold: Text,
    time_aggregation: Text,
    metric_value: Text,
    #[serde(default)]
    dimensions: Option<Vec<Dimension>>,
    #[serde(rename = "linkToFilteredSearchResultsUI")]
    link_to_filtered_search_results_ui: Text,
    #[serde(rename = "linkToSearchResultsUI")]
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct Authorization {
    action: Text,
    scope: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
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
    properties: Option<BTreeMap<String, Value>>,
}

/// Property bags hold strings, numbers, and sometimes arrays or objects (Service
/// Health's test action sends `impactedServices` as a real array): scalars are kept
/// as text, structures as their JSON.
fn flatten(props: Option<BTreeMap<String, Value>>) -> BTreeMap<String, String> {
    props
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s,
                other => other.to_string(),
            };
            (!text.trim().is_empty()).then_some((k, text))
        })
        .collect()
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
        properties: flatten(a.properties),
    })
}

/// The caller's IP from the `claims` JSON string (`ipaddr`), if present.
fn claim_ip(claims: &str) -> Option<String> {
    let v: Value = serde_json::from_str(claims).ok()?;
    v.get("ipaddr")?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------- health

#[derive(Deserialize, Default)]
#[serde(default)]
struct HealthContext {
    #[serde(default)]
    properties: Option<BTreeMap<String, Value>>,
}

fn health_props(ctx: Value, at: &str) -> Result<BTreeMap<String, String>, ParseError> {
    if !ctx.is_object() {
        return Err(ParseError::at(at, "expected an object"));
    }
    let h: HealthContext = typed(ctx, at)?;
    Ok(flatten(h.properties))
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct LegacyMetricData {
    status: Text,
    context: LegacyMetricContext,
}

#[derive(Deserialize, Default)]
#[serde(default)]
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
    #[derive(Deserialize, Default)]
    #[serde(default)]
    #[serde(rename_all = "camelCase")]
    struct Classic {
        status: Text,
        context: ClassicContext,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
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
    #[derive(Deserialize, Default)]
    #[serde(default)]
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
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Data {
        status: Text,
        context: Ctx,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
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
    legacy_log_in(value, "")
}

/// The V1 log payload at `at`: top level (Log Analytics) or under `data`
/// (Application Insights, `schemaId: Microsoft.Insights/LogAlert`).
fn legacy_log_in(value: Value, at: &str) -> Result<Alert, ParseError> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
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
    if !value.is_object() {
        return Err(ParseError::at(at, "expected an object"));
    }
    let top: Top = typed(value.clone(), at)?;
    let key = if value.get("SearchResults").is_some() {
        "SearchResults"
    } else {
        "SearchResult"
    };
    let context = log_v1(value, at, key)?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture(case: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/azure")
            .join(case);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{case}: {e}"))
    }

    fn alert(case: &str) -> Alert {
        let v = fixture(case);
        assert!(
            is_azure_alert(&v),
            "{case} is not recognised as an Azure alert"
        );
        parse(v).unwrap_or_else(|e| panic!("{case}: {e}"))
    }

    fn kind(a: &Alert) -> &'static str {
        match &a.context {
            AlertContext::Metric { .. } => "metric",
            AlertContext::LogV1 { .. } => "log_v1",
            AlertContext::LogV2 { .. } => "log_v2",
            AlertContext::ActivityLog(_) => "activity_log",
            AlertContext::ServiceHealth(_) => "service_health",
            AlertContext::ResourceHealth(_) => "resource_health",
        }
    }

    #[test]
    fn every_fixture_parses_to_its_kind() {
        let cases = [
            (
                "common-alert-schema/metric-static.json",
                AlertSchema::AzureCommon,
                "metric",
            ),
            (
                "common-alert-schema/metric-dynamic.json",
                AlertSchema::AzureCommon,
                "metric",
            ),
            (
                "common-alert-schema/metric-webtest.json",
                AlertSchema::AzureCommon,
                "metric",
            ),
            (
                "common-alert-schema/log-alert-v1.json",
                AlertSchema::AzureCommon,
                "log_v1",
            ),
            (
                "common-alert-schema/log-alert-v1-application-insights.json",
                AlertSchema::AzureCommon,
                "log_v1",
            ),
            (
                "common-alert-schema/log-alert-v2.json",
                AlertSchema::AzureCommon,
                "log_v2",
            ),
            (
                "common-alert-schema/activity-log-administrative.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-nsg-write.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-nsg-rule-write-failed.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-nsg-rule-delete.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-security.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-policy.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/activity-log-autoscale.json",
                AlertSchema::AzureCommon,
                "activity_log",
            ),
            (
                "common-alert-schema/service-health.json",
                AlertSchema::AzureCommon,
                "service_health",
            ),
            (
                "common-alert-schema/resource-health.json",
                AlertSchema::AzureCommon,
                "resource_health",
            ),
            (
                "legacy/metric-alert-azuremonitormetricalert.json",
                AlertSchema::AzureLegacyMetric,
                "metric",
            ),
            (
                "legacy/metric-alert-classic.json",
                AlertSchema::AzureLegacyMetric,
                "metric",
            ),
            (
                "legacy/activity-log-microsoft-insights.json",
                AlertSchema::AzureLegacyActivityLog,
                "activity_log",
            ),
            (
                "legacy/log-alert-v1-no-schema-id.json",
                AlertSchema::AzureLegacyLog,
                "log_v1",
            ),
        ];
        for (case, schema, want) in cases {
            let a = alert(case);
            assert_eq!((a.schema, kind(&a)), (schema, want), "{case}");
            assert!(!a.rule.is_empty(), "{case}: no rule name");
        }
    }

    #[test]
    fn every_azure_fixture_is_covered() {
        // Monitor alerts only: events/azure/event-grid holds Event Grid deliveries.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/azure");
        let mut files = reflex_testkit::json_files(&root.join("common-alert-schema"));
        files.extend(reflex_testkit::json_files(&root.join("legacy")));
        assert!(files.len() >= 20, "found only {} fixtures", files.len());
        for f in files {
            let v: Value =
                serde_json::from_slice(&std::fs::read(&f).unwrap_or_default()).unwrap_or_default();
            let name = f.display().to_string();
            let parsed = parse(v);
            if name.ends_with("unknown-schema-id.json") {
                assert!(parsed.is_err(), "{name}");
            } else {
                assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
            }
        }
    }

    #[test]
    fn an_nsg_rule_write_carries_operation_scope_caller_and_ip() {
        let a = alert("common-alert-schema/activity-log-administrative.json");
        let e = a.activity().cloned().unwrap_or_default();
        assert_eq!(e.category, "Administrative");
        assert_eq!(
            e.operation,
            "Microsoft.Network/networkSecurityGroups/securityRules/write"
        );
        assert!(
            e.scope
                .unwrap_or_default()
                .ends_with("/securityRules/allow-ssh-any")
        );
        assert_eq!(e.caller.as_deref(), Some("alice@contoso.com"));
        assert_eq!(e.caller_ip.as_deref(), Some("203.0.113.24"));
        assert_eq!(e.status.as_deref(), Some("Succeeded"));
        assert_eq!(a.state, AlertState::Fired);
        assert_eq!(a.severity.as_deref(), Some("Sev4"));
    }

    #[test]
    fn the_legacy_activity_log_reads_the_same_fields() {
        let a = alert("legacy/activity-log-microsoft-insights.json");
        let e = a.activity().cloned().unwrap_or_default();
        assert_eq!(
            e.operation,
            "Microsoft.Network/networkSecurityGroups/securityRules/write"
        );
        assert!(
            e.scope
                .unwrap_or_default()
                .ends_with("/securityRules/allow-rdp-any")
        );
        assert!(e.caller.is_some());
    }

    #[test]
    fn log_v1_reads_the_lowercase_t_end_time_and_rows() {
        let a = alert("common-alert-schema/log-alert-v1.json");
        let AlertContext::LogV1 {
            interval_end,
            results,
            query,
            ..
        } = a.context
        else {
            panic!("not a V1 log alert");
        };
        assert!(
            interval_end.is_some(),
            "SearchIntervalEndtimeUtc was not read"
        );
        assert!(!query.is_empty());
        let r = results.unwrap_or_default();
        assert!(!r.columns.is_empty() && !r.rows.is_empty(), "{r:?}");
        let legacy = alert("legacy/log-alert-v1-no-schema-id.json");
        let AlertContext::LogV1 { results, .. } = legacy.context else {
            panic!("not a V1 log alert");
        };
        assert!(
            results.is_some_and(|r| !r.rows.is_empty()),
            "SearchResult rows"
        );
    }

    #[test]
    fn log_v2_has_dimensions_and_links_but_no_rows() {
        let a = alert("common-alert-schema/log-alert-v2.json");
        let AlertContext::LogV2 { conditions, .. } = a.context else {
            panic!("not a V2 log alert");
        };
        assert!(!conditions.is_empty());
        assert!(conditions[0].link.is_some());
        assert!(!conditions[0].dimensions.is_empty());
    }

    #[test]
    fn metric_thresholds_and_values_are_read_whatever_their_json_type() {
        let a = alert("common-alert-schema/metric-static.json");
        let AlertContext::Metric { conditions, .. } = a.context else {
            panic!("not a metric alert");
        };
        assert!(conditions[0].threshold.is_some() && conditions[0].value.is_some());
        let d = alert("common-alert-schema/metric-dynamic.json");
        let AlertContext::Metric { conditions, .. } = d.context else {
            panic!("not a metric alert");
        };
        assert!(conditions[0].sensitivity.is_some(), "alertSensitivity");
        let w = alert("common-alert-schema/metric-webtest.json");
        let AlertContext::Metric { conditions, .. } = w.context else {
            panic!("not a metric alert");
        };
        assert!(conditions[0].web_test.is_some(), "webTestName");
        let c = alert("legacy/metric-alert-classic.json");
        let AlertContext::Metric { conditions, .. } = c.context else {
            panic!("not a metric alert");
        };
        assert_eq!(conditions[0].value, Some(91.3725));
    }

    #[test]
    fn service_health_numbers_and_embedded_json_are_handled() {
        let a = alert("common-alert-schema/service-health.json");
        let AlertContext::ServiceHealth(h) = a.context else {
            panic!("not service health");
        };
        assert!(!h.title.is_empty());
        assert!(!h.services.is_empty(), "impactedServices was not decoded");
        let r = alert("common-alert-schema/resource-health.json");
        let AlertContext::ResourceHealth(h) = r.context else {
            panic!("not resource health");
        };
        assert!(h.current_status.is_some() && h.previous_status.is_some());
    }

    #[test]
    fn an_unknown_schema_id_is_an_error_naming_it() {
        let e = parse(fixture("common-alert-schema/unknown-schema-id.json"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("schemaId: unknown schema 'somethingElse'"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut v = fixture("common-alert-schema/activity-log-administrative.json");
        v["data"]["alertContext"]["authorization"]["scope"] = serde_json::json!({"x": 1});
        let e = parse(v).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            e,
            "data.alertContext.authorization.scope: expected a string or number, found an object"
        );
        let e = parse(serde_json::json!({"schemaId": COMMON_SCHEMA, "data": {"essentials": "x"}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("data.essentials: invalid type: string"),
            "{e}"
        );
        let e = parse(serde_json::json!({"schemaId": COMMON_SCHEMA, "data": "x"}))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("data: expected an object"));
    }

    #[test]
    fn non_alerts_are_not_recognised() {
        for v in [
            serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
            serde_json::json!([1, 2]),
            serde_json::json!({"status": "Activated"}),
        ] {
            assert!(!is_azure_alert(&v), "{v}");
        }
    }
}
