//! Notice → Slack message: the parent (what, where, facts, reason, links) and the
//! short thread replies.

use reflex_core::{Level, Notice, NoticeState};
use reflex_notify::{Message, Severity};

fn severity(n: &Notice) -> Severity {
    match (n.state, n.level) {
        (NoticeState::Resolved, _) => Severity::Resolved,
        (_, Level::Critical) => Severity::Critical,
        (_, Level::Error) => Severity::Error,
        (_, Level::Warning) => Severity::Warning,
        (_, Level::Info) => Severity::Info,
    }
}

/// "what — where".
fn header(n: &Notice) -> String {
    match &n.place {
        Some(p) => format!("{} — {p}", n.title),
        None => n.title.clone(),
    }
}

/// The one-line status under the header.
fn status(n: &Notice, since: Option<&str>) -> String {
    let at = n.at.as_deref().unwrap_or("now");
    match (n.state, since) {
        (NoticeState::Resolved, Some(s)) => {
            format!(
                "*Resolved* at {at} (firing since {s}) · severity {}",
                n.level
            )
        }
        (NoticeState::Resolved, None) => format!("*Resolved* at {at} · severity {}", n.level),
        (NoticeState::Firing, Some(s)) if s != at => {
            format!(
                "*Firing* since {s} (last update {at}) · severity {}",
                n.level
            )
        }
        (NoticeState::Firing, _) => format!("*Firing* since {at} · severity {}", n.level),
        (NoticeState::Event, _) => format!("*{}* event at {at}", n.level),
    }
}

/// The top-level message: the whole story, as the thread's parent it is updated to
/// show the current state.
pub fn parent(n: &Notice, since: Option<&str>, dry_run: bool) -> Message {
    let mut sections = Vec::new();
    if let Some(r) = &n.reason {
        sections.push((
            "Reason".to_string(),
            r.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        ));
    }
    Message {
        severity: severity(n),
        title: header(n),
        banner: dry_run.then(|| "DRY RUN: this message was not posted".to_string()),
        summary: status(n, since),
        fields: n.fields.clone(),
        sections,
        footer: vec![
            format!("reflex alert-to-slack · {}", n.kind),
            n.trigger.clone(),
        ],
        links: n.links.clone(),
    }
}

/// A reply in the thread: the new state and why, in a few lines.
pub fn reply(n: &Notice) -> Message {
    let verb = match n.state {
        NoticeState::Resolved => "Resolved",
        NoticeState::Firing => "Still firing",
        NoticeState::Event => "Again",
    };
    let mut fields: Vec<(String, String)> = n
        .fields
        .iter()
        .filter(|(k, _)| {
            ["Value", "State", "Status", "Compliance", "Count", "Health"].contains(&k.as_str())
        })
        .cloned()
        .collect();
    fields.truncate(4);
    Message {
        severity: severity(n),
        title: format!("{verb}: {}", n.title),
        banner: None,
        summary: format!(
            "{}{}",
            n.at.as_deref()
                .map(|a| format!("{a}: "))
                .unwrap_or_default(),
            n.reason
                .as_deref()
                .and_then(|r| r.lines().next())
                .unwrap_or("no reason given")
        ),
        fields,
        sections: Vec::new(),
        footer: Vec::new(),
        links: Vec::new(),
    }
}
