//! CloudWatch alarm state changes, from SNS (alarm actions) and from EventBridge.
//!
//! The two shapes differ: SNS sends PascalCase fields, the Region as a display name,
//! `StateChangeTime` with a `+0000` offset and dimensions as `[{"value", "name"}]`
//! (lowercase keys); EventBridge sends camelCase, dimensions as an object map, and
//! the threshold and datapoints only inside `state.reasonData`, a JSON *string*.

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::notice::url_encode;
use reflex_core::{Level, Link, Notice, NoticeKind, NoticeState, ParseError};
use serde::Deserialize;
use serde_json::Value;

use super::region;
use crate::events::typed;

/// The JSON CloudWatch publishes to SNS for an alarm action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarm {
    alarm_name: String,
    #[serde(default)]
    alarm_description: Option<String>,
    #[serde(default, rename = "AWSAccountId")]
    aws_account_id: Option<String>,
    new_state_value: String,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default)]
    state_change_time: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default)]
    old_state_value: Option<String>,
    #[serde(default)]
    trigger: Option<SnsTrigger>,
    /// Composite alarms: the rule over child alarms.
    #[serde(default)]
    alarm_rule: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsTrigger {
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    statistic: Option<String>,
    #[serde(default)]
    extended_statistic: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    dimensions: Dimensions,
    #[serde(default)]
    period: Option<f64>,
    #[serde(default)]
    comparison_operator: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
    /// Metric math: the expression and the metrics it reads.
    #[serde(default)]
    metrics: Vec<AlarmMetric>,
}

/// Dimensions: SNS sends `[{"name", "value"}]` (lowercase keys), EventBridge an
/// object map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Dimensions {
    List(Vec<Dimension>),
    Map(BTreeMap<String, String>),
}

impl Default for Dimensions {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl Dimensions {
    fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Self::List(l) => l
                .iter()
                .map(|d| (d.name.clone(), d.value.clone()))
                .collect(),
            Self::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Dimension {
    name: String,
    value: String,
}

/// One entry of an alarm's metrics (metric math), in either casing: SNS sends
/// PascalCase (`MetricStat.Metric.MetricName`), EventBridge camelCase
/// (`metricStat.metric.name`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmMetric {
    #[serde(default, alias = "Id")]
    id: Option<String>,
    #[serde(default, alias = "Expression")]
    expression: Option<String>,
    #[serde(default, alias = "Label")]
    label: Option<String>,
    #[serde(default, alias = "ReturnData")]
    return_data: Option<bool>,
    #[serde(default, alias = "MetricStat")]
    metric_stat: Option<MetricStat>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricStat {
    #[serde(alias = "Metric")]
    metric: MetricId,
    #[serde(default, alias = "Period")]
    period: Option<f64>,
    #[serde(default, alias = "Stat")]
    stat: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricId {
    #[serde(default, alias = "Namespace")]
    namespace: Option<String>,
    #[serde(default, alias = "MetricName")]
    name: Option<String>,
    #[serde(default, alias = "Dimensions")]
    dimensions: Dimensions,
}

impl From<&AlarmMetric> for Metric {
    fn from(m: &AlarmMetric) -> Self {
        let stat = m.metric_stat.as_ref();
        Self {
            id: m.id.clone(),
            expression: m.expression.clone(),
            label: m.label.clone(),
            return_data: m.return_data.unwrap_or(false),
            namespace: stat.and_then(|s| s.metric.namespace.clone()),
            name: stat.and_then(|s| s.metric.name.clone()),
            stat: stat.and_then(|s| s.stat.clone()),
            period: stat.and_then(|s| s.period),
            unit: None,
            dimensions: stat
                .map(|s| s.metric.dimensions.pairs())
                .unwrap_or_default(),
        }
    }
}

/// Whether an SNS message body looks like a CloudWatch alarm notification.
pub fn is_sns_alarm(message: &Value) -> bool {
    message.get("AlarmName").is_some() && message.get("NewStateValue").is_some()
}

/// The alarm's state as a notice state and level.
fn state(value: &str) -> (NoticeState, Level) {
    match value {
        "OK" => (NoticeState::Resolved, Level::Error),
        "INSUFFICIENT_DATA" => (NoticeState::Firing, Level::Warning),
        _ => (NoticeState::Firing, Level::Error),
    }
}

fn title(name: &str, value: &str) -> String {
    match value {
        "OK" => format!("{name} is OK"),
        "INSUFFICIENT_DATA" => format!("{name} has insufficient data"),
        other => format!("{name} is in {other}"),
    }
}

/// `GreaterThanThreshold` → `>`.
fn operator(op: &str) -> &str {
    match op {
        "GreaterThanOrEqualToThreshold" => "≥",
        "GreaterThanThreshold" => ">",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "≤",
        "LessThanLowerOrGreaterThanUpperThreshold" => "outside the band",
        "GreaterThanUpperThreshold" => "above the band",
        "LessThanLowerThreshold" => "below the band",
        other => other,
    }
}

/// `80`, not `80.0`; `0.5` stays.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

/// `+0000` (or any offset) → RFC 3339 UTC with milliseconds, so the SNS and the
/// EventBridge copy of one state change compare equal.
pub fn normalise_time(t: &str) -> String {
    chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// The first datapoint in a reason such as `Threshold Crossed: 1 out of the last 1
/// datapoints [91.5 (24/11/26 10:15:00)] was greater than the threshold (80.0)`.
fn value_from_reason(reason: &str) -> Option<String> {
    let start = reason.find('[')? + 1;
    let rest = &reason[start..];
    let end = rest.find([' ', ',', ']'])?;
    rest[..end].parse::<f64>().ok().map(number)
}

fn console_link(region: &str, name: &str) -> Option<Link> {
    reflex_core::ids::aws_console(
        region,
        "cloudwatch/home",
        &format!("alarmsV2:alarm/{}", url_encode(name)),
    )
    .map(|url| Link::new("Open alarm", url))
}

fn dimensions_text<'a>(dims: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in dims {
        let p = format!("{k}={v}");
        // Metric math reads several metrics of the same resource.
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// What an alarm is about, common to both shapes.
struct AlarmFacts {
    name: String,
    state: String,
    previous: Option<String>,
    arn: Option<String>,
    account: Option<String>,
    region: Option<String>,
    time: Option<String>,
    description: Option<String>,
    reason: Option<String>,
    resource: Option<String>,
    metric: Option<String>,
    threshold: Option<String>,
    value: Option<String>,
    delivery: String,
    trigger_prefix: &'static str,
}

fn notice(f: AlarmFacts) -> Notice {
    let (st, level) = state(&f.state);
    let time = f.time.as_deref().map(normalise_time);
    let thread = f.arn.clone().unwrap_or_else(|| {
        format!(
            "{}:{}:{}",
            f.account.as_deref().unwrap_or("-"),
            f.region.as_deref().unwrap_or("-"),
            f.name
        )
    });
    let mut n = Notice::new(
        NoticeKind::CloudwatchAlarm,
        format!("{}/{}", f.trigger_prefix, f.state),
        level,
        st,
        title(&f.name, &f.state),
        f.delivery,
    );
    n.place = match (&f.resource, &f.region) {
        (Some(res), Some(r)) => Some(format!("{res} in {r}")),
        (None, Some(r)) => Some(r.clone()),
        (Some(res), None) => Some(res.clone()),
        (None, None) => None,
    };
    n.account.clone_from(&f.account);
    n.region.clone_from(&f.region);
    n.resource.clone_from(&f.resource);
    n.field("Account", f.account.clone());
    n.field("Region", f.region.clone());
    n.field("Resource", f.resource);
    n.field("Metric", f.metric);
    n.field("Threshold", f.threshold);
    n.field("Value", f.value);
    n.field(
        "State",
        Some(match &f.previous {
            Some(p) => format!("{p} → {}", f.state),
            None => f.state.clone(),
        }),
    );
    n.field("Changed at", time.clone());
    n.reason = match (f.reason, f.description) {
        (Some(r), Some(d)) => Some(format!("{r}\n\n{d}")),
        (r, d) => r.or(d),
    };
    if let Some(r) = &f.region {
        n.links.extend(console_link(r, &f.name));
    }
    n.thread_key = Some(format!("alarm:{thread}"));
    n.at = time;
    n
}

/// A CloudWatch alarm from an SNS message body (`Records[].Sns.Message`, parsed).
/// `path` names the message for errors.
pub fn from_sns(message: Value, path: &str) -> Result<Notice, ParseError> {
    let a: SnsAlarm = typed(message, path)?;
    let region = a
        .region
        .as_deref()
        .and_then(region::code)
        .or_else(|| a.alarm_arn.as_deref().and_then(region::from_arn))
        .map(str::to_string)
        .or(a.region.clone());
    let account = a.aws_account_id.clone().or_else(|| {
        a.alarm_arn
            .as_deref()
            .and_then(region::account_from_arn)
            .map(str::to_string)
    });
    let (resource, metric, threshold) = match &a.trigger {
        Some(t) => sns_trigger(t),
        None => (
            None,
            a.alarm_rule.clone().map(|r| format!("composite: {r}")),
            None,
        ),
    };
    let time = a.state_change_time.clone();
    let id = a.alarm_arn.clone().unwrap_or_else(|| a.alarm_name.clone());
    Ok(notice(AlarmFacts {
        delivery: format!(
            "alarm:{id}:{}:{}",
            a.new_state_value,
            time.as_deref().map(normalise_time).unwrap_or_default()
        ),
        value: a.new_state_reason.as_deref().and_then(value_from_reason),
        name: a.alarm_name,
        state: a.new_state_value,
        previous: a.old_state_value,
        arn: a.alarm_arn,
        account,
        region,
        time,
        description: a.alarm_description,
        reason: a.new_state_reason,
        resource,
        metric,
        threshold,
        trigger_prefix: "aws.cloudwatch.sns",
    }))
}

/// One metric of an alarm, from either shape.
#[derive(Debug, Default)]
struct Metric {
    id: Option<String>,
    expression: Option<String>,
    label: Option<String>,
    return_data: bool,
    namespace: Option<String>,
    name: Option<String>,
    stat: Option<String>,
    period: Option<f64>,
    unit: Option<String>,
    dimensions: Vec<(String, String)>,
}

impl Metric {
    fn text(&self) -> String {
        let mut details = Vec::new();
        details.extend(self.stat.clone());
        details.extend(self.period.map(|p| format!("{} s", number(p))));
        details.extend(self.unit.clone());
        let base = format!(
            "{} {}",
            self.namespace.as_deref().unwrap_or_default(),
            self.name.as_deref().unwrap_or_default()
        );
        let base = base.trim();
        if details.is_empty() {
            base.to_string()
        } else {
            format!("{base} ({})", details.join(", "))
        }
    }
}

/// `(resource, metric)`: the dimensions, and the metric or the math expression with
/// what it reads.
fn describe(metrics: &[Metric]) -> (Option<String>, Option<String>) {
    let resource = dimensions_text(
        metrics
            .iter()
            .flat_map(|m| m.dimensions.iter())
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let expr = metrics
        .iter()
        .find(|m| m.return_data && m.expression.is_some())
        .or_else(|| metrics.iter().find(|m| m.expression.is_some()));
    let Some(expr) = expr else {
        return (resource, metrics.first().map(Metric::text));
    };
    let inputs: Vec<String> = metrics
        .iter()
        .filter(|m| m.name.is_some())
        .map(|m| format!("{}={}", m.id.as_deref().unwrap_or("?"), m.text()))
        .collect();
    let label = expr
        .label
        .as_deref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default();
    let e = expr.expression.as_deref().unwrap_or_default();
    let text = if inputs.is_empty() {
        format!("{label}{e}")
    } else {
        format!("{label}{e} where {}", inputs.join(", "))
    };
    (resource, Some(text))
}

fn sns_trigger(t: &SnsTrigger) -> (Option<String>, Option<String>, Option<String>) {
    let threshold = t.threshold.map(|v| {
        format!(
            "{} {}",
            t.comparison_operator.as_deref().map_or("", operator),
            number(v)
        )
        .trim()
        .to_string()
    });
    let metrics: Vec<Metric> = if t.metric_name.is_some() {
        vec![Metric {
            namespace: t.namespace.clone(),
            name: t.metric_name.clone(),
            stat: t.statistic.clone().or(t.extended_statistic.clone()),
            period: t.period,
            unit: t.unit.clone(),
            dimensions: t.dimensions.pairs(),
            ..Metric::default()
        }]
    } else {
        t.metrics.iter().map(Metric::from).collect()
    };
    let (resource, metric) = describe(&metrics);
    (resource, metric, threshold)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EbDetail {
    alarm_name: String,
    state: EbState,
    #[serde(default)]
    previous_state: Option<EbState>,
    #[serde(default)]
    configuration: Option<EbConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EbState {
    value: String,
    #[serde(default)]
    reason: Option<String>,
    /// A JSON document serialised into a string.
    #[serde(default)]
    reason_data: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EbConfiguration {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metrics: Vec<AlarmMetric>,
    #[serde(default)]
    alarm_rule: Option<String>,
}

/// The parts of `reasonData` worth showing; a reasonData that does not parse is
/// left out rather than failing the alert.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasonData {
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    recent_datapoints: Vec<f64>,
}

/// A CloudWatch alarm from an EventBridge "CloudWatch Alarm State Change" event.
pub fn from_eventbridge(env: &EventBridgeEvent<Value>) -> Result<Notice, ParseError> {
    let d: EbDetail = typed(env.detail.clone(), "detail")?;
    let arn = env.resources.as_ref().and_then(|r| r.first()).cloned();
    let reason_data: ReasonData = d
        .state
        .reason_data
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let config = d.configuration.as_ref();
    let metrics: Vec<Metric> = config
        .map(|c| c.metrics.as_slice())
        .unwrap_or_default()
        .iter()
        .map(Metric::from)
        .collect();
    let (resource, metric) = describe(&metrics);
    let metric = metric.or_else(|| {
        config
            .and_then(|c| c.alarm_rule.clone())
            .map(|r| format!("composite: {r}"))
    });
    let time = d
        .state
        .timestamp
        .clone()
        .or_else(|| env.time.map(|t| t.to_rfc3339()));
    let id = arn.clone().unwrap_or_else(|| d.alarm_name.clone());
    Ok(notice(AlarmFacts {
        delivery: format!(
            "alarm:{id}:{}:{}",
            d.state.value,
            time.as_deref().map(normalise_time).unwrap_or_default()
        ),
        threshold: reason_data.threshold.map(number),
        value: reason_data
            .recent_datapoints
            .last()
            .copied()
            .map(number)
            .or_else(|| d.state.reason.as_deref().and_then(value_from_reason)),
        name: d.alarm_name,
        state: d.state.value,
        previous: d.previous_state.map(|p| p.value),
        account: env.account.clone(),
        region: env.region.clone(),
        arn,
        time,
        description: config.and_then(|c| c.description.clone()),
        reason: d.state.reason,
        resource,
        metric,
        trigger_prefix: "aws.cloudwatch",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(
            normalise_time("2026-11-24T10:20:15.123+0000"),
            "2026-11-24T10:20:15.123Z"
        );
        assert_eq!(
            normalise_time("2026-11-24T12:20:15.123+0200"),
            "2026-11-24T10:20:15.123Z"
        );
        assert_eq!(
            normalise_time("2026-11-24T10:20:15Z"),
            "2026-11-24T10:20:15.000Z"
        );
        assert_eq!(normalise_time("yesterday"), "yesterday");
    }

    #[test]
    fn the_value_is_read_from_the_reason_text() {
        let r = "Threshold Crossed: 1 out of the last 1 datapoints [91.5 (24/11/26 10:15:00)] \
                 was greater than the threshold (80.0)";
        assert_eq!(value_from_reason(r).as_deref(), Some("91.5"));
        assert_eq!(value_from_reason("no datapoints"), None);
        assert_eq!(number(80.0), "80");
        assert_eq!(number(0.25), "0.25");
    }
}
