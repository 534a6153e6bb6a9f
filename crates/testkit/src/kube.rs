//! A Kubernetes API stand-in for the endpoints a node drain uses, as kube-rs calls
//! them:
//!
//! - `GET /api/v1/nodes`: a `NodeList`; `GET /api/v1/nodes/{name}`: a `Node`, or 404
//!   with a `Status`.
//! - `PATCH /api/v1/nodes/{name}`: `application/merge-patch+json` (RFC 7386: objects
//!   merge, `null` deletes, arrays replace).
//! - `GET /api/v1/pods?fieldSelector=spec.nodeName=X`: a `PodList` of that node's pods.
//! - `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`: a `policy/v1` `Eviction`.
//!   201 and the pod is gone; 429 `TooManyRequests` while a PodDisruptionBudget
//!   refuses (as many times as scripted with [`KubeFake::refuse`]); 404 for no pod.
//!
//! Every request is recorded with its body and time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request received.
#[derive(Debug, Clone)]
pub struct KubeRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
    pub at: SystemTime,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<String, Value>,
    /// `namespace/name` → pod.
    pods: BTreeMap<String, Value>,
    /// `namespace/name` → PDB refusals left.
    refusals: BTreeMap<String, u32>,
    requests: Vec<KubeRequest>,
}

type Shared = Arc<Mutex<Inner>>;

/// The running stand-in; stops on drop.
#[derive(Debug)]
pub struct KubeFake {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn list(kind: &str, items: &[Value]) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})),
    )
        .into_response()
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = s.lock().unwrap();
    inner.requests.push(KubeRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.clone(),
        at: SystemTime::now(),
    });
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["api", "v1", "nodes"]) => list(
            "NodeList",
            &inner.nodes.values().cloned().collect::<Vec<_>>(),
        ),
        (Method::GET, ["api", "v1", "nodes", name]) => match inner.nodes.get(*name) {
            Some(n) => (StatusCode::OK, axum::Json(n.clone())).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("nodes \"{name}\" not found"),
            ),
        },
        (Method::PATCH, ["api", "v1", "nodes", name]) => {
            let merge = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/merge-patch+json"));
            if !merge {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    "this stand-in takes merge patches only",
                );
            }
            let Some(n) = inner.nodes.get_mut(*name) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("nodes \"{name}\" not found"),
                );
            };
            merge_patch(n, &body);
            (StatusCode::OK, axum::Json(n.clone())).into_response()
        }
        (Method::GET, ["api", "v1", "pods"]) => {
            let node = crate::url_decode(&query)
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldSelector=spec.nodeName="))
                .map(str::to_string);
            let items: Vec<Value> = inner
                .pods
                .values()
                .filter(|p| node.as_deref().is_none_or(|n| p["spec"]["nodeName"] == n))
                .cloned()
                .collect();
            list("PodList", &items)
        }
        (Method::POST, ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let key = format!("{ns}/{name}");
            if !inner.pods.contains_key(&key) {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                );
            }
            if body["kind"] != "Eviction" || body["apiVersion"] != "policy/v1" {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "expected a policy/v1 Eviction",
                );
            }
            if let Some(left) = inner.refusals.get_mut(&key).filter(|l| **l > 0) {
                *left -= 1;
                return status(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                );
            }
            inner.pods.remove(&key);
            (StatusCode::CREATED, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))).into_response()
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// A node document; `provider_id` like `aws:///us-east-1a/i-…`.
pub fn node_doc(name: &str, provider_id: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"providerID": provider_id},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// A running pod on `node`; `owner` is the controller kind (`ReplicaSet`,
/// `DaemonSet`), `mirror` marks a static pod.
pub fn pod_doc(
    ns: &str,
    name: &str,
    node: &str,
    owner: Option<&str>,
    mirror: bool,
    grace: i64,
) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace, "containers": [{"name": "c", "image": "app"}]},
        "status": {"phase": "Running"},
    });
    if let Some(kind) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": format!("{name}-owner"), "uid": "u1", "controller": true}]);
    }
    if mirror {
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
    }
    p
}

impl KubeFake {
    pub async fn start() -> Self {
        let state = Shared::default();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let (addr, task) = crate::serve(0, app, "Kubernetes API stand-in").await;
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_node(&self, doc: Value) {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.state.lock().unwrap().nodes.insert(name, doc);
    }

    pub fn add_pod(&self, doc: Value) {
        let key = format!(
            "{}/{}",
            doc["metadata"]["namespace"].as_str().unwrap_or("default"),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        self.state.lock().unwrap().pods.insert(key, doc);
    }

    /// The next `times` evictions of `ns/name` are refused with 429 (a PDB).
    pub fn refuse(&self, pod: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .refusals
            .insert(pod.to_string(), times);
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().nodes.get(name).cloned()
    }

    /// `namespace/name` of the pods still there.
    pub fn pods(&self) -> Vec<String> {
        self.state.lock().unwrap().pods.keys().cloned().collect()
    }

    pub fn requests(&self) -> Vec<KubeRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for KubeFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}
