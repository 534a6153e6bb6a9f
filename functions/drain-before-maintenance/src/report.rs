//! The Slack messages: drain started, drain done (or failed), node recovered.

use reflex_core::maintenance::Maintenance;
use reflex_core::{ActionRecord, ActionStatus};
use reflex_notify::message::{Message, Severity};

use crate::NAME;

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Started,
    Finished,
    /// Part of the drain is done and the rest carries on later (a slot, a wait, a
    /// disruption budget): not drained yet.
    Deferred,
    Recovered,
    Scheduled,
}

fn line(r: &ActionRecord) -> String {
    let status = match r.status {
        ActionStatus::Done => "done",
        ActionStatus::Planned => "planned",
        ActionStatus::Skipped => "skipped",
        ActionStatus::Failed => "FAILED",
    };
    let mut s = format!("{status}: {} {}", r.action.replace('_', " "), r.target);
    match (&r.error, r.status) {
        (Some(e), _) => s.push_str(&format!(" ({e})")),
        (None, ActionStatus::Skipped) => s.push_str(&format!(" ({})", r.reason)),
        _ => {}
    }
    s
}

fn when(m: &Maintenance, now: i64) -> String {
    match m.not_before {
        Some(t) if t > now => format!("{} in {} s", m.kind, t - now),
        Some(_) => format!("{} due now", m.kind),
        None => m.kind.to_string(),
    }
}

/// One message about `node`.
pub fn message(
    stage: Stage,
    m: &Maintenance,
    node: &str,
    records: &[ActionRecord],
    dry_run: bool,
    now: i64,
) -> Message {
    let failed = records.iter().any(|r| r.status == ActionStatus::Failed);
    let (severity, title, summary) = match stage {
        Stage::Started => (
            Severity::Info,
            format!("Draining {node}: {}", when(m, now)),
            format!(
                "Reflex is taking {node} out of service before the {} ({}).",
                m.kind, m.cloud
            ),
        ),
        Stage::Scheduled => (
            Severity::Info,
            format!("Drain of {node} scheduled: {}", when(m, now)),
            "The drain policy starts the drain closer to the event.".to_string(),
        ),
        Stage::Finished if dry_run => (
            Severity::Planned,
            format!("DRY RUN: would drain {node}"),
            "Nothing was changed.".to_string(),
        ),
        Stage::Finished if failed => (
            Severity::Failed,
            format!("Drain of {node} incomplete"),
            "A step failed: the maintenance was not acknowledged early. Check the node."
                .to_string(),
        ),
        Stage::Deferred => (
            Severity::Info,
            format!("Drain of {node} not finished yet"),
            "Part of the drain is done and the rest carries on shortly; the maintenance is not approved until it is."
                .to_string(),
        ),
        Stage::Finished => (
            Severity::Remediated,
            format!("Drained {node}"),
            format!("{node} is out of service; the {} may proceed.", m.kind),
        ),
        Stage::Recovered => (
            if failed {
                Severity::Failed
            } else {
                Severity::Resolved
            },
            if failed {
                format!("Recovery of {node} incomplete")
            } else {
                format!("Recovered {node}")
            },
            if failed {
                format!(
                    "The {} is over, but a step failed: Reflex keeps its record and tries again on the next delivery.",
                    m.kind
                )
            } else {
                format!("The {} is over; {node} is back in service.", m.kind)
            },
        ),
    };
    let mut fields = vec![
        ("Event".to_string(), m.kind.to_string()),
        ("Node".to_string(), node.to_string()),
    ];
    if let Some(scope) = &m.scope {
        fields.push(("Where".into(), scope.clone()));
    }
    if let Some(d) = &m.description {
        fields.push(("Description".into(), d.clone()));
    }
    let sections = if records.is_empty() {
        Vec::new()
    } else {
        vec![(
            "What Reflex did".to_string(),
            records.iter().map(line).collect(),
        )]
    };
    Message {
        severity,
        title,
        banner: dry_run.then(|| "DRY RUN: nothing was changed".to_string()),
        summary,
        fields,
        sections,
        footer: vec![
            format!("event {}", m.id),
            format!("trigger {}", m.trigger),
            NAME.to_string(),
        ],
        links: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::maintenance::{MaintenanceKind, Phase};
    use reflex_notify::blockkit::render;

    use super::*;

    const HOSTILE: &str = "<!channel> <https://evil.example|click here>";

    #[test]
    fn a_hostile_node_name_or_description_cannot_mention_or_link_in_slack() {
        let m = Maintenance {
            cloud: "azure".into(),
            id: HOSTILE.into(),
            kind: MaintenanceKind::Redeploy,
            phase: Phase::Scheduled,
            targets: vec![HOSTILE.into()],
            not_before: None,
            duration_secs: None,
            description: Some(HOSTILE.into()),
            lifecycle: None,
            trigger: HOSTILE.into(),
            scope: Some(HOSTILE.into()),
        };
        let record = ActionRecord {
            action: "cordon".into(),
            target: HOSTILE.into(),
            detail: serde_json::Value::Null,
            status: ActionStatus::Failed,
            reason: HOSTILE.into(),
            error: Some(HOSTILE.into()),
            retryable: false,
        };
        for stage in [
            Stage::Started,
            Stage::Scheduled,
            Stage::Finished,
            Stage::Deferred,
            Stage::Recovered,
        ] {
            let payload = render(&message(
                stage,
                &m,
                HOSTILE,
                std::slice::from_ref(&record),
                false,
                0,
            ));
            let text = payload.to_string();
            assert!(
                !text.contains("<!channel>") && !text.contains("<https://evil.example"),
                "{stage:?}: {text}"
            );
            assert!(text.contains("&lt;!channel&gt;"), "{stage:?}: still shown");
        }
    }

    #[test]
    fn a_drain_that_is_not_finished_never_says_drained() {
        let m = Maintenance {
            cloud: "azure".into(),
            id: "e-1".into(),
            kind: MaintenanceKind::Redeploy,
            phase: Phase::Scheduled,
            targets: vec!["vm-1".into()],
            not_before: None,
            duration_secs: None,
            description: None,
            lifecycle: None,
            trigger: "t".into(),
            scope: None,
        };
        let deferred = message(Stage::Deferred, &m, "vm-1", &[], false, 0);
        assert_eq!(deferred.title, "Drain of vm-1 not finished yet");
        assert!(deferred.summary.contains("not approved"));
        let failed = ActionRecord {
            action: "lb_admin_up".into(),
            target: "pool".into(),
            detail: serde_json::Value::Null,
            status: ActionStatus::Failed,
            reason: "r".into(),
            error: Some("HTTP 500".into()),
            retryable: true,
        };
        let recovery = message(Stage::Recovered, &m, "vm-1", &[failed], false, 0);
        assert_eq!(recovery.title, "Recovery of vm-1 incomplete");
    }
}
