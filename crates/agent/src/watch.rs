//! The watch loop: poll, compare by event id, drain (then approve), recover.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reflex_core::maintenance::{DrainPolicy, Phase, Timing, timing};
use serde::{Deserialize, Serialize};

use crate::hooks::{Hook, Hooks, Ran};
use crate::journal::Journal;
use crate::source::{PollError, Seen, Source};

/// The longest wait between polls after errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many times a failed recover hook is tried again (once per poll).
const RECOVER_ATTEMPTS: u32 = 3;
/// How many polls in a row an event must be missing before it counts as over: one
/// empty IMDS answer in the middle of a maintenance is not its end.
pub const DEFAULT_GONE_AFTER: u32 = 3;
/// How long the agent waits before asking again about a drain the function deferred.
pub const DEFAULT_RETRY_DEFERRED: Duration = Duration::from_secs(10);

/// What the agent knows about one event; kept in the state file so that a restart
/// (the VM rebooted for the event) still recovers what it drained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    pub maintenance: reflex_core::maintenance::Maintenance,
    pub raw: serde_json::Value,
    pub drained: bool,
    pub drain_failed: bool,
    pub approved: bool,
    pub ignored: bool,
    /// Set once the wait for a `before:` rule was logged.
    pub scheduled: bool,
    pub recover_attempts: u32,
    /// Polls in a row that did not list the event.
    #[serde(default)]
    pub absent_polls: u32,
    /// How many times the drain function deferred the drain.
    #[serde(default)]
    pub deferred: u32,
    /// Epoch seconds of the last deferral (asked again `--retry-deferred` later).
    #[serde(default)]
    pub deferred_at: i64,
    /// The drain command succeeded (a deferred function call does not run it again).
    #[serde(default)]
    pub command_done: bool,
}

impl Tracked {
    fn new(seen: &Seen) -> Self {
        Self {
            maintenance: seen.maintenance.clone(),
            raw: seen.raw.clone(),
            drained: false,
            drain_failed: false,
            approved: false,
            ignored: false,
            scheduled: false,
            recover_attempts: 0,
            absent_polls: 0,
            deferred: 0,
            deferred_at: 0,
            command_done: false,
        }
    }

    fn seen(&self) -> Seen {
        Seen {
            maintenance: self.maintenance.clone(),
            raw: self.raw.clone(),
        }
    }

    /// A drain hook ran (or tried to): the node may be out of service.
    fn needs_recover(&self) -> bool {
        self.drained || self.drain_failed
    }
}

/// The agent's state between polls.
#[derive(Debug)]
pub struct Watcher {
    source: Box<dyn Source>,
    hooks: Hooks,
    policy: DrainPolicy,
    pub journal: Journal,
    tracked: BTreeMap<String, Tracked>,
    node: Option<String>,
    state_file: Option<PathBuf>,
    hook_timeout: Duration,
    gone_after: u32,
    retry_deferred: Duration,
}

fn epoch_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Watcher {
    pub fn new(
        source: Box<dyn Source>,
        hooks: Hooks,
        policy: DrainPolicy,
        journal: Journal,
        state_file: Option<PathBuf>,
        hook_timeout: Duration,
    ) -> Self {
        let tracked = state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "Ignoring an unreadable state file");
                    None
                }
            })
            .unwrap_or_default();
        Self {
            source,
            hooks,
            policy,
            journal,
            tracked,
            node: None,
            state_file,
            hook_timeout,
            gone_after: DEFAULT_GONE_AFTER,
            retry_deferred: DEFAULT_RETRY_DEFERRED,
        }
    }

    /// An event ends after missing from this many polls in a row (at least 1).
    pub fn with_gone_after(mut self, polls: u32) -> Self {
        self.gone_after = polls.max(1);
        self
    }

    /// A deferred drain is asked about again after this long (zero: every poll).
    pub fn with_retry_deferred(mut self, wait: Duration) -> Self {
        self.retry_deferred = wait;
        self
    }

    /// The events being tracked, by id.
    pub fn tracked(&self) -> &BTreeMap<String, Tracked> {
        &self.tracked
    }

    async fn node(&mut self) -> Result<String, PollError> {
        if let Some(n) = &self.node {
            return Ok(n.clone());
        }
        let n = self.source.identify().await?;
        self.journal
            .note("started", &format!("watching for maintenance of {n}"));
        self.node = Some(n.clone());
        Ok(n)
    }

    /// One poll and everything it calls for.
    pub async fn tick(&mut self) -> Result<(), PollError> {
        let node = self.node().await?;
        let seen = self.source.poll().await?;
        let before = self.tracked.clone();
        for s in &seen {
            let id = s.maintenance.id.clone();
            match self.tracked.get_mut(&id) {
                None => {
                    let detail = s.maintenance.description.clone().unwrap_or_default();
                    self.journal.event("event_new", s, &detail);
                    self.tracked.insert(id.clone(), Tracked::new(s));
                }
                Some(t) => {
                    t.absent_polls = 0;
                    let (was, now) = (t.maintenance.phase, s.maintenance.phase);
                    t.maintenance = s.maintenance.clone();
                    t.raw = s.raw.clone();
                    if was != now {
                        self.journal
                            .event("event_status", s, &format!("{was:?} -> {now:?}"));
                    }
                }
            }
            self.act(&node, &id).await;
        }
        let present: BTreeSet<&str> = seen.iter().map(|s| s.maintenance.id.as_str()).collect();
        let gone: Vec<String> = self
            .tracked
            .keys()
            .filter(|id| !present.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            let Some(t) = self.tracked.get_mut(&id) else {
                continue;
            };
            t.absent_polls = t.absent_polls.saturating_add(1);
            if t.absent_polls < self.gone_after {
                let (n, of) = (t.absent_polls, self.gone_after);
                let seen = t.seen();
                self.journal.event(
                    "event_absent",
                    &seen,
                    &format!("not listed in {n} of {of} polls in a row"),
                );
                continue;
            }
            self.leave(&node, &id).await;
        }
        if self.tracked != before {
            self.save();
        }
        Ok(())
    }

    /// Drain (and approve) a present event, or recover one that is over.
    async fn act(&mut self, node: &str, id: &str) {
        let Some(t) = self.tracked.get(id).cloned() else {
            return;
        };
        let seen = t.seen();
        if t.maintenance.phase.is_over() {
            if t.needs_recover() && t.recover_attempts < RECOVER_ATTEMPTS {
                self.recover(node, id).await;
            }
            return;
        }
        if t.drained || t.drain_failed || t.ignored {
            return;
        }
        let left = match timing(&self.policy, &t.maintenance, epoch_now()) {
            Timing::Ignore(why) => {
                self.journal.event("ignored", &seen, why);
                self.update(id, |t| t.ignored = true);
                return;
            }
            Timing::At(when) => {
                if !t.scheduled {
                    self.journal.event(
                        "drain_scheduled",
                        &seen,
                        &format!("the drain starts at {when} (epoch seconds), by the drain policy"),
                    );
                    self.update(id, |t| t.scheduled = true);
                }
                return;
            }
            Timing::Now { left } => left,
        };
        let now = epoch_now();
        if t.deferred > 0 {
            let wait = i64::try_from(self.retry_deferred.as_secs()).unwrap_or(i64::MAX);
            if now < t.deferred_at.saturating_add(wait) {
                return;
            }
            if t.maintenance.not_before.is_some_and(|nb| now >= nb) {
                self.journal.event(
                    "drain_expired",
                    &seen,
                    &format!(
                        "the notice ran out while the drain was deferred ({} call(s)): not approving; the cloud starts the event at its own deadline",
                        t.deferred
                    ),
                );
                // Whatever part of the drain was done is recovered when the event ends.
                self.update(id, |t| t.drain_failed = true);
                return;
            }
        }
        if self.hooks.is_empty() {
            self.journal.event(
                "drain_skipped",
                &seen,
                "no drain hook configured: watching only, not approving",
            );
            self.update(id, |t| t.ignored = true);
            return;
        }
        // The hook may use the notice left, but not more than the configured cap.
        let timeout = match left {
            Some(l) if l > 0 => self.hook_timeout.min(Duration::from_secs(l.unsigned_abs())),
            _ => self.hook_timeout,
        };
        if t.deferred == 0 {
            self.journal.event(
                "drain_started",
                &seen,
                &format!("timeout {}s", timeout.as_secs()),
            );
        }
        let ran = self
            .hooks
            .run(Hook::Drain, node, &seen, timeout, t.command_done)
            .await;
        if self.hooks.drain_cmd.is_some() && ran.is_ok() {
            self.update(id, |t| t.command_done = true);
        }
        match ran {
            Ok(Ran::Deferred(why)) => {
                let wait = self.retry_deferred.as_secs();
                let calls = t.deferred + 1;
                let until = t.maintenance.not_before.map_or(String::new(), |nb| {
                    format!(", until the notice ends at {nb}")
                });
                self.journal.event(
                    "drain_deferred",
                    &seen,
                    &format!("{why}; not approving; asking again in {wait}s{until} (call {calls})"),
                );
                self.update(id, |t| {
                    t.deferred = calls;
                    t.deferred_at = now;
                });
            }
            Ok(Ran::Done(what)) => {
                self.journal.event("drain_done", &seen, &what);
                self.update(id, |t| t.drained = true);
                if t.maintenance.phase == Phase::Scheduled {
                    self.approve(id, &seen).await;
                }
            }
            Err(e) => {
                self.journal.event(
                    "drain_failed",
                    &seen,
                    &format!("{e}; not approving: the cloud starts the event at its NotBefore"),
                );
                self.update(id, |t| t.drain_failed = true);
            }
        }
    }

    async fn approve(&mut self, id: &str, seen: &Seen) {
        match self.source.approve(id).await {
            Ok(true) => {
                self.journal
                    .event("approved", seen, "StartRequests sent after the drain");
                self.update(id, |t| t.approved = true);
            }
            Ok(false) => {}
            Err(e) => self.journal.event("approve_failed", seen, &e.message),
        }
    }

    /// The event left the list: recover if it drained, then forget it.
    async fn leave(&mut self, node: &str, id: &str) {
        let Some(t) = self.tracked.get(id).cloned() else {
            return;
        };
        self.journal
            .event("event_gone", &t.seen(), "no longer listed");
        if t.needs_recover()
            && t.recover_attempts < RECOVER_ATTEMPTS
            && !self.recover(node, id).await
        {
            // Kept, and tried again at the next poll.
            return;
        }
        self.tracked.remove(id);
    }

    /// Runs the recover hook; `true` when it is done with (succeeded, or gave up).
    async fn recover(&mut self, node: &str, id: &str) -> bool {
        let Some(t) = self.tracked.get(id).cloned() else {
            return true;
        };
        let seen = t.seen();
        self.journal.event("recover_started", &seen, "");
        match self
            .hooks
            .run(Hook::Recover, node, &seen, self.hook_timeout, false)
            .await
        {
            Ok(Ran::Done(what) | Ran::Deferred(what)) => {
                self.journal.event("recover_done", &seen, &what);
                self.update(id, |t| {
                    t.drained = false;
                    t.drain_failed = false;
                });
                true
            }
            Err(e) => {
                let attempts = t.recover_attempts + 1;
                self.update(id, |t| t.recover_attempts = attempts);
                let last = attempts >= RECOVER_ATTEMPTS;
                let detail = if last {
                    format!("{e}; giving up after {attempts} attempts: recover the node by hand")
                } else {
                    format!("{e}; trying again at the next poll")
                };
                self.journal.event("recover_failed", &seen, &detail);
                last
            }
        }
    }

    fn update(&mut self, id: &str, f: impl FnOnce(&mut Tracked)) {
        if let Some(t) = self.tracked.get_mut(id) {
            f(t);
        }
    }

    fn save(&self) {
        let Some(path) = &self.state_file else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec_pretty(&self.tracked)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "Could not save the agent state");
        }
    }

    /// Polls every `interval` until `stop` resolves; with `once`, handles what is
    /// pending and returns. Errors that a retry can fix back off (doubling, capped,
    /// or the service's `Retry-After`); others end the loop.
    pub async fn run(
        &mut self,
        interval: Duration,
        once: Option<Duration>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), PollError> {
        tokio::pin!(stop);
        let started = tokio::time::Instant::now();
        let mut backoff = interval;
        loop {
            let wait = match self.tick().await {
                Ok(()) => {
                    if once.is_some() {
                        return Ok(());
                    }
                    backoff = interval;
                    interval
                }
                Err(e) if e.retryable => {
                    if once.is_some_and(|limit| started.elapsed() >= limit) {
                        return Err(e);
                    }
                    let wait = e.retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
                    self.journal.note(
                        "poll_error",
                        &format!("{e}; retrying in {}ms", wait.as_millis()),
                    );
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
