//! The Slack messages: a source blocked (or planned), a login after a burst of
//! failures, and expired blocks removed.

use reflex_notify::message::{Message, Severity};

use crate::NAME;

/// What is said about one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The source as shown: an address, or an IPv6 prefix.
    pub source: &'a str,
    pub failures: usize,
    pub window_secs: i64,
    pub users: &'a [String],
    pub instance: &'a str,
    pub log: &'a str,
}

fn fields(f: &Facts<'_>) -> Vec<(String, String)> {
    const MAX_USERS: usize = 10;
    let mut users: Vec<&str> = f.users.iter().take(MAX_USERS).map(String::as_str).collect();
    if f.users.len() > MAX_USERS {
        users.push("…");
    }
    vec![
        ("Source".into(), f.source.to_string()),
        (
            "Failures".into(),
            format!("{} within {} s", f.failures, f.window_secs),
        ),
        (
            "Usernames tried".into(),
            if users.is_empty() {
                "(none logged)".into()
            } else {
                users.join(", ")
            },
        ),
        ("Instance".into(), f.instance.to_string()),
        ("Log".into(), f.log.to_string()),
    ]
}

/// A block done (or, in dry-run, planned): what was changed, and its expiry.
pub fn blocked(f: &Facts<'_>, action: &str, expires: &str, dry_run: bool) -> Message {
    let mut fields = fields(f);
    fields.push(("Action".into(), action.to_string()));
    fields.push(("Expires".into(), expires.to_string()));
    Message {
        severity: if dry_run {
            Severity::Planned
        } else {
            Severity::Remediated
        },
        title: format!(
            "{} {}: SSH brute force on {}",
            if dry_run { "Would block" } else { "Blocked" },
            f.source,
            f.instance
        ),
        banner: dry_run.then(|| "DRY RUN: nothing was changed".to_string()),
        summary: format!(
            "{} failed SSH logins from {} within {} s. Reflex blocks it until {expires}.",
            f.failures, f.source, f.window_secs
        ),
        fields,
        sections: Vec::new(),
        footer: vec![NAME.to_string()],
        links: Vec::new(),
    }
}

/// Failures, then a login from the same source: not blocked, a person must look.
pub fn logged_in(f: &Facts<'_>, accepted_as: &[String]) -> Message {
    let mut fields = fields(f);
    fields.push(("Logged in as".into(), accepted_as.join(", ")));
    Message {
        severity: Severity::Critical,
        title: format!(
            "SSH login from {} after {} failures on {}",
            f.source, f.failures, f.instance
        ),
        banner: None,
        summary: format!(
            "{} failed {} times, then logged in. Reflex did not block it (it may be a person who mistyped, or a stolen password): check the session on {}.",
            f.source, f.failures, f.instance
        ),
        fields,
        sections: Vec::new(),
        footer: vec![NAME.to_string()],
        links: Vec::new(),
    }
}

/// Expired blocks removed by the sweep.
pub fn unblocked(lines: Vec<String>) -> Message {
    Message {
        severity: Severity::Resolved,
        title: format!("{} expired SSH block(s) removed", lines.len()),
        banner: None,
        summary: "The sweep removed Reflex's expired DENY entries (and only those).".into(),
        fields: Vec::new(),
        sections: vec![("Removed".into(), lines)],
        footer: vec![NAME.to_string()],
        links: Vec::new(),
    }
}
