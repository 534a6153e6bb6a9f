//! CloudWatch Logs subscription deliveries: `{"awslogs": {"data": base64(gzip(json))}}`.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reflex_core::ParseError;
use reflex_core::json::typed;
use serde::Deserialize;
use serde_json::Value;

/// The most a delivery may hold once decompressed. CloudWatch Logs batches are at
/// most about 1 MB of log events; anything far larger is not a real delivery (and a
/// gzip bomb must not exhaust the function's memory).
pub const MAX_DECODED_BYTES: u64 = 8 * 1024 * 1024;

/// One delivery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// `DATA_MESSAGE`, or `CONTROL_MESSAGE` (a reachability probe).
    pub message_type: String,
    pub owner: String,
    pub log_group: String,
    pub log_stream: String,
    #[serde(default)]
    pub subscription_filters: Vec<String>,
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent {
    pub id: String,
    /// Milliseconds since the epoch, as CloudWatch Logs recorded it.
    pub timestamp: i64,
    pub message: String,
}

impl Batch {
    pub fn is_control(&self) -> bool {
        self.message_type == "CONTROL_MESSAGE"
    }
}

/// Whether the payload is a CloudWatch Logs subscription delivery.
pub fn is_subscription(v: &Value) -> bool {
    v.pointer("/awslogs/data").is_some()
}

/// Decodes a delivery: base64, then gzip (bounded), then JSON.
pub fn decode(v: &Value) -> Result<Batch, ParseError> {
    let at = "awslogs.data";
    let data = v
        .pointer("/awslogs/data")
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError::at(at, "expected a base64 string"))?;
    let gz = STANDARD
        .decode(data.trim())
        .map_err(|e| ParseError::at(at, format!("not base64: {e}")))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| ParseError::at(at, format!("not gzip: {e}")))?;
    if json.len() as u64 > MAX_DECODED_BYTES {
        return Err(ParseError::at(
            at,
            format!("more than {MAX_DECODED_BYTES} bytes once decompressed"),
        ));
    }
    let value: Value = serde_json::from_slice(&json)
        .map_err(|e| ParseError::at(at, format!("not JSON once decompressed: {e}")))?;
    typed(value, at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn fixture(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/aws/cloudwatch-logs")
            .join(name);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn wrap(bytes: &[u8]) -> Value {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        serde_json::json!({"awslogs": {"data": STANDARD.encode(gz.finish().unwrap())}})
    }

    #[test]
    fn a_delivery_decodes_to_its_log_events() {
        let v = fixture("secure-bruteforce-rhel.json");
        assert!(is_subscription(&v));
        let b = decode(&v).unwrap();
        assert_eq!(
            (b.log_group.as_str(), b.log_stream.as_str()),
            ("/var/log/secure", "i-0abc1234def567890")
        );
        assert!(!b.is_control());
        assert!(b.log_events.len() > 20);
        assert!(b.log_events[0].message.contains("sshd["));
        assert!(
            decode(&fixture("control-message.json"))
                .unwrap()
                .is_control()
        );
    }

    #[test]
    fn broken_deliveries_say_what_is_wrong() {
        let e = |v: Value| decode(&v).unwrap_err().to_string();
        assert!(
            e(serde_json::json!({"awslogs": {"data": 7}})).contains("expected a base64 string")
        );
        assert!(e(serde_json::json!({"awslogs": {"data": "%%%"}})).contains("not base64"));
        assert!(
            e(serde_json::json!({"awslogs": {"data": STANDARD.encode(b"plain")}}))
                .contains("not gzip")
        );
        assert!(e(wrap(b"{\"messageType\": 1}")).starts_with("awslogs.data.messageType"));
        assert!(e(wrap(b"[1")).contains("not JSON"));
        // A gzip bomb: 9 MiB of zeros compresses to a few KB.
        let bomb = wrap(&vec![b' '; 9 * 1024 * 1024]);
        assert!(e(bomb).contains("once decompressed"));
    }
}
