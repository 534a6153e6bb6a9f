//! Where the agent learns about maintenance: Azure IMDS scheduled events, or AWS
//! IMDSv2 (spot interruption, scheduled maintenance, rebalance recommendation).

use std::time::Duration;

use async_trait::async_trait;
use reflex_azure::scheduled::{Document, start_request};
use reflex_core::Secret;
use reflex_core::maintenance::{Maintenance, MaintenanceKind, Phase};
use serde::Deserialize;
use serde_json::Value;

/// An event as the agent saw it: the core model, and the metadata service's own
/// JSON for the hooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub maintenance: Maintenance,
    pub raw: Value,
}

/// A poll that did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollError {
    pub message: String,
    /// Throttling, 5xx, a timeout or no connection: back off and ask again.
    pub retryable: bool,
    /// The service's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl PollError {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    fn from_reqwest(what: &str, e: &reqwest::Error) -> Self {
        Self {
            message: format!("{what}: {}", without_url(e)),
            retryable: true,
            retry_after: None,
        }
    }

    fn from_status(what: &str, resp: &reqwest::Response) -> Self {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Self {
            message: format!("{what}: HTTP {status}"),
            retryable: status.as_u16() == 429 || status.is_server_error(),
            retry_after,
        }
    }
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "unreadable answer"
    } else {
        "request failed"
    };
    kind.to_string()
}

/// A metadata service the agent polls.
#[async_trait]
pub trait Source: Send + std::fmt::Debug {
    /// The node's name: the Azure VM name, or the EC2 instance id.
    async fn identify(&mut self) -> Result<String, PollError>;
    /// The events that affect this node now.
    async fn poll(&mut self) -> Result<Vec<Seen>, PollError>;
    /// Tells the cloud it may start the event now (Azure); `Ok(false)` where the cloud
    /// has no such call (AWS).
    async fn approve(&mut self, event_id: &str) -> Result<bool, PollError>;
}

/// The HTTP client for the link-local metadata service: never through a proxy.
pub fn client() -> Result<reqwest::Client, PollError> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| PollError::fatal(format!("building the HTTP client: {e}")))
}

/// Azure IMDS: `GET /metadata/scheduledevents` with `Metadata: true`.
#[derive(Debug)]
pub struct AzureImds {
    http: reqwest::Client,
    base: String,
    vm: Option<String>,
    /// `compute.resourceId`: lets the drain function find the VM in ARM.
    resource_id: Option<String>,
    /// The first call enables the service and can take minutes to answer.
    answered: bool,
    first_timeout: Duration,
    timeout: Duration,
}

const SCHEDULED_EVENTS: &str = "/metadata/scheduledevents?api-version=2020-07-01";
const COMPUTE: &str = "/metadata/instance/compute?api-version=2021-02-01";

impl AzureImds {
    pub fn new(http: reqwest::Client, base: &str, vm: Option<String>) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            vm,
            resource_id: None,
            answered: false,
            first_timeout: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }

    async fn get(&self, path: &str, timeout: Duration) -> Result<Value, PollError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Metadata", "true")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| PollError::from_reqwest("Azure IMDS", &e))?;
        if !resp.status().is_success() {
            return Err(PollError::from_status("Azure IMDS", &resp));
        }
        resp.json()
            .await
            .map_err(|e| PollError::from_reqwest("Azure IMDS", &e))
    }
}

#[async_trait]
impl Source for AzureImds {
    async fn identify(&mut self) -> Result<String, PollError> {
        if let Some(vm) = &self.vm {
            return Ok(vm.clone());
        }
        let compute = self.get(COMPUTE, self.timeout).await?;
        let name = compute["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                PollError::fatal("Azure IMDS: compute.name missing from the instance metadata")
            })?
            .to_string();
        self.resource_id = compute["resourceId"]
            .as_str()
            .filter(|r| r.starts_with("/subscriptions/"))
            .map(str::to_string);
        self.vm = Some(name.clone());
        Ok(name)
    }

    async fn poll(&mut self) -> Result<Vec<Seen>, PollError> {
        let vm = self.identify().await?;
        let timeout = if self.answered {
            self.timeout
        } else {
            self.first_timeout
        };
        let raw = self.get(SCHEDULED_EVENTS, timeout).await?;
        let doc: Document = serde_json::from_value(raw.clone()).map_err(|e| PollError {
            message: format!("Azure IMDS: unreadable scheduled-events document: {e}"),
            retryable: true,
            retry_after: None,
        })?;
        self.answered = true;
        let mut seen = Vec::new();
        for (event, raw) in doc
            .events
            .iter()
            .zip(raw["Events"].as_array().into_iter().flatten())
        {
            if !event.affects(&vm) {
                continue;
            }
            match event.to_maintenance(
                &format!("azure.imds/{}", event.event_type),
                self.resource_id.as_deref(),
            ) {
                Ok(m) => seen.push(Seen {
                    maintenance: m,
                    raw: raw.clone(),
                }),
                Err(why) => {
                    tracing::warn!(event_id = %event.event_id, reason = %why, "Ignoring a scheduled event")
                }
            }
        }
        Ok(seen)
    }

    async fn approve(&mut self, event_id: &str) -> Result<bool, PollError> {
        let resp = self
            .http
            .post(format!("{}{SCHEDULED_EVENTS}", self.base))
            .header("Metadata", "true")
            .json(&start_request(event_id))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| PollError::from_reqwest("Azure IMDS approve", &e))?;
        if !resp.status().is_success() {
            return Err(PollError::from_status("Azure IMDS approve", &resp));
        }
        Ok(true)
    }
}

/// AWS IMDSv2: a session token, then the spot, maintenance and rebalance documents.
#[derive(Debug)]
pub struct AwsImds {
    http: reqwest::Client,
    base: String,
    /// The IMDSv2 session token (a secret: `Debug` shows it redacted).
    token: Option<Secret>,
    instance: Option<String>,
    timeout: Duration,
}

/// `events/maintenance/scheduled` entries.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AwsMaintenance {
    code: String,
    #[serde(default)]
    description: Option<String>,
    event_id: String,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

/// `21 Jan 2019 09:00:43 GMT`, as IMDS writes maintenance times.
fn aws_maintenance_time(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

impl AwsImds {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: None,
            instance: None,
            timeout: Duration::from_secs(5),
        }
    }

    async fn token(&mut self) -> Result<Secret, PollError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let resp = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| PollError::from_reqwest("AWS IMDS token", &e))?;
        if !resp.status().is_success() {
            return Err(PollError::from_status("AWS IMDS token", &resp));
        }
        let token = resp
            .text()
            .await
            .map(Secret::new)
            .map_err(|e| PollError::from_reqwest("AWS IMDS token", &e))?;
        self.token = Some(token.clone());
        Ok(token)
    }

    /// `Ok(None)` for 404 (nothing announced).
    async fn get(&mut self, path: &str) -> Result<Option<String>, PollError> {
        for _ in 0..2 {
            let token = self.token().await?;
            let resp = self
                .http
                .get(format!("{}/latest/meta-data/{path}", self.base))
                .header("X-aws-ec2-metadata-token", token.expose())
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| PollError::from_reqwest("AWS IMDS", &e))?;
            match resp.status().as_u16() {
                // The session token expired: get a new one, once.
                401 => self.token = None,
                404 => return Ok(None),
                _ if resp.status().is_success() => {
                    return resp
                        .text()
                        .await
                        .map(Some)
                        .map_err(|e| PollError::from_reqwest("AWS IMDS", &e));
                }
                _ => return Err(PollError::from_status(&format!("AWS IMDS {path}"), &resp)),
            }
        }
        Err(PollError {
            message: format!("AWS IMDS {path}: HTTP 401 with a fresh token"),
            retryable: true,
            retry_after: None,
        })
    }

    fn seen(
        &self,
        id: String,
        kind: MaintenanceKind,
        phase: Phase,
        not_before: Option<i64>,
        raw: Value,
    ) -> Seen {
        Seen {
            maintenance: Maintenance {
                cloud: "aws".into(),
                id,
                kind,
                phase,
                targets: self.instance.clone().into_iter().collect(),
                not_before,
                duration_secs: None,
                description: raw["Description"].as_str().map(str::to_string),
                lifecycle: None,
                trigger: format!("aws.imds/{}", kind.name()),
                scope: None,
            },
            raw,
        }
    }
}

fn json_doc(path: &str, text: &str) -> Result<Value, PollError> {
    serde_json::from_str(text).map_err(|e| PollError {
        message: format!("AWS IMDS {path}: unreadable JSON: {e}"),
        retryable: true,
        retry_after: None,
    })
}

#[async_trait]
impl Source for AwsImds {
    async fn identify(&mut self) -> Result<String, PollError> {
        if let Some(i) = &self.instance {
            return Ok(i.clone());
        }
        let id = self
            .get("instance-id")
            .await?
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| PollError::fatal("AWS IMDS: no instance-id"))?;
        self.instance = Some(id.trim().to_string());
        Ok(id.trim().to_string())
    }

    async fn poll(&mut self) -> Result<Vec<Seen>, PollError> {
        self.identify().await?;
        let mut seen = Vec::new();
        if let Some(text) = self.get("spot/instance-action").await? {
            let raw = json_doc("spot/instance-action", &text)?;
            let time = raw["time"].as_str().unwrap_or_default().to_string();
            seen.push(self.seen(
                format!("spot:{time}"),
                MaintenanceKind::SpotInterruption,
                Phase::Scheduled,
                rfc3339(&time),
                raw,
            ));
        }
        if let Some(text) = self.get("events/maintenance/scheduled").await? {
            let raw = json_doc("events/maintenance/scheduled", &text)?;
            let list: Vec<AwsMaintenance> =
                serde_json::from_value(raw.clone()).map_err(|e| PollError {
                    message: format!("AWS IMDS events/maintenance/scheduled: {e}"),
                    retryable: true,
                    retry_after: None,
                })?;
            for (m, raw) in list.into_iter().zip(raw.as_array().into_iter().flatten()) {
                let phase = match m.state.as_deref() {
                    Some("completed") => Phase::Completed,
                    Some("canceled" | "cancelled") => Phase::Canceled,
                    _ => Phase::Scheduled,
                };
                let kind = if m.code == "instance-retirement" {
                    MaintenanceKind::Retirement
                } else {
                    MaintenanceKind::Maintenance
                };
                let mut s = self.seen(
                    m.event_id,
                    kind,
                    phase,
                    m.not_before.as_deref().and_then(aws_maintenance_time),
                    raw.clone(),
                );
                s.maintenance.description = m.description;
                seen.push(s);
            }
        }
        if let Some(text) = self.get("events/recommendations/rebalance").await? {
            let raw = json_doc("events/recommendations/rebalance", &text)?;
            let time = raw["noticeTime"].as_str().unwrap_or_default().to_string();
            seen.push(self.seen(
                format!("rebalance:{time}"),
                MaintenanceKind::Rebalance,
                Phase::Scheduled,
                None,
                raw,
            ));
        }
        Ok(seen)
    }

    async fn approve(&mut self, _event_id: &str) -> Result<bool, PollError> {
        Ok(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn aws_time_formats_read_as_epoch_seconds() {
        assert_eq!(
            aws_maintenance_time("21 Jan 2019 09:00:43 GMT"),
            Some(1_548_061_243)
        );
        assert_eq!(rfc3339("2017-09-18T08:22:00Z"), Some(1_505_722_920));
        assert_eq!(aws_maintenance_time("soon"), None);
    }

    #[test]
    fn the_imds_session_token_never_prints() {
        let mut imds = AwsImds::new(reqwest::Client::new(), "http://169.254.169.254");
        imds.token = Some(Secret::new("AQAEAS3CR3TS3CR3T=="));
        let shown = format!("{imds:?}");
        assert!(
            shown.contains("169.254.169.254") && !shown.contains("S3CR3T"),
            "{shown}"
        );
    }

    #[test]
    fn the_hooks_never_print_the_function_key() {
        let hooks = crate::hooks::Hooks {
            url: Some("https://app.azurewebsites.net/api/drain?code=S3CR3TS3CR3T".into()),
            url_key: Some(Secret::new("S3CR3TS3CR3T")),
            ..Default::default()
        };
        let shown = format!("{hooks:?}");
        assert!(
            shown.contains("https://app.azurewebsites.net/api/drain?[redacted]")
                && !shown.contains("S3CR3T"),
            "{shown}"
        );
    }
}
