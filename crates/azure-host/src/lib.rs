//! The Azure Functions custom handler: one executable serving every Reflex function.
//!
//! - `GET /` (and `HEAD /`): readiness.
//! - `POST /api/<function>`: an HTTP trigger forwarded as is
//!   (`enableForwardingHttpRequest`), e.g. an action-group webhook.
//! - `POST /<function>`: any trigger in the custom-handler envelope
//!   `{"Data": {...}, "Metadata": {...}}`, answered with
//!   `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`.
//!
//! Replies: 200 with the outcome; 202 with the outcome when a drain is deferred (not
//! done yet: do not approve the maintenance); 400 with the one-line error for bad
//! input; 401 when the webhook check fails; 503 when a retry can help; 500 otherwise
//! (a drain step that failed included).

pub mod auth;
pub mod entra;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reflex_core::{DrainState, HandleError, Outcome};
use reflex_runtime::{Function, Invocation};
use serde_json::{Value, json};
use tracing::Instrument;

pub use auth::Auth;

/// The header the Functions host puts the invocation id in.
pub const INVOCATION_HEADER: &str = "x-azure-functions-invocationid";
/// Largest request body accepted. Azure Monitor webhook payloads stay far below it.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What every request shares, built once at start-up.
pub struct AppState {
    pub functions: BTreeMap<&'static str, Arc<dyn Function>>,
    pub auth: Auth,
    /// Time budget of one invocation (retries and waits stop before it).
    pub budget: Duration,
    pub body_limit: usize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("budget", &self.budget)
            .finish()
    }
}

impl AppState {
    /// Serves each function under its name and the names it also serves.
    pub fn new(functions: Vec<Arc<dyn Function>>, auth: Auth, budget: Duration) -> Self {
        let mut by_name = BTreeMap::new();
        for f in functions {
            for alias in f.also_serves() {
                by_name.insert(*alias, f.clone());
            }
            by_name.insert(f.name(), f);
        }
        Self {
            functions: by_name,
            auth,
            budget,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// The router, separate from serving so tests drive it without a socket.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(ready))
        .route("/api/{function}", post(forwarded))
        .route("/{function}", post(envelope))
        .with_state(state)
}

async fn ready() -> &'static str {
    "ok"
}

/// Why a request did not produce an outcome.
#[derive(Debug)]
enum Reject {
    UnknownFunction(String, Vec<&'static str>),
    BadInput(String),
    Unauthorized(String),
    /// The caller could not be verified for now (signing keys unreachable).
    AuthUnavailable(String),
    Failed(HandleError),
}

impl Reject {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownFunction(..) => StatusCode::NOT_FOUND,
            Self::BadInput(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(HandleError::BadInput(_)) => StatusCode::BAD_REQUEST,
            Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::UnknownFunction(name, known) => {
                format!("unknown function '{name}'; known: {}", known.join(", "))
            }
            Self::BadInput(m) => format!("bad input: {m}"),
            Self::Unauthorized(m) | Self::AuthUnavailable(m) => m.clone(),
            Self::Failed(e) => e.to_string(),
        }
    }
}

/// The result of running one function on one payload.
type Ran = Result<Outcome, Reject>;

fn status_of(ran: &Ran) -> StatusCode {
    match ran {
        Ok(o) if o.needs_retry() => StatusCode::SERVICE_UNAVAILABLE,
        // A drain that is not finished is accepted, not done: the caller must not
        // approve the maintenance yet. One that failed is an error.
        Ok(o) if o.drain == Some(DrainState::Deferred) => StatusCode::ACCEPTED,
        Ok(o) if o.drain == Some(DrainState::Failed) => StatusCode::INTERNAL_SERVER_ERROR,
        Ok(_) => StatusCode::OK,
        Err(r) => r.status(),
    }
}

fn body_of(ran: &Ran) -> Value {
    match ran {
        Ok(o) => serde_json::to_value(o).unwrap_or_default(),
        Err(r) => json!({"error": r.message()}),
    }
}

/// Reads the body within the limit; `Err` is the one-line reason.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, Reject> {
    to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| Reject::BadInput(format!("request body is above the {limit}-byte limit")))
}

fn invocation_id(headers: &HeaderMap) -> String {
    headers
        .get(INVOCATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("local")
        .to_string()
}

fn known<'a>(state: &'a AppState, function: &str) -> Result<&'a Arc<dyn Function>, Reject> {
    state.functions.get(function).ok_or_else(|| {
        Reject::UnknownFunction(
            function.to_string(),
            state.functions.keys().copied().collect(),
        )
    })
}

/// Runs `function` on `raw`.
async fn run(state: &AppState, function: &str, raw: &[u8], id: &str) -> Ran {
    let f = known(state, function)?;
    let invocation = Invocation {
        request_id: Some(id.to_string()),
        ..Invocation::with_budget(state.budget)
    };
    f.handle(raw, &invocation).await.map_err(|e| match e {
        HandleError::BadInput(p) => Reject::BadInput(p.to_string()),
        other => Reject::Failed(other),
    })
}

/// Logs the outcome (the audit line) or the refusal, once per request.
fn log(function: &str, ran: &Ran) {
    match ran {
        Ok(outcome) => reflex_runtime::audit(outcome),
        Err(r) if r.status().is_server_error() => {
            tracing::error!(function, status = r.status().as_u16(), error = %r.message(), "Invocation failed");
        }
        Err(r) => {
            tracing::warn!(function, status = r.status().as_u16(), error = %r.message(), "Request refused");
        }
    }
}

/// `POST /api/<function>`: the forwarded HTTP request (action-group webhooks).
async fn forwarded(
    State(state): State<Arc<AppState>>,
    Path(function): Path<String>,
    request: Request<Body>,
) -> Response {
    let id = invocation_id(request.headers());
    let span = tracing::info_span!("invocation", invocation_id = %id, function = %function);
    async move {
        let (parts, body) = request.into_parts();
        let ran = match state.auth.check(&parts.headers, parts.uri.query()).await {
            Err(entra::Refusal::Denied(why)) => Err(Reject::Unauthorized(why)),
            Err(entra::Refusal::Unavailable(why)) => Err(Reject::AuthUnavailable(why)),
            Ok(()) => match read_body(body, state.body_limit).await {
                Err(r) => Err(r),
                Ok(raw) => run(&state, &function, &raw, &id).await,
            },
        };
        log(&function, &ran);
        (status_of(&ran), axum::Json(body_of(&ran))).into_response()
    }
    .instrument(span)
    .await
}

/// `POST /<function>`: the custom-handler envelope.
async fn envelope(
    State(state): State<Arc<AppState>>,
    Path(function): Path<String>,
    request: Request<Body>,
) -> Response {
    let id = invocation_id(request.headers());
    let span = tracing::info_span!("invocation", invocation_id = %id, function = %function);
    async move {
        if let Err(r) = known(&state, &function) {
            return reply(&Err(r), false);
        }
        let raw = match read_body(request.into_body(), state.body_limit).await {
            Ok(raw) => raw,
            Err(r) => return reply(&Err(r), false),
        };
        let (payload, is_http) = match unwrap_envelope(&raw) {
            Ok(p) => p,
            Err(why) => return reply(&Err(Reject::BadInput(why)), false),
        };
        let ran = run(&state, &function, &payload, &id).await;
        log(&function, &ran);
        reply(&ran, is_http)
    }
    .instrument(span)
    .await
}

/// The envelope answer. An HTTP trigger (not forwarded) also gets its HTTP output
/// `res`: `statusCode`, `status`, `body` and `headers`.
fn reply(ran: &Ran, is_http: bool) -> Response {
    let status = status_of(ran);
    let body = body_of(ran);
    let line = match ran {
        Ok(o) => match &o.ignored {
            Some(why) => format!("{}: ignored: {why}", o.function),
            None => format!("{}: {} action(s)", o.function, o.actions.len()),
        },
        Err(r) => r.message(),
    };
    let mut outputs = serde_json::Map::new();
    if is_http {
        outputs.insert(
            "res".into(),
            json!({
                "statusCode": status.as_u16(),
                "status": status.as_u16(),
                "body": body.to_string(),
                "headers": {"Content-Type": "application/json"},
            }),
        );
    }
    let envelope = json!({
        "Outputs": outputs,
        "Logs": [line],
        "ReturnValue": if ran.is_ok() { body } else { Value::Null },
    });
    (status, axum::Json(envelope)).into_response()
}

/// Finds the trigger payload in `{"Data": {...}, "Metadata": {...}}`. The trigger
/// is the one entry of `Data`; a string value holding JSON is decoded, and an HTTP
/// request object (`Method`, `Body`) yields its body.
fn unwrap_envelope(raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let v = reflex_core::json::parse_json(raw).map_err(|e| e.to_string())?;
    let data = match v.get("Data") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err("Data: expected an object of trigger bindings".into()),
        None => return Err("not a custom-handler envelope: no Data".into()),
    };
    let mut entries = data.iter();
    let (Some((_, value)), None) = (entries.next(), entries.next()) else {
        return Err(format!(
            "Data: expected exactly one trigger binding, found {}",
            data.len()
        ));
    };
    let is_http = value.get("Method").is_some() && value.get("Url").is_some();
    let payload = if is_http {
        value.get("Body").cloned().unwrap_or(Value::Null)
    } else {
        value.clone()
    };
    // The host JSON-encodes string values again; unwrap until it is not a string
    // holding JSON (a few levels at most).
    let mut payload = payload;
    for _ in 0..3 {
        match &payload {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(inner) => payload = inner,
                Err(_) => break,
            },
            _ => break,
        }
    }
    let bytes = match payload {
        Value::String(s) => s.into_bytes(),
        other => other.to_string().into_bytes(),
    };
    Ok((bytes, is_http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_is_the_one_data_entry() {
        let (p, http) = unwrap_envelope(br#"{"Data": {"event": {"id": "1"}}, "Metadata": {}}"#)
            .unwrap_or_default();
        assert_eq!(
            (String::from_utf8_lossy(&p).into_owned(), http),
            (r#"{"id":"1"}"#.into(), false)
        );
        let (p, http) = unwrap_envelope(
            br#"{"Data": {"req": {"Url": "http://x/api/f", "Method": "POST", "Body": "{\"a\":1}", "Headers": {}}}, "Metadata": {}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            (String::from_utf8_lossy(&p).into_owned(), http),
            (r#"{"a":1}"#.into(), true)
        );
    }

    #[test]
    fn only_failures_a_retry_can_help_are_5xx() {
        let mut o = Outcome::ignored("f", "t", false, "nothing");
        assert_eq!(status_of(&Ok(o.clone())), StatusCode::OK);
        o.actions.push(reflex_core::ActionRecord {
            action: "delete_security_rule".into(),
            target: "nsg".into(),
            detail: Value::Null,
            status: reflex_core::ActionStatus::Failed,
            reason: "r".into(),
            error: Some("HTTP 503".into()),
            retryable: true,
        });
        assert_eq!(status_of(&Ok(o.clone())), StatusCode::SERVICE_UNAVAILABLE);
        let mut drain = Outcome::ignored("drain", "t", false, "");
        for (state, code) in [
            (DrainState::Drained, StatusCode::OK),
            (DrainState::Planned, StatusCode::OK),
            (DrainState::Deferred, StatusCode::ACCEPTED),
            (DrainState::Failed, StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            drain.drain = Some(state);
            assert_eq!(status_of(&Ok(drain.clone())), code, "{state:?}");
        }
        drain.actions = o.actions;
        assert_eq!(
            status_of(&Ok(drain)),
            StatusCode::SERVICE_UNAVAILABLE,
            "a retryable failure is 503 whatever the drain says"
        );
        let retry = Reject::Failed(HandleError::Retryable("Throttled".into()));
        assert_eq!(status_of(&Err(retry)), StatusCode::SERVICE_UNAVAILABLE);
        let fatal = Reject::Failed(HandleError::Fatal("denied".into()));
        assert_eq!(status_of(&Err(fatal)), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status_of(&Err(Reject::Unauthorized("no".into()))),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn envelopes_without_one_trigger_are_refused() {
        assert_eq!(
            unwrap_envelope(br#"{"Metadata": {}}"#).err().as_deref(),
            Some("not a custom-handler envelope: no Data")
        );
        assert_eq!(
            unwrap_envelope(br#"{"Data": {}}"#).err().as_deref(),
            Some("Data: expected exactly one trigger binding, found 0")
        );
        assert_eq!(
            unwrap_envelope(br#"{"Data": [1]}"#).err().as_deref(),
            Some("Data: expected an object of trigger bindings")
        );
    }

    /// A function that ignores everything, for protocol tests.
    struct Echo;

    #[async_trait::async_trait]
    impl Function for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        async fn handle(&self, raw: &[u8], _: &Invocation) -> Result<Outcome, HandleError> {
            reflex_core::json::parse_json(raw)?;
            Ok(Outcome::ignored("echo", "test", false, "nothing to do"))
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_log_line_carries_the_invocation_id() {
        use tower::ServiceExt;
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let state = AppState::new(
            vec![Arc::new(Echo)],
            Auth::default(),
            Duration::from_secs(5),
        );
        let router = app(Arc::new(state));
        for body in [&b"{}"[..], b"{"] {
            let req = Request::post("/api/echo")
                .header(INVOCATION_HEADER, "inv-42")
                .body(Body::from(body.to_vec()))
                .unwrap_or_default();
            let res = router.clone().oneshot(req).await;
            assert!(res.is_ok());
        }
        let text = String::from_utf8(buf.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap_or_default();
            assert_eq!(v["span"]["invocation_id"], "inv-42", "{line}");
        }
    }
}
