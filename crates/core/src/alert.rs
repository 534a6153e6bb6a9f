//! Monitoring alerts, independent of the schema that delivered them: Azure Monitor's
//! common alert schema and its legacy payloads map here (and CloudWatch alarms later).

use std::collections::BTreeMap;

use serde::Serialize;

/// Whether the alert fired or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Fired,
    Resolved,
}

/// The payload that carried the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSchema {
    /// `schemaId: azureMonitorCommonAlertSchema`.
    AzureCommon,
    /// `schemaId: AzureMonitorMetricAlert` (the pre-common metric alert webhook).
    AzureLegacyMetric,
    /// `schemaId: Microsoft.Insights/activityLogs`.
    AzureLegacyActivityLog,
    /// The Log Analytics (V1) webhook with no `schemaId`.
    AzureLegacyLog,
}

/// An alert, whatever delivered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub schema: AlertSchema,
    /// The alert instance id (Azure `essentials.alertId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The alert rule's name.
    pub rule: String,
    /// `Sev0` … `Sev4`, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub state: AlertState,
    /// `Platform`, `Log Analytics`, `Activity Log - Administrative`, `ServiceHealth`, …
    pub monitoring_service: String,
    /// The resources the alert is about (Azure resource ids).
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub context: AlertContext,
}

/// One metric condition of a metric alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MetricCondition {
    pub metric: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The static threshold as sent (a string: Azure sends `"80"` and `80` alike).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub dimensions: BTreeMap<String, String>,
    /// Dynamic thresholds: `Low`, `Medium`, `High`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
    /// Availability (web test) alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_test: Option<String>,
}

/// One query condition of a log search alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LogCondition {
    pub query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub dimensions: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Search results included in a Log Alerts V1 payload.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SearchResults {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// An Activity Log event (Administrative, Security, Policy, Autoscale, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ActivityEvent {
    /// `Administrative`, `Security`, `Policy`, `Autoscale`, `Recommendation`.
    pub category: String,
    /// `authorization.action` (or `operationName`), e.g.
    /// `Microsoft.Network/networkSecurityGroups/securityRules/write`.
    pub operation: String,
    /// `authorization.scope` (or `resourceId`): the resource the operation touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Who did it: a UPN, or an app/object id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// `Started`, `Accepted`, `Succeeded`, `Failed`, `Active`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The caller's IP address when the claims carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_ip: Option<String>,
    pub properties: BTreeMap<String, String>,
}

/// A Service Health or Resource Health notice.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HealthNotice {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Service Health: `Incident`, `Maintenance`, `Informational`, `ActionRequired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// Service Health: affected services and regions, as sent.
    pub services: Vec<String>,
    pub regions: Vec<String>,
    /// Resource Health: `Available`, `Degraded`, `Unavailable`, `Unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// What the alert says, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertContext {
    Metric {
        /// `SingleResourceMultipleMetricCriteria`, `DynamicThresholdCriteria`,
        /// `WebtestLocationAvailabilityCriteria`, `Metric` (classic).
        condition_type: String,
        conditions: Vec<MetricCondition>,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_start: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_end: Option<String>,
    },
    /// Log Alerts V1 (Log Analytics / Application Insights): one query, with rows.
    LogV1 {
        query: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        interval_start: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        interval_end: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        result_count: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        link: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        results: Option<SearchResults>,
    },
    /// Log Alerts V2: conditions with dimensions and links, no rows.
    LogV2 {
        conditions: Vec<LogCondition>,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_start: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        window_end: Option<String>,
    },
    ActivityLog(ActivityEvent),
    ServiceHealth(HealthNotice),
    ResourceHealth(HealthNotice),
}

impl Alert {
    /// The Activity Log event, when this is one.
    pub fn activity(&self) -> Option<&ActivityEvent> {
        match &self.context {
            AlertContext::ActivityLog(a) => Some(a),
            _ => None,
        }
    }
}
