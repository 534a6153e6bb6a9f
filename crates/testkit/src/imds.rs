//! An instance-metadata stand-in for `reflex-agent`: Azure IMDS (scheduled events,
//! instance compute) and AWS IMDSv2 (token, spot, maintenance, rebalance), as
//! documented (see notes/scheduled-events-protocol.md).
//!
//! Azure: `GET /metadata/scheduledevents?api-version=…` needs `Metadata: true` and no
//! `X-Forwarded-For`; `POST` with `{"StartRequests":[{"EventId":…}]}` approves, which
//! moves the event to `Started` and bumps `DocumentIncarnation`.
//! AWS: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then
//! `GET /latest/meta-data/…` with `X-aws-ec2-metadata-token`; 401 without it.
//!
//! Tests drive it through methods; the binary (`reflex-imds-fake`) through
//! `GET`/`PUT /_reflex/state`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How the stand-in answers the next scheduled-events `GET`.
#[derive(Debug, Clone)]
pub enum ImdsReply {
    /// 429 Too Many Requests.
    TooMany,
    /// Any status, e.g. 500 or 503.
    Status(u16),
    /// Wait, then answer normally (the first call enables the service and can take
    /// minutes).
    Slow(Duration),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct ImdsRequest {
    pub method: String,
    pub path: String,
    pub body: String,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    vm_name: String,
    incarnation: i64,
    events: Vec<Value>,
    approvals: Vec<(String, Instant)>,
    /// When each event id first appeared, for the latency benchmark.
    appeared: Vec<(String, Instant)>,
    script: VecDeque<ImdsReply>,
    requests: Vec<ImdsRequest>,
    tokens: Vec<String>,
    instance_id: String,
    spot: Option<Value>,
    maintenance: Vec<Value>,
    rebalance: Option<Value>,
}

type Shared = Arc<Mutex<Inner>>;

/// The IMDS stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct ImdsFake {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

/// An Azure scheduled event as IMDS lists it.
pub fn azure_event(id: &str, kind: &str, vm: &str, not_before: &str, duration: i64) -> Value {
    json!({
        "EventId": id, "EventStatus": "Scheduled", "EventType": kind,
        "ResourceType": "VirtualMachine", "Resources": [vm], "NotBefore": not_before,
        "Description": format!("Virtual machine is going to be {}", kind.to_lowercase()),
        "EventSource": "Platform", "DurationInSeconds": duration,
    })
}

/// An RFC 1123 `NotBefore` this many seconds from now.
pub fn not_before_in(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(secs))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

fn query_has(uri: &Uri, key: &str) -> bool {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv.split('=').next() == Some(key))
}

fn azure(
    inner: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Bad request. Required metadata header not specified"}"#,
        );
    }
    if headers.contains_key("x-forwarded-for") {
        return text(StatusCode::BAD_REQUEST, r#"{"error":"Bad request"}"#);
    }
    if !query_has(uri, "api-version") {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Bad request. api-version was not specified in the request"}"#,
        );
    }
    match (method.as_str(), uri.path()) {
        ("GET", "/metadata/instance/compute") => axum::Json(json!({
            "name": inner.vm_name, "location": "westeurope", "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
            "resourceGroupName": "rg-web", "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "resourceId": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{}", inner.vm_name),
        }))
        .into_response(),
        ("GET", "/metadata/scheduledevents") => axum::Json(json!({
            "DocumentIncarnation": inner.incarnation, "Events": inner.events,
        }))
        .into_response(),
        ("POST", "/metadata/scheduledevents") => {
            let Ok(req) = serde_json::from_str::<Value>(body) else {
                return text(StatusCode::BAD_REQUEST, r#"{"error":"Bad request"}"#);
            };
            let Some(starts) = req["StartRequests"].as_array() else {
                return text(StatusCode::BAD_REQUEST, r#"{"error":"Bad request"}"#);
            };
            for s in starts {
                let id = s["EventId"].as_str().unwrap_or_default().to_string();
                if let Some(e) = inner.events.iter_mut().find(|e| e["EventId"] == id.as_str()) {
                    e["EventStatus"] = json!("Started");
                    e["NotBefore"] = json!("");
                    inner.approvals.push((id, Instant::now()));
                    inner.incarnation += 1;
                }
            }
            StatusCode::OK.into_response()
        }
        _ => text(StatusCode::NOT_FOUND, r#"{"error":"Not found"}"#),
    }
}

fn aws(inner: &mut Inner, method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method == Method::PUT && path == "/latest/api/token" {
        let ttl = headers
            .get("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        return match ttl {
            Some(1..=21_600) => {
                let token = format!("AQAEA-reflex-token-{}", inner.tokens.len());
                inner.tokens.push(token.clone());
                text(StatusCode::OK, token)
            }
            _ => text(StatusCode::BAD_REQUEST, ""),
        };
    }
    let token = headers
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !inner.tokens.iter().any(|t| t == token) {
        return text(StatusCode::UNAUTHORIZED, "");
    }
    let found = |v: &Option<Value>| match v {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => text(StatusCode::NOT_FOUND, "Not Found"),
    };
    match path {
        "/latest/meta-data/instance-id" => text(StatusCode::OK, inner.instance_id.clone()),
        "/latest/meta-data/spot/instance-action" => found(&inner.spot),
        "/latest/meta-data/events/recommendations/rebalance" => found(&inner.rebalance),
        "/latest/meta-data/events/maintenance/scheduled" => {
            axum::Json(Value::Array(inner.maintenance.clone())).into_response()
        }
        _ => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn state(inner: &Inner) -> Value {
    json!({
        "vm_name": inner.vm_name, "instance_id": inner.instance_id,
        "azure_events": inner.events,
        "approvals": inner.approvals.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        "spot": inner.spot, "maintenance": inner.maintenance, "rebalance": inner.rebalance,
    })
}

/// `PUT /_reflex/state`: replaces the parts named in the body.
fn put_state(inner: &mut Inner, body: &str) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return text(StatusCode::BAD_REQUEST, "expected a JSON object");
    };
    if let Some(events) = v["azure_events"].as_array() {
        set_events(inner, events.clone());
    }
    if let Some(spot) = v.get("spot") {
        inner.spot = (!spot.is_null()).then(|| spot.clone());
    }
    if let Some(reb) = v.get("rebalance") {
        inner.rebalance = (!reb.is_null()).then(|| reb.clone());
    }
    if let Some(m) = v["maintenance"].as_array() {
        inner.maintenance = m.clone();
    }
    axum::Json(state(inner)).into_response()
}

fn set_events(inner: &mut Inner, events: Vec<Value>) {
    for e in &events {
        let id = e["EventId"].as_str().unwrap_or_default().to_string();
        if !inner.appeared.iter().any(|(seen, _)| *seen == id) {
            inner.appeared.push((id, Instant::now()));
        }
    }
    inner.events = events;
    inner.incarnation += 1;
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).to_string();
    let path = uri.path().to_string();
    let delay = {
        let mut inner = s.lock().unwrap();
        inner.requests.push(ImdsRequest {
            method: method.to_string(),
            path: path.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        if path == "/_reflex/state" {
            return match method {
                Method::PUT => put_state(&mut inner, &body),
                _ => axum::Json(state(&inner)).into_response(),
            };
        }
        let scripted = (method == Method::GET && path == "/metadata/scheduledevents")
            .then(|| inner.script.pop_front())
            .flatten();
        match scripted {
            Some(ImdsReply::TooMany) => {
                return text(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            }
            Some(ImdsReply::Status(code)) => {
                return text(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "",
                );
            }
            Some(ImdsReply::Slow(d)) => Some(d),
            None => None,
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut inner = s.lock().unwrap();
    if path.starts_with("/metadata/") {
        azure(&mut inner, &method, &uri, &headers, &body)
    } else {
        aws(&mut inner, &method, &path, &headers)
    }
}

impl ImdsFake {
    /// Starts on a free loopback port for the VM `vm_name` (AWS: instance
    /// `i-0abc1234def567890`).
    pub async fn start(vm_name: &str) -> Self {
        Self::start_on(0, vm_name).await
    }

    pub async fn start_on(port: u16, vm_name: &str) -> Self {
        let shared: Shared = Arc::new(Mutex::new(Inner {
            vm_name: vm_name.to_string(),
            incarnation: 1,
            instance_id: "i-0abc1234def567890".into(),
            ..Inner::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = crate::serve(port, app, "IMDS stand-in").await;
        Self { addr, shared, task }
    }

    /// The base URL for `REFLEX_IMDS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds (or replaces, by `EventId`) an Azure scheduled event.
    pub fn put_event(&self, event: Value) {
        let mut inner = self.shared.lock().unwrap();
        let mut events = inner.events.clone();
        events.retain(|e| e["EventId"] != event["EventId"]);
        events.push(event);
        set_events(&mut inner, events);
    }

    /// Sets an event's `EventStatus`.
    pub fn set_status(&self, id: &str, status: &str) {
        let mut inner = self.shared.lock().unwrap();
        let mut events = inner.events.clone();
        for e in events.iter_mut().filter(|e| e["EventId"] == id) {
            e["EventStatus"] = json!(status);
        }
        set_events(&mut inner, events);
    }

    /// The event with this id, as listed now.
    pub fn event(&self, id: &str) -> Option<Value> {
        let inner = self.shared.lock().unwrap();
        inner.events.iter().find(|e| e["EventId"] == id).cloned()
    }

    /// Takes an event out of the document, as IMDS does once it is over.
    pub fn remove_event(&self, id: &str) {
        let mut inner = self.shared.lock().unwrap();
        let mut events = inner.events.clone();
        events.retain(|e| e["EventId"] != id);
        set_events(&mut inner, events);
    }

    /// The event ids approved with `StartRequests`, in order.
    pub fn approvals(&self) -> Vec<String> {
        let inner = self.shared.lock().unwrap();
        inner.approvals.iter().map(|(id, _)| id.clone()).collect()
    }

    /// When the approval of `id` arrived.
    pub fn approved_at(&self, id: &str) -> Option<Instant> {
        let inner = self.shared.lock().unwrap();
        inner
            .approvals
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, t)| *t)
    }

    /// When the event `id` first appeared in the document.
    pub fn appeared_at(&self, id: &str) -> Option<Instant> {
        let inner = self.shared.lock().unwrap();
        inner
            .appeared
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, t)| *t)
    }

    /// Queues answers for the next scheduled-events `GET`s.
    pub fn script(&self, replies: impl IntoIterator<Item = ImdsReply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// AWS: the spot `instance-action` document, or none (404).
    pub fn set_spot(&self, action: Option<Value>) {
        self.shared.lock().unwrap().spot = action;
    }

    /// AWS: the `events/maintenance/scheduled` list.
    pub fn set_maintenance(&self, events: Vec<Value>) {
        self.shared.lock().unwrap().maintenance = events;
    }

    /// AWS: the rebalance recommendation, or none (404).
    pub fn set_rebalance(&self, notice: Option<Value>) {
        self.shared.lock().unwrap().rebalance = notice;
    }

    /// AWS: how many session tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().unwrap().tokens.len()
    }
}

impl Drop for ImdsFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}
