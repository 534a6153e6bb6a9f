//! The command line, and the settings read from the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use reflex_core::Secret;
use reflex_core::maintenance::DrainPolicy;
use reflex_core::settings::Lookup;

use crate::hooks::Hooks;
use crate::journal::Journal;
use crate::source::{AwsImds, AzureImds, PollError, Source, client};
use crate::watch::Watcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cloud {
    Azure,
    Aws,
}

/// Watches instance metadata for scheduled maintenance; drains the node first, then
/// lets the maintenance proceed, then recovers it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "reflex-agent",
    version,
    after_help = "Environment: REFLEX_IMDS_ENDPOINT (default http://169.254.169.254), \
REFLEX_DRAIN_POLICY (e.g. freeze=ignore-under:60,rebalance=now), \
REFLEX_AGENT_FUNCTION_KEY (sent as x-functions-key with --drain-url).\n\
Hooks get the event as JSON on stdin and as REFLEX_EVENT_* variables \
(HOOK, CLOUD, ID, KIND, TYPE, STATUS, NOT_BEFORE, RESOURCES, NODE)."
)]
pub struct Args {
    /// Which metadata service to watch.
    #[arg(long, value_enum)]
    pub cloud: Cloud,
    /// Time between polls: `1s`, `500ms`, `2m`.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub interval: Duration,
    /// Shell command run before approving an event (`/bin/sh -c`).
    #[arg(long, value_name = "CMD")]
    pub drain_hook: Option<String>,
    /// Shell command run when a drained event is over.
    #[arg(long, value_name = "CMD")]
    pub recover_hook: Option<String>,
    /// Also POST each drain / recover to this URL (the drain-before-maintenance function).
    #[arg(long, value_name = "URL")]
    pub drain_url: Option<String>,
    /// Longest a hook may run; a drain is also bounded by the event's NotBefore.
    #[arg(long, default_value = "15m", value_parser = duration)]
    pub hook_timeout: Duration,
    /// Append one JSON line per record here (for a log agent to collect).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Keep what was drained here, so a restart still recovers it.
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// This VM's name as scheduled events list it (default: from instance metadata).
    #[arg(long, value_name = "NAME")]
    pub vm_name: Option<String>,
    /// Handle what is pending, then exit (tests, cron).
    #[arg(long)]
    pub once: bool,
    /// An event is over only after it is missing from this many polls in a row (one
    /// empty answer in the middle of a maintenance is not its end).
    #[arg(long, default_value_t = crate::watch::DEFAULT_GONE_AFTER, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub gone_after: u32,
    /// Wait this long before asking the drain function again about a drain it
    /// deferred (no free drain slot yet). The agent approves only once the function
    /// answers "drained", and stops asking at the event's NotBefore.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub retry_deferred: Duration,
}

/// `500ms`, `1s`, `2m`, `1h`; a bare number is seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; use e.g. 500ms, 1s, 2m"))?;
    let scale = |per: u64| n.checked_mul(per).map(Duration::from_secs);
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => scale(60),
        "h" => scale(3600),
        _ => return Err(format!("`{text}`: the unit is one of ms, s, m, h")),
    };
    // A week is far beyond any interval or timeout the agent needs.
    let Some(d) = d.filter(|d| *d <= Duration::from_secs(7 * 86_400)) else {
        return Err(format!("`{text}`: at most 7 days"));
    };
    if d.is_zero() {
        return Err(format!("`{text}`: must be more than zero"));
    }
    Ok(d)
}

const DEFAULT_IMDS: &str = "http://169.254.169.254";

impl Args {
    /// The watcher these arguments describe, with settings from `env`.
    pub fn watcher(&self, env: &impl Lookup) -> Result<Watcher, String> {
        let policy = DrainPolicy::from_lookup(env).map_err(|e| e.to_string())?;
        let base = env
            .get("REFLEX_IMDS_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_IMDS.into());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "REFLEX_IMDS_ENDPOINT='{base}': expected an http:// URL"
            ));
        }
        let http = client().map_err(|e: PollError| e.message)?;
        let source: Box<dyn Source> = match self.cloud {
            Cloud::Azure => Box::new(AzureImds::new(http.clone(), &base, self.vm_name.clone())),
            Cloud::Aws => Box::new(AwsImds::new(http.clone(), &base)),
        };
        if let Some(url) = &self.drain_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("--drain-url '{url}': expected an http(s):// URL"));
        }
        let hooks = Hooks {
            drain_cmd: self.drain_hook.clone(),
            recover_cmd: self.recover_hook.clone(),
            url: self.drain_url.clone(),
            url_key: env.get(crate::hooks::FUNCTION_KEY_VAR).map(Secret::new),
            http: self.drain_url.as_ref().map(|_| http),
            key_for_hooks: reflex_core::settings::flag(env, "REFLEX_AGENT_HOOKS_GET_KEY", false)
                .map_err(|e| e.to_string())?,
        };
        Ok(Watcher::new(
            source,
            hooks,
            policy,
            Journal::new(self.log_file.clone()),
            self.state_file.clone(),
            self.hook_timeout,
        )
        .with_gone_after(self.gone_after)
        .with_retry_deferred(self.retry_deferred))
    }
}
