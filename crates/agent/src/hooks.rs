//! The drain and recover hooks: a command (the event as JSON on stdin and as
//! `REFLEX_EVENT_*` variables) and/or an HTTP call to the drain function.

use std::process::Stdio;
use std::time::Duration;

use reflex_core::Secret;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::source::Seen;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Drain,
    Recover,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Self::Drain => "drain",
            Self::Recover => "recover",
        }
    }
}

/// What a hook run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Every configured part succeeded (for a drain: the node is drained).
    Done(String),
    /// The drain function took the drain but has not finished it (no free drain slot,
    /// a wait longer than its call): ask again later, and do not approve yet.
    Deferred(String),
}

/// The largest answer read from the drain function.
const MAX_ANSWER: usize = 1024 * 1024;

/// The configured hooks.
#[derive(Clone, Default)]
pub struct Hooks {
    pub drain_cmd: Option<String>,
    pub recover_cmd: Option<String>,
    /// The drain function's URL (Azure host route or Lambda function URL): it gets
    /// `{"source":"reflex-agent","action":"drain"|"recover",…}`.
    pub url: Option<String>,
    /// Sent as `x-functions-key` (Azure Functions key), when set.
    pub url_key: Option<Secret>,
    pub http: Option<reqwest::Client>,
    /// `REFLEX_AGENT_HOOKS_GET_KEY=true`: the hook commands see
    /// `REFLEX_AGENT_FUNCTION_KEY` in their environment. Off by default: a hook is
    /// often a script someone else wrote, and the key lets anyone drain nodes.
    pub key_for_hooks: bool,
}

/// The setting that holds the drain function's key.
pub const FUNCTION_KEY_VAR: &str = "REFLEX_AGENT_FUNCTION_KEY";

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An Azure function URL may carry its key as `?code=…`: the query is hidden.
        let url = self.url.as_ref().map(|u| match u.split_once('?') {
            Some((path, _)) => format!("{path}?[redacted]"),
            None => u.clone(),
        });
        f.debug_struct("Hooks")
            .field("drain_cmd", &self.drain_cmd)
            .field("recover_cmd", &self.recover_cmd)
            .field("url", &url)
            .field("url_key", &self.url_key)
            .finish_non_exhaustive()
    }
}

/// The body the drain function receives from the agent.
pub fn call_body(hook: Hook, node: &str, seen: &Seen) -> Value {
    json!({
        "source": "reflex-agent",
        "action": hook.name(),
        "node": node,
        "maintenance": seen.maintenance,
        "event": seen.raw,
    })
}

/// `REFLEX_EVENT_*` for the command.
fn env(hook: Hook, node: &str, seen: &Seen) -> Vec<(&'static str, String)> {
    let m = &seen.maintenance;
    vec![
        ("REFLEX_EVENT_HOOK", hook.name().to_string()),
        ("REFLEX_EVENT_CLOUD", m.cloud.clone()),
        ("REFLEX_EVENT_ID", m.id.clone()),
        ("REFLEX_EVENT_KIND", m.kind.name().to_string()),
        (
            "REFLEX_EVENT_TYPE",
            seen.raw["EventType"]
                .as_str()
                .or(seen.raw["Code"].as_str())
                .or(seen.raw["action"].as_str())
                .unwrap_or(m.kind.name())
                .to_string(),
        ),
        (
            "REFLEX_EVENT_STATUS",
            format!("{:?}", m.phase).to_lowercase(),
        ),
        (
            "REFLEX_EVENT_NOT_BEFORE",
            m.not_before.map(|t| t.to_string()).unwrap_or_default(),
        ),
        ("REFLEX_EVENT_RESOURCES", m.targets.join(",")),
        ("REFLEX_EVENT_NODE", node.to_string()),
    ]
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.command(Hook::Drain).is_none()
            && self.command(Hook::Recover).is_none()
            && self.url.is_none()
    }

    fn command(&self, hook: Hook) -> Option<&str> {
        match hook {
            Hook::Drain => self.drain_cmd.as_deref(),
            Hook::Recover => self.recover_cmd.as_deref(),
        }
    }

    /// Runs the command (unless `command_done`: it already succeeded for this event),
    /// then the HTTP call, each within `timeout`. `Ok` only when every configured part
    /// succeeded; a drain call succeeds only when the function says the node is
    /// drained.
    pub async fn run(
        &self,
        hook: Hook,
        node: &str,
        seen: &Seen,
        timeout: Duration,
        command_done: bool,
    ) -> Result<Ran, String> {
        let mut done = Vec::new();
        if let Some(cmd) = self.command(hook).filter(|_| !command_done) {
            let key = self.url_key.as_ref().filter(|_| self.key_for_hooks);
            run_command(cmd, &env(hook, node, seen), key, &seen.raw, timeout).await?;
            done.push("command");
        }
        if let (Some(url), Some(http)) = (&self.url, &self.http) {
            let mut req = http
                .post(url)
                .json(&call_body(hook, node, seen))
                .timeout(timeout);
            if let Some(key) = &self.url_key {
                req = req.header("x-functions-key", key.expose());
            }
            let resp = req.send().await.map_err(|e| {
                if e.is_timeout() {
                    format!(
                        "the {} call timed out after {}s",
                        hook.name(),
                        timeout.as_secs()
                    )
                } else {
                    format!(
                        "the {} call failed: could not reach the function",
                        hook.name()
                    )
                }
            })?;
            let status = resp.status();
            let answer = read_capped(resp).await;
            if !status.is_success() {
                return Err(format!(
                    "the {} call answered HTTP {status}{}",
                    hook.name(),
                    error_of(&answer)
                ));
            }
            if hook == Hook::Drain {
                match drain_answer(status.as_u16(), &answer) {
                    Answer::Drained => {}
                    Answer::Deferred(why) => return Ok(Ran::Deferred(why)),
                    Answer::NotDrained(why) => return Err(why),
                }
            }
            done.push("function call");
        }
        Ok(Ran::Done(if done.is_empty() {
            "no hook configured".into()
        } else {
            done.join(" + ")
        }))
    }
}

/// Reads at most [`MAX_ANSWER`] bytes of the answer as JSON (`Null` when it is not).
async fn read_capped(mut resp: reqwest::Response) -> Value {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Value::Null;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// ": <error>" from a refused call's `{"error": ...}` answer, cut to one short line.
fn error_of(answer: &Value) -> String {
    answer
        .get("error")
        .and_then(Value::as_str)
        .map(|e| format!(": {}", e.chars().take(200).collect::<String>()))
        .unwrap_or_default()
}

/// What the drain function's 2xx answer says about the node.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Drained,
    Deferred(String),
    /// Dry-run, nothing to drain, or a failure: not a drain, so no approval.
    NotDrained(String),
}

/// Reads the outcome's `drain` field (and 202, which only a deferred drain gets).
fn drain_answer(status: u16, answer: &Value) -> Answer {
    let reason = answer["ignored"]
        .as_str()
        .or_else(|| {
            answer["actions"].as_array().and_then(|a| {
                a.iter()
                    .find(|r| r["status"] == "skipped" || r["status"] == "failed")
                    .and_then(|r| r["reason"].as_str())
            })
        })
        .map(|r| r.chars().take(300).collect::<String>())
        .unwrap_or_default();
    match (answer["drain"].as_str(), status) {
        (Some("drained"), 200..=201 | 203..=299) => Answer::Drained,
        (Some("deferred" | "drained"), _) | (None, 202) => Answer::Deferred(reason),
        (Some("planned"), _) => Answer::NotDrained(format!(
            "the function is in dry-run: it only planned the drain ({reason})"
        )),
        (Some("failed"), _) => Answer::NotDrained(format!("the function's drain failed: {reason}")),
        _ => Answer::NotDrained(format!("the function drained nothing: {reason}")),
    }
}

/// Runs `cmd` with the event's variables. The function key the agent may hold in its
/// own environment is never inherited; the hook gets it only as `key` (when
/// `REFLEX_AGENT_HOOKS_GET_KEY=true`).
async fn run_command(
    cmd: &str,
    env: &[(&'static str, String)],
    key: Option<&Secret>,
    event: &Value,
    timeout: Duration,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.env_remove(FUNCTION_KEY_VAR);
    if let Some(k) = key {
        command.env(FUNCTION_KEY_VAR, k.expose());
    }
    let mut child = command
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start the hook `{cmd}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read stdin closes it early; that is not an error.
        let _ = stdin.write_all(event.to_string().as_bytes()).await;
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the hook `{cmd}` exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for the hook `{cmd}`: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "the hook `{cmd}` did not finish within {}s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, drain_answer};
    use serde_json::json;

    #[test]
    fn only_a_drained_answer_is_a_drain() {
        let drained = json!({"drain": "drained", "actions": []});
        assert_eq!(drain_answer(200, &drained), Answer::Drained);
        let deferred = json!({"drain": "deferred", "actions": [
            {"status": "skipped", "reason": "1 drain(s) already in progress"}]});
        assert_eq!(
            drain_answer(202, &deferred),
            Answer::Deferred("1 drain(s) already in progress".into())
        );
        assert!(
            matches!(drain_answer(202, &drained), Answer::Deferred(_)),
            "202 is never done"
        );
        for (body, says) in [
            (json!({"drain": "planned"}), "dry-run"),
            (json!({"drain": "failed"}), "failed"),
            (
                json!({"ignored": "vm-1 has not opted in"}),
                "drained nothing: vm-1",
            ),
            (json!(null), "drained nothing"),
        ] {
            match drain_answer(200, &body) {
                Answer::NotDrained(why) => assert!(why.contains(says), "{why}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
