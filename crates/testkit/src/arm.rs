//! An ARM stand-in for network security groups, plus the App Service managed-identity
//! token endpoint, following the documented protocols:
//!
//! - `GET {nsg id}?api-version=…`: the NSG with its rules and tags, or 404
//!   `{"error": {"code": "ResourceNotFound", …}}`.
//! - `DELETE {nsg id}/securityRules/{name}?api-version=…`: 202 with
//!   `Azure-AsyncOperation` and `Retry-After`, or 200 (see [`DeleteMode`]); 204 when
//!   the rule does not exist. The rule disappears when the operation succeeds.
//! - `PUT {id}`: creates or replaces any resource (NSGs for the demo; VMs and
//!   load-balancer backend pools for the drain), and `GET {id}` reads it back. Each
//!   stored resource carries an `etag` (`W/"n"`, new on every write); a PUT with
//!   `If-Match` that names another ETag gets 412 `PreconditionFailed` and changes
//!   nothing. [`ArmFake::write_after_get`] makes another writer change a
//!   resource between a client's read and its write.
//! - `POST {vm id}/providers/Microsoft.Maintenance/scheduledevents/{id}/acknowledge`:
//!   200 `{"value": "Successfully Approved"}`, or 404 when the VM does not exist.
//! - `GET /operations/{n}`: `{"status": "InProgress"}` once, then `Succeeded`.
//! - `GET /common/discovery/v2.0/keys`: the JWKS holding the test signing key's public
//!   half ([`entra_token`] signs with its private half).
//! - `GET /msi/token?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER`:
//!   `{"access_token", "expires_on" (epoch seconds as a string), …}`.
//!
//! Every request is recorded; scripted replies (429 with `Retry-After`, 5xx, slow)
//! answer the next ARM requests before the normal behaviour resumes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where the stand-in serves Entra's signing keys (the test key's public half).
pub const JWKS_PATH: &str = "/common/discovery/v2.0/keys";
/// The `kid` of the test signing key.
pub const TEST_KID: &str = "reflex-test-key";

/// Signs `claims` as Entra would for a secure webhook (RS256, `kid` of the test key).
pub fn entra_token(claims: &Value) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../keys/test-signing-key.pem"))
            .expect("the test signing key parses");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(TEST_KID.into());
    jsonwebtoken::encode(&header, claims, &key).expect("sign the test token")
}

/// The identity header value the token endpoint expects.
pub const IDENTITY_HEADER: &str = "reflex-test-identity-header";

/// How DELETE answers when the rule exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// 202 + `Azure-AsyncOperation`, polled to `Succeeded`.
    Async,
    /// 200 at once.
    Sync,
    /// 202, then the operation ends `Failed`.
    AsyncFails,
    /// 202, then the operation ends `Canceled` (superseded by another operation).
    AsyncCanceled,
}

/// A scripted answer for the next ARM request.
#[derive(Debug, Clone)]
pub enum ArmReply {
    Throttled {
        retry_after_secs: u64,
    },
    Status(u16),
    Slow(Duration),
    /// 202 with `Azure-AsyncOperation` and `Location` set to this URL (any origin:
    /// tests check the client never follows it off ARM with its token).
    Accepted {
        operation_url: String,
    },
}

/// One request received.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: SystemTime,
    /// The `If-Match` header, when sent.
    pub if_match: Option<String>,
}

#[derive(Debug)]
struct Inner {
    nsgs: BTreeMap<String, Value>,
    operations: BTreeMap<u32, (String, u32)>,
    next_op: u32,
    delete_mode: DeleteMode,
    script: VecDeque<ArmReply>,
    requests: Vec<ArmRequest>,
    tokens_issued: u32,
    jwks_fetches: u32,
    etags: u64,
    /// (resource key, GETs of it still to answer first, document): stored right
    /// after that GET is answered.
    interleave: Option<(String, u32, Value)>,
}

impl Inner {
    /// Stores `doc` under `k` with a fresh ETag, and returns it as stored.
    fn store(&mut self, k: String, mut doc: Value) -> Value {
        self.etags += 1;
        doc["etag"] = json!(format!("W/\"{}\"", self.etags));
        self.nsgs.insert(k, doc.clone());
        doc
    }
}

type Shared = Arc<Mutex<Inner>>;

/// The stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct ArmFake {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn key(path: &str) -> String {
    path.trim_end_matches('/').to_ascii_lowercase()
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
    if path == "/msi/token" {
        return token(&s, &headers, &query);
    }
    if path == JWKS_PATH {
        s.lock().unwrap().jwks_fetches += 1;
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            include_str!("../keys/test-jwks.json"),
        )
            .into_response();
    }
    let scripted = {
        let mut inner = s.lock().unwrap();
        inner.requests.push(ArmRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: SystemTime::now(),
            if_match: headers
                .get("if-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        inner.script.pop_front()
    };
    match scripted {
        Some(ArmReply::Throttled { retry_after_secs }) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "throttled",
            );
            r.headers_mut()
                .insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            return r;
        }
        Some(ArmReply::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, "InternalServerError", "scripted failure");
        }
        Some(ArmReply::Slow(d)) => tokio::time::sleep(d).await,
        Some(ArmReply::Accepted { operation_url }) => {
            return (
                StatusCode::ACCEPTED,
                [
                    ("azure-asyncoperation", operation_url.clone()),
                    ("location", operation_url),
                    ("retry-after", "0".into()),
                ],
            )
                .into_response();
        }
        None => {}
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "no bearer token",
        );
    }
    if !query.contains("api-version=") && !path.starts_with("/operations/") {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "api-version",
        );
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut inner = s.lock().unwrap();
    if let Some(n) = path.strip_prefix("/operations/") {
        let n: u32 = n.parse().unwrap_or(0);
        let Some((rule, polls)) = inner.operations.get(&n).cloned() else {
            return error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if polls == 0 {
            inner.operations.insert(n, (rule, 1));
            return (StatusCode::OK, axum::Json(json!({"status": "InProgress"}))).into_response();
        }
        if inner.delete_mode == DeleteMode::AsyncFails {
            return (
                StatusCode::OK,
                axum::Json(json!({"status": "Failed", "error": {"code": "InternalServerError", "message": "the delete failed"}})),
            )
                .into_response();
        }
        if inner.delete_mode == DeleteMode::AsyncCanceled {
            return (
                StatusCode::OK,
                axum::Json(json!({"status": "Canceled", "error": {"code": "CanceledAndSupersededDueToAnotherOperation", "message": "Operation was canceled."}})),
            )
                .into_response();
        }
        remove_rule(&mut inner, &rule);
        return (StatusCode::OK, axum::Json(json!({"status": "Succeeded"}))).into_response();
    }
    let k = key(&path);
    match method {
        // Create or replace an NSG (the demo sets its world up this way).
        Method::PUT if !k.contains("/securityrules/") => {
            let Ok(mut doc) = serde_json::from_slice::<Value>(&body) else {
                return error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "not JSON");
            };
            doc["id"] = json!(path);
            doc["name"] = json!(path.rsplit('/').next().unwrap_or_default());
            let current = inner.nsgs.get(&k).map(|d| d["etag"].clone());
            if let Some(want) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
                let matches = match &current {
                    Some(tag) => want == "*" || tag.as_str() == Some(want),
                    None => false,
                };
                if !matches {
                    return error(
                        StatusCode::PRECONDITION_FAILED,
                        "PreconditionFailed",
                        "The specified ETag does not match the resource's current ETag.",
                    );
                }
            }
            let created = current.is_none();
            let doc = inner.store(k, doc);
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(doc)).into_response()
        }
        Method::GET => match inner.nsgs.get(&k).cloned() {
            Some(doc) => {
                if let Some((at, n, _)) = inner.interleave.as_mut()
                    && *at == k
                {
                    *n = n.saturating_sub(1);
                    if *n == 0
                        && let Some((at, _, other)) = inner.interleave.take()
                    {
                        inner.store(at, other);
                    }
                }
                (StatusCode::OK, axum::Json(doc)).into_response()
            }
            None => error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "The Resource was not found.",
            ),
        },
        Method::DELETE => {
            let Some((nsg, _)) = k.split_once("/securityrules/") else {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "NotSupported",
                    "only rule deletes",
                );
            };
            let exists = inner
                .nsgs
                .get(nsg)
                .and_then(|d| d["properties"]["securityRules"].as_array())
                .is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| r["id"].as_str().map(key) == Some(k.clone()))
                });
            if !exists {
                return StatusCode::NO_CONTENT.into_response();
            }
            match inner.delete_mode {
                DeleteMode::Sync => {
                    remove_rule(&mut inner, &k);
                    StatusCode::OK.into_response()
                }
                DeleteMode::Async | DeleteMode::AsyncFails | DeleteMode::AsyncCanceled => {
                    inner.next_op += 1;
                    let n = inner.next_op;
                    inner.operations.insert(n, (k, 0));
                    let op = format!("http://{host}/operations/{n}?api-version=2024-07-01");
                    (
                        StatusCode::ACCEPTED,
                        [
                            ("azure-asyncoperation", op.clone()),
                            ("location", op),
                            ("retry-after", "0".into()),
                        ],
                    )
                        .into_response()
                }
            }
        }
        // Microsoft.Maintenance/scheduledevents/{id}/acknowledge on a VM or scale set.
        Method::POST
            if k.ends_with("/acknowledge")
                && k.contains("/providers/microsoft.maintenance/scheduledevents/") =>
        {
            let owner = k
                .split("/providers/microsoft.maintenance/")
                .next()
                .unwrap_or_default();
            if inner.nsgs.contains_key(owner) {
                (
                    StatusCode::OK,
                    axum::Json(json!({"value": "Successfully Approved"})),
                )
                    .into_response()
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    "The Resource was not found.",
                )
            }
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "NotSupported", "method"),
    }
}

fn remove_rule(inner: &mut Inner, rule_key: &str) {
    for doc in inner.nsgs.values_mut() {
        if let Some(rules) = doc["properties"]["securityRules"].as_array_mut() {
            rules.retain(|r| r["id"].as_str().map(key).as_deref() != Some(rule_key));
        }
    }
}

fn token(s: &Shared, headers: &HeaderMap, query: &str) -> Response {
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
    {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-IDENTITY-HEADER",
        )
            .into_response();
    }
    if !query.contains("api-version=2019-08-01") || !query.contains("resource=") {
        return (
            StatusCode::BAD_REQUEST,
            "resource and api-version=2019-08-01 are required",
        )
            .into_response();
    }
    let n = {
        let mut inner = s.lock().unwrap();
        inner.tokens_issued += 1;
        inner.tokens_issued
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    axum::Json(json!({
        "access_token": format!("test-token-{n}"),
        "expires_on": (now + 3600).to_string(),
        "resource": "https://management.azure.com/",
        "token_type": "Bearer",
        "client_id": "00000000-0000-0000-0000-0000000000aa",
    }))
    .into_response()
}

/// An ARM NSG document with the given rules: `(name, ports, sources)`; tcp,
/// Inbound, Allow, priorities from 100.
pub fn nsg_doc(id: &str, tags: &[(&str, &str)], rules: &[(&str, &[&str], &[&str])]) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    let rules: Vec<Value> = rules
        .iter()
        .enumerate()
        .map(|(i, (rule, ports, sources))| {
            let mut p = json!({
                "protocol": "Tcp", "sourcePortRange": "*", "destinationAddressPrefix": "*",
                "access": "Allow", "priority": 100 + i * 10, "direction": "Inbound",
                "provisioningState": "Succeeded",
                "destinationPortRanges": [], "sourceAddressPrefixes": [],
            });
            if let [one] = ports {
                p["destinationPortRange"] = json!(one);
            } else {
                p["destinationPortRanges"] = json!(ports);
            }
            if let [one] = sources {
                p["sourceAddressPrefix"] = json!(one);
            } else {
                p["sourceAddressPrefixes"] = json!(sources);
            }
            json!({
                "id": format!("{id}/securityRules/{rule}"), "name": rule, "etag": "W/\"1\"",
                "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": p,
            })
        })
        .collect();
    let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
    json!({
        "id": id, "name": name, "location": "westeurope", "type": "Microsoft.Network/networkSecurityGroups",
        "tags": tags,
        "properties": {"securityRules": rules, "defaultSecurityRules": [], "provisioningState": "Succeeded"},
    })
}

impl ArmFake {
    /// Starts the stand-in on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let shared: Shared = Arc::new(Mutex::new(Inner {
            nsgs: BTreeMap::new(),
            operations: BTreeMap::new(),
            next_op: 0,
            delete_mode: DeleteMode::Async,
            script: VecDeque::new(),
            requests: Vec::new(),
            tokens_issued: 0,
            jwks_fetches: 0,
            etags: 0,
            interleave: None,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = crate::serve(port, app, "ARM stand-in").await;
        Self { addr, shared, task }
    }

    /// The base URL for `REFLEX_ARM_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL for `IDENTITY_ENDPOINT`.
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.addr)
    }

    /// Stores (or replaces) a resource document (an NSG, a VM, a pool; its `id` is
    /// its path), with a fresh ETag.
    pub fn put_nsg(&self, doc: Value) {
        let id = key(doc["id"].as_str().unwrap_or_default());
        self.shared.lock().unwrap().store(id, doc);
    }

    /// Another writer: right after the `nth` GET of `id` from now is answered, the
    /// resource becomes `doc` (with a new ETag), as if someone wrote it between the
    /// client's read and its write.
    pub fn write_after_get(&self, id: &str, nth: u32, mut doc: Value) {
        doc["id"] = json!(id);
        self.shared.lock().unwrap().interleave = Some((key(id), nth.max(1), doc));
    }

    /// A resource as it is now (a backend pool after the drain's PUT, …).
    pub fn resource(&self, id: &str) -> Option<Value> {
        self.shared.lock().unwrap().nsgs.get(&key(id)).cloned()
    }

    /// The names of the NSG's rules now.
    pub fn rule_names(&self, nsg_id: &str) -> Vec<String> {
        let inner = self.shared.lock().unwrap();
        inner
            .nsgs
            .get(&key(nsg_id))
            .and_then(|d| d["properties"]["securityRules"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    }

    pub fn set_delete_mode(&self, mode: DeleteMode) {
        self.shared.lock().unwrap().delete_mode = mode;
    }

    /// Queues answers for the next ARM requests (not token requests).
    pub fn script(&self, replies: impl IntoIterator<Item = ArmReply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    /// ARM requests received so far (token requests are counted separately).
    pub fn requests(&self) -> Vec<ArmRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The JWKS URL for `REFLEX_WEBHOOK_AAD_JWKS_URL`.
    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    pub fn jwks_fetches(&self) -> u32 {
        self.shared.lock().unwrap().jwks_fetches
    }

    pub fn tokens_issued(&self) -> u32 {
        self.shared.lock().unwrap().tokens_issued
    }
}

impl Drop for ArmFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}
