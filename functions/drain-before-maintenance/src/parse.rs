//! Every payload the function accepts, recognised from the payload itself.

use reflex_core::ParseError;
use reflex_core::json::{parse_json_any, typed};
use reflex_core::maintenance::{Announced, Maintenance, Phase};
use serde::Deserialize;
use serde_json::Value;

/// What a payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Event Grid's subscription handshake: answer with the code.
    Validation(String),
    /// Announced maintenance (one, or an Event Grid batch), or why it needs nothing.
    Events(Vec<Announced>),
    /// `reflex-agent` on the VM: drain or recover this node now.
    Agent {
        intent: Intent,
        maintenance: Box<Maintenance>,
    },
    /// The scheduled re-invocation: carry on with deferred drains and waits.
    Resume { trigger: String },
}

/// Take a node out of service, or bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Drain,
    Recover,
}

impl Intent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Drain => "drain",
            Self::Recover => "recover",
        }
    }

    /// What an event's phase asks for.
    pub fn of(phase: Phase) -> Self {
        if phase.is_over() {
            Self::Recover
        } else {
            Self::Drain
        }
    }
}

/// 9999-12-31T23:59:59Z.
const MAX_EPOCH: i64 = 253_402_300_799;

#[derive(Debug, Deserialize)]
struct AgentCall {
    action: String,
    maintenance: Maintenance,
}

/// Parses any payload: an EventBridge notice, an Event Grid delivery, an Azure log
/// alert, a call from `reflex-agent`, or a resume tick. Every id in it is checked
/// against its grammar: a malformed one is bad input, never pasted into a call.
pub fn parse(raw: &[u8]) -> Result<Input, ParseError> {
    let input = parse_unchecked(raw)?;
    let check = |m: &Maintenance, at: &str| {
        m.check_ids()
            .map_err(|(field, why)| ParseError::at(format!("{at}{field}"), why))
    };
    match &input {
        Input::Agent { maintenance, .. } => check(maintenance, "maintenance.")?,
        Input::Events(events) => {
            for (i, a) in events.iter().enumerate() {
                if let Announced::Maintenance(m) = a {
                    let at = if events.len() > 1 {
                        format!("[{i}].")
                    } else {
                        String::new()
                    };
                    check(m, &at)?;
                }
            }
        }
        Input::Validation(_) | Input::Resume { .. } => {}
    }
    Ok(input)
}

fn parse_unchecked(raw: &[u8]) -> Result<Input, ParseError> {
    let v = parse_json_any(raw)?;
    #[cfg(feature = "azure")]
    if reflex_azure::scheduled::is_event_grid(&v) {
        return Ok(match reflex_azure::scheduled::parse_event_grid(v)? {
            reflex_azure::scheduled::Delivery::Validation { code } => Input::Validation(code),
            reflex_azure::scheduled::Delivery::Events(e) => Input::Events(e),
        });
    }
    let Value::Object(o) = &v else {
        return Err(ParseError::at(
            "",
            format!(
                "expected a JSON object, found {}",
                reflex_core::json::kind_of(&v)
            ),
        ));
    };
    match (
        o.get("source").and_then(Value::as_str),
        o.get("detail-type").and_then(Value::as_str),
    ) {
        (Some("reflex-agent"), _) => {
            let call: AgentCall = typed(v, "")?;
            let intent = match call.action.as_str() {
                "drain" => Intent::Drain,
                "recover" => Intent::Recover,
                other => {
                    return Err(ParseError::at(
                        "action",
                        format!("`{other}`: expected drain or recover"),
                    ));
                }
            };
            // The times feed deadline arithmetic: keep them to real dates.
            let real = |t: Option<i64>| t.is_none_or(|t| (0..=MAX_EPOCH).contains(&t));
            if !real(call.maintenance.not_before) {
                return Err(ParseError::at(
                    "maintenance.not_before",
                    "expected epoch seconds between 1970 and 9999",
                ));
            }
            if !real(call.maintenance.duration_secs) {
                return Err(ParseError::at(
                    "maintenance.duration_secs",
                    "expected 0 or more seconds, up to year 9999",
                ));
            }
            return Ok(Input::Agent {
                intent,
                maintenance: Box::new(call.maintenance),
            });
        }
        (Some("reflex"), _) if o.get("action").and_then(Value::as_str) == Some("resume") => {
            return Ok(Input::Resume {
                trigger: "reflex/resume".into(),
            });
        }
        // An Azure Functions timer trigger's TimerInfo, through the host's resume
        // function (`drain-before-maintenance-resume`).
        // The host serialises it with PascalCase names; workers show camelCase: both
        // are accepted.
        _ if ["IsPastDue", "isPastDue"]
            .iter()
            .any(|k| o.get(*k).is_some_and(Value::is_boolean))
            && ["Schedule", "schedule"].iter().any(|k| o.contains_key(*k)) =>
        {
            return Ok(Input::Resume {
                trigger: "azure.timer/resume".into(),
            });
        }
        (Some("aws.events"), Some("Scheduled Event")) => {
            return Ok(Input::Resume {
                trigger: "aws.events/Scheduled Event".into(),
            });
        }
        _ => {}
    }
    if let Some(parsed) = reflex_aws::maintenance::parse(&v) {
        return parsed.map(|a| Input::Events(vec![a]));
    }
    #[cfg(feature = "azure")]
    if reflex_azure::alerts::is_azure_alert(&v) {
        return match reflex_azure::scheduled::from_log_alert(&v) {
            Some(parsed) => parsed.map(|a| Input::Events(vec![a])),
            None => Ok(Input::Events(vec![Announced::Ignored {
                trigger: "azure.monitor/alert".into(),
                reason: "an Azure Monitor alert that is not about scheduled events (no Computer and EventType dimensions)".into(),
            }])),
        };
    }
    let trigger = match (
        o.get("source").and_then(Value::as_str),
        o.get("detail-type").and_then(Value::as_str),
    ) {
        (Some(s), Some(d)) => format!("{s}/{d}"),
        _ => "unknown".into(),
    };
    Ok(Input::Events(vec![Announced::Ignored {
        trigger,
        reason: "not a maintenance or interruption notice".into(),
    }]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_one_line_and_unknown_events_are_ignored() {
        assert!(parse(b"").is_err());
        assert!(parse(b"{\"detail-type\": ").is_err());
        assert!(parse(b"[1,2]").is_err());
        let e = parse(br#"{"source":"reflex-agent","action":"reboot","maintenance":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("maintenance") || e.starts_with("action"),
            "{e}"
        );
        let i = parse(br#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#)
            .unwrap();
        assert!(matches!(i, Input::Events(ref a) if matches!(a[0], Announced::Ignored { .. })));
        let extreme = format!(
            r#"{{"source":"reflex-agent","action":"drain","maintenance":{{"cloud":"aws","id":"e","kind":"spot-interruption","phase":"scheduled","targets":["i-0abc1234def567890"],"not_before":{},"duration_secs":null,"description":null,"lifecycle":null,"trigger":"t","scope":null}}}}"#,
            i64::MIN
        );
        let e = parse(extreme.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("maintenance.not_before"), "{e}");
        assert!(matches!(
            parse(br#"{"source":"reflex","action":"resume"}"#).unwrap(),
            Input::Resume { .. }
        ));
        let timer = br#"{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-12-02T10:00:00+00:00","Next":"2026-12-02T10:01:00+00:00","LastUpdated":"2026-12-02T10:00:00+00:00"},"IsPastDue":false}"#;
        assert!(matches!(
            parse(timer).unwrap(),
            Input::Resume { trigger } if trigger == "azure.timer/resume"
        ));
        let camel = br#"{"schedule":{},"scheduleStatus":null,"isPastDue":true}"#;
        assert!(matches!(parse(camel).unwrap(), Input::Resume { .. }));
        let not_timer = br#"{"IsPastDue":"no","Schedule":{}}"#;
        assert!(matches!(parse(not_timer).unwrap(), Input::Events(_)));
    }
}
