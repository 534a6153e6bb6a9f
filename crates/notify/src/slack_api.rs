//! The Slack Web API with a bot token: `chat.postMessage` (top level or in a thread)
//! and `chat.update`. Unlike incoming webhooks it returns the message's channel id
//! and `ts`, which is what threads and updates need.
//!
//! Slack answers most errors with HTTP 200 and `{"ok": false, "error": "…"}`; rate
//! limits with HTTP 429 and `Retry-After`. Both go through the shared retrier.

use std::time::{Duration, Instant};

use reflex_core::Secret;
use reflex_runtime::retry::{Attempt, GaveUp, RetryPolicy, parse_retry_after, retry};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::blockkit;
use crate::slack::UrlSource;

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The channel id (Slack resolves `#name` to an id).
    pub channel: String,
    pub ts: String,
    pub attempts: u32,
}

/// `ok: false` errors a retry can fix (Slack's documented transient errors).
const TRANSIENT: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// Per-request cap; the deadline usually bounds it sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Slack Web API client for one bot token.
pub struct SlackApi {
    base: String,
    token_source: UrlSource,
    token: OnceCell<Secret>,
    http: reqwest::Client,
    policy: RetryPolicy,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base", &self.base)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl SlackApi {
    /// A client for `base` (e.g. `https://slack.com/api`) whose token is fetched on
    /// first use.
    pub fn new(base: impl Into<String>, token: UrlSource) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            token_source: token,
            token: OnceCell::new(),
            http: crate::http_client(),
            policy: RetryPolicy::default(),
        }
    }

    /// A client with a known token.
    pub fn with_token(base: impl Into<String>, token: Secret) -> Self {
        Self::new(base, reflex_core::settings::fixed_source(token))
    }

    /// Overrides the retry settings (tests use short backoffs).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    async fn token(&self) -> Result<&Secret, GaveUp> {
        self.token
            .get_or_try_init(|| (self.token_source)())
            .await
            .map_err(|e| GaveUp {
                attempts: 0,
                error: format!("cannot read the Slack bot token: {e}"),
                retryable: true,
            })
    }

    async fn call(
        &self,
        method: &str,
        body: &Value,
        token: &Secret,
        left: Duration,
    ) -> Attempt<Value> {
        let res = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(left.min(REQUEST_TIMEOUT))
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await;
        let resp = match res {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(token.redact(&e.to_string())),
        };
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let text = reflex_runtime::http::text_capped(resp, reflex_runtime::http::MAX_BODY).await;
        match status {
            429 => {
                return Attempt::RateLimited(
                    retry_after.unwrap_or(self.policy.default_retry_after),
                );
            }
            500..=599 => {
                return Attempt::Transient(format!(
                    "{method}: HTTP {status} {}",
                    blockkit::truncate(text.trim(), 200)
                ));
            }
            200..=299 => {}
            other => {
                return Attempt::Rejected(format!(
                    "{method}: HTTP {other} {}",
                    blockkit::truncate(text.trim(), 200)
                ));
            }
        }
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => {
                return Attempt::Transient(format!(
                    "{method}: the answer is not JSON: {}",
                    blockkit::truncate(text.trim(), 200)
                ));
            }
        };
        if v["ok"].as_bool() == Some(true) {
            return Attempt::Delivered(v);
        }
        let error = v["error"].as_str().unwrap_or("unknown_error");
        let msg = format!("{method}: {error}");
        if TRANSIENT.contains(&error) {
            Attempt::Transient(msg)
        } else {
            Attempt::Rejected(msg)
        }
    }

    async fn send(
        &self,
        method: &str,
        body: Value,
        deadline: Instant,
    ) -> Result<(Value, u32), GaveUp> {
        let token = self.token().await?;
        retry(self.policy, deadline, |left| {
            self.call(method, &body, token, left)
        })
        .await
        .map_err(|mut g| {
            g.error = token.redact(&g.error);
            g
        })
    }

    /// Posts `payload` (a rendered Block Kit message: `text`, `blocks`/`attachments`)
    /// to `channel`, in the thread of `thread_ts` when given.
    pub async fn post(
        &self,
        channel: &str,
        payload: &Value,
        thread_ts: Option<&str>,
        deadline: Instant,
    ) -> Result<Posted, GaveUp> {
        let mut body = payload.clone();
        body["channel"] = json!(channel);
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let (v, attempts) = self.send("chat.postMessage", body, deadline).await?;
        Ok(Posted {
            channel: v["channel"].as_str().unwrap_or(channel).to_string(),
            ts: v["ts"].as_str().unwrap_or_default().to_string(),
            attempts,
        })
    }

    /// Replaces the message `ts` in `channel` (an id) with `payload`.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        payload: &Value,
        deadline: Instant,
    ) -> Result<u32, GaveUp> {
        let mut body = payload.clone();
        body["channel"] = json!(channel);
        body["ts"] = json!(ts);
        self.send("chat.update", body, deadline)
            .await
            .map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_client_debug_never_shows_the_token() {
        let api = SlackApi::with_token(
            "https://slack.com/api",
            Secret::new("xoxb-1111-S3CR3TS3CR3T"),
        );
        let shown = format!("{api:?}");
        assert!(
            shown.contains("https://slack.com/api") && !shown.contains("S3CR3T"),
            "{shown}"
        );
    }
}
