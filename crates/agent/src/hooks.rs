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

    /// Runs the command, then the HTTP call, each within `timeout`. `Ok` only when
    /// every configured part succeeded.
    pub async fn run(
        &self,
        hook: Hook,
        node: &str,
        seen: &Seen,
        timeout: Duration,
    ) -> Result<String, String> {
        let mut done = Vec::new();
        if let Some(cmd) = self.command(hook) {
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
            if !resp.status().is_success() {
                return Err(format!(
                    "the {} call answered HTTP {}",
                    hook.name(),
                    resp.status()
                ));
            }
            done.push("function call");
        }
        Ok(if done.is_empty() {
            "no hook configured".into()
        } else {
            done.join(" + ")
        })
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
