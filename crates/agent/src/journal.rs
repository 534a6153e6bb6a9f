//! Structured records: one JSON line per record in the agent's log file (for a log
//! agent to collect), and the same record through `tracing` on stdout, which
//! systemd hands to journald (and on to syslog).

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::source::Seen;

/// Where records go.
#[derive(Debug, Default)]
pub struct Journal {
    path: Option<PathBuf>,
    /// The last [`KEPT`] records, for `--once` summaries and tests.
    pub records: VecDeque<Value>,
}

/// How many records stay in memory; the file keeps them all.
const KEPT: usize = 1000;

fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            records: VecDeque::new(),
        }
    }

    /// A record about an event: `event_new`, `event_status`, `drain_started`, …
    pub fn event(&mut self, record: &str, seen: &Seen, detail: &str) {
        let m = &seen.maintenance;
        let not_before = m
            .not_before
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| t.to_rfc3339());
        let line = json!({
            "time": now_rfc3339(),
            "record": record,
            "event_id": m.id,
            "cloud": m.cloud,
            "kind": m.kind,
            "status": m.phase,
            "not_before": not_before,
            "resources": m.targets,
            "detail": detail,
        });
        tracing::info!(
            record,
            event_id = %m.id,
            kind = %m.kind,
            status = ?m.phase,
            not_before = not_before.as_deref().unwrap_or(""),
            detail,
            "Scheduled event"
        );
        self.write(line);
    }

    /// A record not about one event: `started`, `poll_error`, …
    pub fn note(&mut self, record: &str, detail: &str) {
        tracing::info!(record, detail, "Agent");
        self.write(json!({"time": now_rfc3339(), "record": record, "detail": detail}));
    }

    fn write(&mut self, line: Value) {
        if let Some(path) = &self.path {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "Could not write the event log");
            }
        }
        if self.records.len() >= KEPT {
            self.records.pop_front();
        }
        self.records.push_back(line);
    }
}
