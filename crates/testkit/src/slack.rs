use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// How the sink answers the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 `ok`, as Slack does.
    Ok,
    /// 429 `rate_limited` with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// Any status with Slack's plain-text error body, e.g. 500 `rollup_error`.
    Status(u16, &'static str),
    /// Wait, then answer 200 `ok`.
    Slow(Duration),
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
    pub raw: String,
    pub at: Instant,
}

/// A message as the stand-in's workspace holds it (Web API posts only).
#[derive(Debug, Clone)]
pub struct Posted {
    /// Channel id.
    pub channel: String,
    pub ts: String,
    /// `Some(parent ts)` for a reply.
    pub thread_ts: Option<String>,
    /// The message as posted, then as last updated.
    pub payload: serde_json::Value,
    /// How many times `chat.update` replaced it.
    pub updates: u32,
}

/// The bot token the stand-in accepts.
pub const BOT_TOKEN: &str = "xoxb-reflex-test-token";

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    echo: bool,
    messages: Vec<Posted>,
    next_ts: u64,
    /// Slack's per-channel pace for `chat.postMessage` (and per-URL for webhooks).
    min_interval: Option<Duration>,
    last_accepted: HashMap<String, Instant>,
    rate_limited: u32,
}

/// A stable channel id for a name: `#alerts` → `CALERTS`; ids pass through.
pub fn channel_id(channel: &str) -> String {
    match channel.strip_prefix('#') {
        Some(name) => format!(
            "C{}",
            name.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_uppercase()
        ),
        None => channel.to_string(),
    }
}

type Shared = Arc<Mutex<Inner>>;

/// The Slack stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct SlackSink {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSinkState")
            .field("requests", &self.requests.len())
            .finish()
    }
}

fn build(shared: Shared) -> Router {
    Router::new()
        .route("/_reflex/conversations", get(conversations))
        .route("/{*path}", post(receive))
        .with_state(shared)
}

fn api_error(error: &str) -> Response {
    axum::Json(serde_json::json!({"ok": false, "error": error})).into_response()
}

/// Whether `key` may post now under the pace; records the acceptance.
fn paced(inner: &mut Inner, key: &str) -> bool {
    let Some(min) = inner.min_interval else {
        return true;
    };
    let now = Instant::now();
    if inner
        .last_accepted
        .get(key)
        .is_some_and(|last| now.duration_since(*last) < min)
    {
        inner.rate_limited += 1;
        return false;
    }
    inner.last_accepted.insert(key.to_string(), now);
    true
}

fn rate_limited(min: Duration) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", min.as_secs().max(1).to_string())],
        "rate_limited",
    )
        .into_response()
}

/// `chat.postMessage` and `chat.update`, as the Web API documents them.
fn web_api(
    inner: &mut Inner,
    method: &str,
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth.is_empty() {
        return api_error("not_authed");
    }
    if auth != format!("Bearer {BOT_TOKEN}") {
        return api_error("invalid_auth");
    }
    let Some(channel) = body["channel"].as_str().filter(|c| !c.is_empty()) else {
        return api_error("channel_not_found");
    };
    if body["text"].as_str().is_none() && body["blocks"].is_null() && body["attachments"].is_null()
    {
        return api_error("no_text");
    }
    match method {
        "chat.postMessage" => {
            let id = channel_id(channel);
            if !paced(inner, &id) {
                return rate_limited(inner.min_interval.unwrap_or_default());
            }
            let thread_ts = body["thread_ts"].as_str().map(str::to_string);
            if let Some(t) = &thread_ts
                && !inner.messages.iter().any(|m| m.channel == id && &m.ts == t)
            {
                return api_error("thread_not_found");
            }
            inner.next_ts += 1;
            let ts = format!("1795536000.{:06}", inner.next_ts);
            if inner.echo {
                let place = thread_ts
                    .as_ref()
                    .map_or(String::new(), |t| format!(" in thread {t}"));
                println!(
                    "[slack] chat.postMessage #{id} ts={ts}{place}: {}",
                    body["text"].as_str().unwrap_or_default()
                );
            }
            inner.messages.push(Posted {
                channel: id.clone(),
                ts: ts.clone(),
                thread_ts,
                payload: body.clone(),
                updates: 0,
            });
            axum::Json(serde_json::json!({"ok": true, "channel": id, "ts": ts, "message": {"text": body["text"]}})).into_response()
        }
        "chat.update" => {
            // chat.update takes the channel id, not a name.
            let Some(ts) = body["ts"].as_str() else {
                return api_error("message_not_found");
            };
            match inner
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            {
                Some(m) => {
                    m.payload = body.clone();
                    m.updates += 1;
                    if inner.echo {
                        println!(
                            "[slack] chat.update #{channel} ts={ts}: {}",
                            body["text"].as_str().unwrap_or_default()
                        );
                    }
                    axum::Json(serde_json::json!({"ok": true, "channel": channel, "ts": ts, "text": body["text"]})).into_response()
                }
                None if channel.starts_with('#') => api_error("channel_not_found"),
                None => api_error("message_not_found"),
            }
        }
        _ => api_error("unknown_method"),
    }
}

async fn conversations(State(s): State<Shared>) -> String {
    let msgs = s.lock().unwrap().messages.clone();
    render_conversations(&msgs)
}

async fn receive(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let raw = String::from_utf8_lossy(&body).to_string();
    let (reply, echo) = {
        let mut inner = s.lock().unwrap();
        inner.requests.push(Recorded {
            path: uri.path().to_string(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
            raw: raw.clone(),
            at: Instant::now(),
        });
        let reply = inner.script.pop_front();
        let path = uri.path().to_string();
        match (reply, path.strip_prefix("/api/")) {
            (Some(r), _) => (r, inner.echo),
            (None, Some(method)) => {
                let body: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
                return web_api(&mut inner, method, &headers, &body);
            }
            (None, None) => {
                if !paced(&mut inner, &path) {
                    return rate_limited(inner.min_interval.unwrap_or_default());
                }
                (Reply::Ok, inner.echo)
            }
        }
    };
    if echo {
        print_message(&raw);
    }
    match reply {
        Reply::Ok => (StatusCode::OK, "ok").into_response(),
        Reply::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string())],
            "rate_limited",
        )
            .into_response(),
        Reply::Status(code, body) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
        Reply::Slow(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "ok").into_response()
        }
    }
}

/// The blocks of a posted message: inside its coloured attachment, or top level.
pub fn blocks(body: &serde_json::Value) -> &[serde_json::Value] {
    body["attachments"][0]["blocks"]
        .as_array()
        .or_else(|| body["blocks"].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Prints a Block Kit message the way a person would read it.
pub fn print_message(raw: &str) {
    print!("{}", render_message(raw));
}

/// A Block Kit message as a person would read it, as text lines.
pub fn render_message(raw: &str) -> String {
    use std::fmt::Write;
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
        return format!("[slack] (not JSON) {raw}\n");
    };
    let mut out = String::new();
    // Slack shows its three escapes as the characters they stand for.
    let mut line = |text: &str| {
        let shown = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let _ = writeln!(out, "{shown}");
    };
    line("┌─ Slack message ─────────────────────────────────────────");
    // Blocks at the top level, or inside the coloured attachment.
    let blocks = v["blocks"].as_array().into_iter().flatten().chain(
        v["attachments"][0]["blocks"]
            .as_array()
            .into_iter()
            .flatten(),
    );
    for block in blocks {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        match block["type"].as_str() {
            Some("header") => line(&format!("│ ## {text}")),
            Some("section") => {
                for l in text.lines() {
                    line(&format!("│ {l}"));
                }
                for f in block["fields"].as_array().into_iter().flatten() {
                    let f = f["text"].as_str().unwrap_or_default().replace('\n', " ");
                    line(&format!("│ {f}"));
                }
            }
            Some("context") => {
                for e in block["elements"].as_array().into_iter().flatten() {
                    line(&format!("│ ({})", e["text"].as_str().unwrap_or_default()));
                }
            }
            Some("divider") => line("│ ───"),
            Some("actions") => {
                for e in block["elements"].as_array().into_iter().flatten() {
                    line(&format!(
                        "│ [{}] {}",
                        e["text"]["text"].as_str().unwrap_or_default(),
                        e["url"].as_str().unwrap_or_default()
                    ));
                }
            }
            _ => {}
        }
    }
    line("└──────────────────────────────────────────────────────────");
    out
}

/// The workspace as a person would see it: each parent as last updated, with its
/// thread replies indented under it.
fn render_conversations(msgs: &[Posted]) -> String {
    let mut out = String::new();
    for parent in msgs.iter().filter(|m| m.thread_ts.is_none()) {
        let edited = match parent.updates {
            0 => String::new(),
            n => format!(" (edited {n} time(s))"),
        };
        out.push_str(&format!("#{} ts={}{edited}\n", parent.channel, parent.ts));
        out.push_str(&render_message(&parent.payload.to_string()));
        for r in msgs
            .iter()
            .filter(|m| m.thread_ts.as_deref() == Some(parent.ts.as_str()))
        {
            out.push_str(&format!(
                "    ↳ reply ts={}: {}\n",
                r.ts,
                r.payload["text"].as_str().unwrap_or_default()
            ));
        }
    }
    out
}

impl SlackSink {
    /// Starts the sink on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(0, false).await
    }

    /// Starts on `port` (0 = any); `echo` prints each message to stdout.
    pub async fn start_on(port: u16, echo: bool) -> Self {
        let shared: Shared = Arc::new(Mutex::new(Inner {
            echo,
            ..Inner::default()
        }));
        let app = build(Arc::clone(&shared));
        let (addr, task) = crate::serve(port, app, "Slack sink").await;
        Self { addr, shared, task }
    }

    /// The incoming-webhook URL to configure.
    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/services/T0000/B0000/reflex-test-secret",
            self.addr
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues the answers for the next requests; afterwards it answers 200 `ok`.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The Web API base URL (`REFLEX_SLACK_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Answers 429 (`Retry-After`) to a post that comes sooner than `min` after the
    /// last accepted one in the same channel (or to the same webhook), as Slack does
    /// at about one message per second per channel.
    pub fn pace(&self, min: Duration) {
        self.shared.lock().unwrap().min_interval = Some(min);
    }

    /// How many posts the pace turned away.
    pub fn rate_limited(&self) -> u32 {
        self.shared.lock().unwrap().rate_limited
    }

    /// Every message posted through the Web API, in order, as last updated.
    pub fn messages(&self) -> Vec<Posted> {
        self.shared.lock().unwrap().messages.clone()
    }

    /// The workspace as a person would see it: each parent as last updated, with
    /// its thread replies indented. The binary serves it at `GET /_reflex/conversations`.
    pub fn conversations(&self) -> String {
        render_conversations(&self.messages())
    }
}

impl Drop for SlackSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
