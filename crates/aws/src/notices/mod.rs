//! AWS payloads read as notices for `alert-to-slack`: CloudWatch alarms (SNS and
//! EventBridge), CloudTrail security events, Config compliance changes, AWS Health
//! events, GuardDuty findings, and any other SNS message or EventBridge event.

pub mod alarm;
mod findings;
mod generic;
pub mod region;
mod trail;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::{Noticed, ParseError};
use serde::Deserialize;
use serde_json::Value;

use crate::events::{eventbridge, typed};
pub use generic::SnsMessage;
pub use trail::own_change;

/// Lines shown at most when flattening a generic payload.
const MAX_LINES: usize = 40;

/// A scalar as text; `None` for null, arrays and objects.
pub(crate) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `path: value` lines for every scalar in `v` (dotted paths, `[i]` for arrays),
/// so a payload nobody special-cased still reads well.
pub(crate) fn flatten(v: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, out: &mut Vec<String>, total: &mut usize) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, &p, out, total);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), out, total);
                }
            }
            Value::Null => {}
            scalar => {
                *total += 1;
                if out.len() < MAX_LINES {
                    let text = text_of(scalar).unwrap_or_default();
                    out.push(if path.is_empty() {
                        text
                    } else {
                        format!("{path}: {text}")
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut total = 0;
    walk(v, "", &mut out, &mut total);
    if total > out.len() {
        out.push(format!("… and {} more field(s)", total - out.len()));
    }
    out
}

/// Top-level scalars only (CloudTrail request parameters).
pub(crate) fn scalar_lines(v: &Value) -> Vec<String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, x)| text_of(x).map(|t| format!("{k}: {t}")))
        .take(MAX_LINES)
        .collect()
}

/// What identifies one delivery of an EventBridge event: its id.
pub(crate) fn delivery_key(env: &EventBridgeEvent<Value>, what: &str) -> String {
    match &env.id {
        Some(id) => format!("eventbridge:{id}"),
        None => format!(
            "{what}:{}:{}:{}",
            env.source,
            env.detail_type,
            env.time.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
    }
}

#[derive(Debug, Deserialize)]
struct SnsEvent {
    #[serde(rename = "Records")]
    records: Vec<SnsRecord>,
}

#[derive(Debug, Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

/// Whether the payload is an SNS delivery (`Records[].Sns`).
fn is_sns(value: &Value) -> bool {
    value
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .is_some_and(|r| r.get("Sns").is_some())
}

/// Reads any AWS payload `alert-to-slack` takes. `None` when the payload is neither an
/// SNS delivery nor an EventBridge event.
pub fn parse(value: &Value) -> Option<Result<Vec<Noticed>, ParseError>> {
    if is_sns(value) {
        return Some(parse_sns(value));
    }
    let env = eventbridge(value)?;
    Some(env.and_then(|e| from_eventbridge(&e)).map(|n| vec![n]))
}

fn parse_sns(value: &Value) -> Result<Vec<Noticed>, ParseError> {
    let event: SnsEvent = typed(value.clone(), "")?;
    let mut out = Vec::new();
    for (i, r) in event.records.iter().enumerate() {
        let path = format!("Records[{i}].Sns.Message");
        let body: Option<Value> = serde_json::from_str(&r.sns.message)
            .ok()
            .filter(Value::is_object);
        let noticed = match body {
            Some(b) if alarm::is_sns_alarm(&b) => {
                Noticed::Notice(Box::new(alarm::from_sns(b, &path)?))
            }
            // An EventBridge rule with an SNS target forwards the event itself.
            Some(b) => match eventbridge(&b) {
                Some(env) => from_eventbridge(
                    &env.map_err(|e| ParseError::at(format!("{path}.{}", e.path), e.message))?,
                )?,
                None => Noticed::Notice(Box::new(generic::sns(&r.sns, Some(&b)))),
            },
            None => Noticed::Notice(Box::new(generic::sns(&r.sns, None))),
        };
        out.push(noticed);
    }
    if out.is_empty() {
        return Err(ParseError::at("Records", "no records"));
    }
    Ok(out)
}

fn from_eventbridge(env: &EventBridgeEvent<Value>) -> Result<Noticed, ParseError> {
    let notice = match (env.source.as_str(), env.detail_type.as_str()) {
        ("aws.cloudwatch", "CloudWatch Alarm State Change") => alarm::from_eventbridge(env)?,
        (_, "AWS API Call via CloudTrail" | "AWS Console Sign In via CloudTrail") => {
            return trail::parse(env);
        }
        ("aws.config", "Config Rules Compliance Change") => return findings::config(env),
        ("aws.health", "AWS Health Event") => return findings::health(env),
        ("aws.guardduty", "GuardDuty Finding") => return findings::guardduty(env),
        _ => generic::eventbridge(env),
    };
    Ok(Noticed::Notice(Box::new(notice)))
}
