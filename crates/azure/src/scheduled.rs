//! Azure Scheduled Events: the IMDS document the VM polls
//! (`/metadata/scheduledevents`), and the same event as it reaches a function from
//! outside the VM. Both become a core [`Maintenance`].

use reflex_core::ParseError;
use reflex_core::json::typed;
use reflex_core::maintenance::{Announced, Maintenance, MaintenanceKind, Phase};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Event Grid type of a scheduled event (subscription-scope system topic of type
/// `microsoft.resourcenotifications.MaintenanceResources`).
pub const EVENT_GRID_TYPE: &str =
    "Microsoft.ResourceNotifications.MaintenanceResources.ScheduledEventEmitted";
/// Event Grid's largest batch (`maxEventsPerBatch` is 1–5000).
pub const MAX_BATCH: usize = 5000;
/// Event Grid's subscription handshake.
pub const VALIDATION_TYPE: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// The IMDS scheduled-events document (api-version 2020-07-01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    pub document_incarnation: i64,
    #[serde(default)]
    pub events: Vec<ScheduledEvent>,
}

/// One scheduled event, with IMDS's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduledEvent {
    pub event_id: String,
    pub event_type: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    /// VM names (or scale-set instance names such as `vmss_2`).
    #[serde(default)]
    pub resources: Vec<String>,
    pub event_status: String,
    /// RFC 1123 UTC (`Mon, 19 Sep 2016 18:29:47 GMT`); empty once started.
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub event_source: Option<String>,
    /// `-1` when unknown.
    #[serde(default)]
    pub duration_in_seconds: Option<i64>,
}

/// `NotBefore` as seconds since the epoch; `None` when empty or unreadable.
pub fn not_before(text: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(text.trim()).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

impl ScheduledEvent {
    /// The core model, or why this event is not one Reflex knows.
    pub fn to_maintenance(
        &self,
        trigger: &str,
        scope: Option<&str>,
    ) -> Result<Maintenance, String> {
        let kind = MaintenanceKind::from_azure(&self.event_type)
            .ok_or_else(|| format!("EventType `{}` is not a maintenance kind", self.event_type))?;
        let phase = Phase::from_azure(&self.event_status)
            .ok_or_else(|| format!("EventStatus `{}` is not known", self.event_status))?;
        Ok(Maintenance {
            cloud: "azure".into(),
            id: self.event_id.clone(),
            kind,
            phase,
            targets: self.resources.clone(),
            not_before: self.not_before.as_deref().and_then(not_before),
            duration_secs: self.duration_in_seconds.filter(|d| *d >= 0),
            description: self.description.clone().filter(|d| !d.is_empty()),
            lifecycle: None,
            trigger: trigger.to_string(),
            scope: scope.map(str::to_string),
        })
    }

    /// Whether it affects the VM named `vm` (IMDS lists every VM of the
    /// availability set or scale-set update domain).
    pub fn affects(&self, vm: &str) -> bool {
        self.resources.iter().any(|r| r.eq_ignore_ascii_case(vm))
    }
}

/// The approval body, exactly as documented: `{"StartRequests":[{"EventId":…}]}`.
pub fn start_request(event_id: &str) -> serde_json::Value {
    serde_json::json!({"StartRequests": [{"EventId": event_id}]})
}

/// What an Event Grid delivery asks of the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The subscription handshake: answer `{"validationResponse": code}`.
    Validation { code: String },
    /// Scheduled events (or other events, each ignored with its reason).
    Events(Vec<Announced>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridEvent {
    /// `eventType` (Event Grid schema) or `type` (CloudEvents).
    #[serde(alias = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceInfo {
    id: String,
    properties: ScheduledEvent,
}

/// Whether the payload is an Event Grid delivery: an array of events with
/// `eventType`, or one CloudEvents 1.0 event.
pub fn is_event_grid(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.first().is_some_and(|e| e.get("eventType").is_some()),
        Value::Object(o) => o.contains_key("specversion") && o.contains_key("type"),
        _ => false,
    }
}

/// The VM or scale set a scheduled event's resource id is under:
/// `…/virtualMachines/vm-1/providers/microsoft.maintenance/scheduledevents/{id}` →
/// `…/virtualMachines/vm-1`.
pub fn owner_resource(id: &str) -> &str {
    let lower = id.to_ascii_lowercase();
    lower
        .find("/providers/microsoft.maintenance/")
        .map_or(id, |at| &id[..at])
}

/// Parses an Event Grid delivery (Event Grid schema array, or one CloudEvent).
pub fn parse_event_grid(v: Value) -> Result<Delivery, ParseError> {
    let (items, array) = match v {
        Value::Array(items) => (items, true),
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(ParseError::at("", "an empty Event Grid batch"));
    }
    if items.len() > MAX_BATCH {
        return Err(ParseError::at(
            "",
            format!(
                "an Event Grid batch of {} events, above the {MAX_BATCH} Event Grid delivers at most",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = if array {
            format!("[{i}]")
        } else {
            String::new()
        };
        let e: GridEvent = typed(item, &at)?;
        let trigger = format!("azure.eventgrid/{}", e.event_type);
        match e.event_type.as_str() {
            VALIDATION_TYPE => {
                let code = e
                    .data
                    .get("validationCode")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ParseError::at(join(&at, "data.validationCode"), "missing"))?;
                return Ok(Delivery::Validation {
                    code: code.to_string(),
                });
            }
            EVENT_GRID_TYPE => {
                let data_at = join(&at, "data.resourceInfo");
                let info: ResourceInfo = typed(
                    e.data.get("resourceInfo").cloned().unwrap_or(Value::Null),
                    &data_at,
                )?;
                let owner = owner_resource(&info.id);
                out.push(
                    match info.properties.to_maintenance(&trigger, Some(owner)) {
                        Ok(m) => Announced::Maintenance(Box::new(m)),
                        Err(reason) => Announced::Ignored { trigger, reason },
                    },
                );
            }
            other => out.push(Announced::Ignored {
                reason: format!("event type {other} is not a scheduled event"),
                trigger,
            }),
        }
    }
    Ok(Delivery::Events(out))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[derive(Debug, Deserialize)]
struct Dimension {
    name: String,
    value: crate::alerts::Text,
}

/// A Log Alerts V2 alert (common alert schema) on the scheduled-events log, as
/// maintenance. The VM comes from the `Computer` dimension; `EventType` (and, when
/// the query projects them, `EventId` and `_ResourceId`) from theirs. `Fired` is a
/// scheduled event, `Resolved` a completed one. `None` when the alert is not one.
pub fn from_log_alert(v: &Value) -> Option<Result<Announced, ParseError>> {
    let dims_at = "data.alertContext.condition.allOf[0].dimensions";
    let dims = v.pointer("/data/alertContext/condition/allOf/0/dimensions")?;
    let dims: Vec<Dimension> = match typed(dims.clone(), dims_at) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let dim = |name: &str| {
        dims.iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .and_then(|d| d.value.0.clone())
            .filter(|v| !v.trim().is_empty())
    };
    let computer = dim("Computer")?;
    let event_type = dim("EventType")?;
    let essentials = v.pointer("/data/essentials");
    let text = |k: &str| {
        essentials
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let trigger = format!(
        "azure.monitor/Log Alerts V2 ({})",
        text("alertRule").unwrap_or_else(|| "scheduled events".into())
    );
    let Some(kind) = MaintenanceKind::from_azure(&event_type) else {
        return Some(Ok(Announced::Ignored {
            trigger,
            reason: format!("EventType `{event_type}` is not a maintenance kind"),
        }));
    };
    let phase = match text("monitorCondition").as_deref() {
        Some("Resolved") => Phase::Completed,
        _ => Phase::Scheduled,
    };
    // Without an EventId dimension the event is named by the alert (no acknowledge).
    let id = dim("EventId")
        .or_else(|| text("originAlertId"))
        .or_else(|| text("alertId"))
        .unwrap_or_else(|| format!("{computer}/{event_type}"));
    let m = Maintenance {
        cloud: "azure".into(),
        id,
        kind,
        phase,
        targets: vec![computer],
        not_before: dim("NotBefore").as_deref().and_then(not_before),
        duration_secs: None,
        description: text("description"),
        lifecycle: None,
        trigger,
        scope: dim("_ResourceId").or_else(|| dim("ResourceId")),
    };
    Some(Ok(Announced::Maintenance(Box::new(m))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/azure")
            .join(rel);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn events(rel: &str) -> Vec<Announced> {
        let v = fixture(rel);
        assert!(is_event_grid(&v), "{rel}");
        match parse_event_grid(v).unwrap() {
            Delivery::Events(e) => e,
            other => panic!("{rel}: {other:?}"),
        }
    }

    fn maintenance(a: &Announced) -> &Maintenance {
        match a {
            Announced::Maintenance(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_grid_scheduled_events_read_with_their_vm() {
        for rel in [
            "event-grid/scheduled-event-redeploy-scheduled.json",
            "event-grid/scheduled-event-cloudevents.json",
        ] {
            let e = events(rel);
            let m = maintenance(&e[0]);
            assert_eq!(m.kind, MaintenanceKind::Redeploy, "{rel}");
            assert_eq!(m.phase, Phase::Scheduled);
            assert_eq!(m.id, "88eaf97d-81f7-4057-874e-e5e2d41ce741");
            assert_eq!(m.targets, ["vm-web-1"]);
            assert_eq!(
                m.scope.as_deref(),
                Some(
                    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-1"
                )
            );
            assert!(m.not_before.is_some());
        }
        let done = events("event-grid/scheduled-event-completed.json");
        assert_eq!(maintenance(&done[0]).phase, Phase::Completed);
        let canceled = events("event-grid/scheduled-event-canceled.json");
        assert_eq!(maintenance(&canceled[0]).phase, Phase::Canceled);
    }

    #[test]
    fn the_subscription_handshake_returns_its_code() {
        let d = parse_event_grid(fixture("event-grid/subscription-validation.json")).unwrap();
        assert_eq!(
            d,
            Delivery::Validation {
                code: "f3a1c9e7-52b4-4d8e-a0c6-1b7e9d3f5a28".into()
            }
        );
    }

    #[test]
    fn event_grid_mistakes_name_the_field() {
        let mut v = fixture("event-grid/scheduled-event-redeploy-scheduled.json");
        v[0]["data"]["resourceInfo"]["properties"]["Resources"] = serde_json::json!("vm-1");
        let e = parse_event_grid(v).unwrap_err().to_string();
        assert!(
            e.starts_with("[0].data.resourceInfo.properties.Resources"),
            "{e}"
        );
        assert!(parse_event_grid(serde_json::json!([])).is_err());
        let other = parse_event_grid(
            serde_json::json!([{"eventType": "Microsoft.Storage.BlobCreated", "data": {}}]),
        )
        .unwrap();
        assert!(
            matches!(other, Delivery::Events(ref e) if matches!(e[0], Announced::Ignored { .. }))
        );
    }

    #[test]
    fn a_log_alert_names_the_vm_by_its_computer_dimension() {
        let mut v = fixture("common-alert-schema/log-alert-v2-scheduled-events.json");
        let a = from_log_alert(&v).unwrap().unwrap();
        let m = maintenance(&a);
        assert_eq!(
            (m.kind, m.phase, m.targets.as_slice()),
            (
                MaintenanceKind::Redeploy,
                Phase::Scheduled,
                &["vm-web-1".to_string()][..]
            )
        );
        v["data"]["essentials"]["monitorCondition"] = "Resolved".into();
        let a = from_log_alert(&v).unwrap().unwrap();
        assert_eq!(maintenance(&a).phase, Phase::Completed);
        let cpu = fixture("common-alert-schema/log-alert-v2.json");
        assert!(
            from_log_alert(&cpu).is_none(),
            "an ordinary log alert is not ours"
        );
    }

    #[test]
    fn an_imds_document_reads_as_maintenance() {
        let doc: Document = serde_json::from_str(
            r#"{"DocumentIncarnation": 3, "Events": [{
                "EventId": "C7061BAC-AFDC-4513-B24B-AA5F13A16123",
                "EventStatus": "Scheduled", "EventType": "Redeploy",
                "ResourceType": "VirtualMachine", "Resources": ["vm-web-1", "vm-web-2"],
                "NotBefore": "Tue, 24 Nov 2026 10:15:00 GMT",
                "Description": "Virtual machine is being redeployed", "EventSource": "Platform",
                "DurationInSeconds": -1}]}"#,
        )
        .unwrap();
        let e = &doc.events[0];
        assert_eq!(doc.document_incarnation, 3);
        assert!(e.affects("VM-WEB-2") && !e.affects("vm-web-3"));
        let m = e.to_maintenance("azure.imds/Redeploy", None).unwrap();
        assert_eq!(m.kind, MaintenanceKind::Redeploy);
        assert_eq!(m.phase, Phase::Scheduled);
        assert_eq!(m.not_before, Some(1_795_515_300));
        assert_eq!(m.duration_secs, None, "-1 means unknown");
        assert_eq!(
            start_request(&m.id),
            serde_json::json!({"StartRequests": [{"EventId": "C7061BAC-AFDC-4513-B24B-AA5F13A16123"}]})
        );
    }

    #[test]
    fn a_started_event_has_no_deadline_and_unknown_types_are_named() {
        let e: ScheduledEvent = serde_json::from_str(
            r#"{"EventId": "x", "EventStatus": "Started", "EventType": "Freeze",
                "Resources": ["vm-1"], "NotBefore": "", "DurationInSeconds": 9}"#,
        )
        .unwrap();
        let m = e.to_maintenance("t", None).unwrap();
        assert_eq!(
            (m.phase, m.not_before, m.duration_secs),
            (Phase::Started, None, Some(9))
        );
        let odd = ScheduledEvent {
            event_type: "LiveMigrate".into(),
            ..e
        };
        assert_eq!(
            odd.to_maintenance("t", None).unwrap_err(),
            "EventType `LiveMigrate` is not a maintenance kind"
        );
    }
}
