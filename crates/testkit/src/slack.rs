use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

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

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    echo: bool,
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
        .route("/{*path}", post(receive))
        .with_state(shared)
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
        (inner.script.pop_front().unwrap_or(Reply::Ok), inner.echo)
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

/// Prints a Block Kit message the way a person would read it.
pub fn print_message(raw: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) else {
        println!("[slack] (not JSON) {raw}");
        return;
    };
    println!("┌─ Slack message ─────────────────────────────────────────");
    for block in v["blocks"].as_array().into_iter().flatten() {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        match block["type"].as_str() {
            Some("header") => println!("│ ## {text}"),
            Some("section") => {
                for line in text.lines() {
                    println!("│ {line}");
                }
                for f in block["fields"].as_array().into_iter().flatten() {
                    println!(
                        "│ {}",
                        f["text"].as_str().unwrap_or_default().replace('\n', " ")
                    );
                }
            }
            Some("context") => {
                for e in block["elements"].as_array().into_iter().flatten() {
                    println!("│ ({})", e["text"].as_str().unwrap_or_default());
                }
            }
            Some("divider") => println!("│ ───"),
            _ => {}
        }
    }
    println!("└──────────────────────────────────────────────────────────");
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
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the Slack sink on loopback");
        let addr = listener.local_addr().expect("sink address");
        let app = build(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
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
}

impl Drop for SlackSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
