//! AWS event shapes, recognised from the payload itself, turned into signals.

pub mod cloudtrail;
pub mod config;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::{ParseError, Parsed, Signal, SignalKind};
use serde_json::Value;

pub use reflex_core::json::{MAX_PAYLOAD_BYTES, parse_json, typed};

/// The EventBridge envelope, if the payload is one (`detail-type` and `source`).
pub fn eventbridge(value: &Value) -> Option<Result<EventBridgeEvent<Value>, ParseError>> {
    let obj = value.as_object()?;
    if !(obj.contains_key("detail-type") && obj.contains_key("source")) {
        return None;
    }
    Some(typed(value.clone(), ""))
}

/// A signal carrying the envelope's context.
pub(crate) fn signal(env: &EventBridgeEvent<Value>, trigger: String, kind: SignalKind) -> Signal {
    Signal {
        trigger,
        event_id: env.id.clone(),
        account: env.account.clone(),
        region: env.region.clone(),
        time: env.time.map(|t| t.to_rfc3339()),
        actor: None,
        kind,
    }
}

/// Parses any payload `close-open-ports` accepts: CloudTrail ingress changes, Config
/// compliance changes and scheduled sweeps, all through EventBridge.
pub fn parse_ports_event(raw: &[u8]) -> Result<Parsed, ParseError> {
    parse_ports_value(&parse_json(raw)?)
}

/// [`parse_ports_event`] on an already-parsed document.
pub fn parse_ports_value(value: &Value) -> Result<Parsed, ParseError> {
    let Some(env) = eventbridge(value) else {
        return Ok(Parsed::Ignored {
            trigger: "unknown".into(),
            reason: "not an EventBridge event (no detail-type/source) nor an Azure Monitor \
                     alert: close-open-ports takes CloudTrail, Config and scheduled events, \
                     and Azure Activity Log alerts for NSG writes"
                .into(),
        });
    };
    let env = env?;
    match (env.source.as_str(), env.detail_type.as_str()) {
        (_, "AWS API Call via CloudTrail") => cloudtrail::parse(&env),
        ("aws.config", "Config Rules Compliance Change") => config::parse(&env),
        ("aws.events", "Scheduled Event") => Ok(Parsed::Signal(Box::new(signal(
            &env,
            "aws.events/Scheduled Event".into(),
            SignalKind::Sweep,
        )))),
        (source, detail_type) => Ok(Parsed::Ignored {
            trigger: format!("{source}/{detail_type}"),
            reason: format!(
                "'{detail_type}' events from {source} are not handled by close-open-ports"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/aws")
            .join(rel);
        std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("{}", p.display()))
    }

    #[test]
    fn a_malformed_group_id_or_region_is_bad_input_naming_the_field() {
        let mut ct = fixture("cloudtrail/authorize-ssh-world-open.json");
        ct["detail"]["requestParameters"]["groupId"] = "sg-1?x=1".into();
        let e = parse_ports_value(&ct)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("detail.requestParameters.groupId"), "{e}");
        let mut ct = fixture("cloudtrail/authorize-ssh-world-open.json");
        ct["detail"]["awsRegion"] = "evil.example#".into();
        let e = parse_ports_value(&ct)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("detail.awsRegion"), "{e}");
        let mut cfg = fixture("config/restricted-ssh-noncompliant.json");
        cfg["detail"]["resourceId"] = "sg-../../x".into();
        let e = parse_ports_value(&cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("detail.resourceId"), "{e}");
    }

    #[test]
    fn empty_and_blank_payloads_are_bad_input() {
        for raw in [&b""[..], b"  \n"] {
            let e = parse_ports_event(raw).err().map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some("empty payload: expected a JSON event"));
        }
    }

    #[test]
    fn truncated_json_says_where() {
        let e = parse_ports_event(br#"{"detail-type": "Scheduled Event", "sou"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("not valid JSON: EOF while parsing"), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn non_objects_are_bad_input() {
        let e = parse_ports_event(b"[1,2]").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("expected a JSON object, found an array"));
    }

    #[test]
    fn envelope_type_errors_name_the_field() {
        let e = parse_ports_event(br#"{"detail-type": 7, "source": "aws.events", "detail": {}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("detail-type: invalid type: integer `7`"),
            "{e}"
        );
    }

    #[test]
    fn unrelated_objects_are_ignored_with_a_reason() {
        let p = parse_ports_event(br#"{"hello": "world"}"#);
        assert!(matches!(p, Ok(Parsed::Ignored { .. })), "{p:?}");
    }

    #[test]
    fn oversized_payloads_are_refused_without_parsing() {
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        let e = parse_ports_event(&big)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("above the"), "{e}");
    }
}
