//! Azure Scheduled Events: the IMDS document the VM polls
//! (`/metadata/scheduledevents`), and the same event as it reaches a function from
//! outside the VM. Both become a core [`Maintenance`].

use reflex_core::maintenance::{Maintenance, MaintenanceKind, Phase};
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
