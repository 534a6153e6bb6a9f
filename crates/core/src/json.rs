//! JSON at the boundary: size and shape checks with one-line errors, and typed
//! deserialisation whose errors name the failing field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ParseError;

/// Largest payload accepted. Lambda's own limit for an async invocation is 1 MiB,
/// EventBridge caps events at 256 KiB and Azure Monitor webhooks at 256 KB; anything
/// far larger is not a real delivery.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Parses raw bytes as a JSON object, with a one-line error for everything else.
pub fn parse_json(raw: &[u8]) -> Result<Value, ParseError> {
    let v = parse_json_any(raw)?;
    if !v.is_object() {
        return Err(ParseError::at(
            "",
            format!("expected a JSON object, found {}", kind_of(&v)),
        ));
    }
    Ok(v)
}

/// Parses raw bytes as any JSON document (an Event Grid batch is an array), with
/// the same size and emptiness checks.
pub fn parse_json_any(raw: &[u8]) -> Result<Value, ParseError> {
    if raw.len() > MAX_PAYLOAD_BYTES {
        return Err(ParseError::at(
            "",
            format!(
                "payload is {} bytes, above the {MAX_PAYLOAD_BYTES}-byte limit",
                raw.len()
            ),
        ));
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::at("", "empty payload: expected a JSON event"));
    }
    serde_json::from_slice(raw).map_err(|e| ParseError::at("", format!("not valid JSON: {e}")))
}

/// `a string`, `an array`, … for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deserialises `value` into `T`, naming the failing field under `prefix`.
pub fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (true, _) => inner.clone(),
            (false, ".") => prefix.to_string(),
            (false, _) => format!("{prefix}.{inner}"),
        };
        let path = if path == "." { String::new() } else { path };
        ParseError::at(path, e.into_inner().to_string())
    })
}
