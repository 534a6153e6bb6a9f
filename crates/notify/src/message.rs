//! A channel-neutral report.

/// How loud a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something was fixed.
    Remediated,
    /// Dry-run: something would have been fixed.
    Planned,
    /// Something could not be fixed: a person must act.
    Failed,
    /// Alerts, by urgency.
    Critical,
    Error,
    Warning,
    Info,
    /// An alert that has cleared.
    Resolved,
}

impl Severity {
    pub fn emoji(self) -> &'static str {
        match self {
            Self::Remediated => ":white_check_mark:",
            Self::Planned => ":large_blue_circle:",
            Self::Failed | Self::Critical => ":rotating_light:",
            Self::Error => ":red_circle:",
            Self::Warning => ":warning:",
            Self::Info => ":information_source:",
            Self::Resolved => ":white_check_mark:",
        }
    }

    /// The attachment bar colour: red, orange, yellow, blue, green.
    pub fn colour(self) -> &'static str {
        match self {
            Self::Failed | Self::Critical => "#E01E5A",
            Self::Error => "#F2711C",
            Self::Warning => "#ECB22E",
            Self::Planned | Self::Info => "#1D9BD1",
            Self::Remediated | Self::Resolved => "#2EB67D",
        }
    }
}

/// A report: a header, an optional banner, a summary, labelled fields, titled
/// sections of lines, and a footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub severity: Severity,
    /// One line: what and where.
    pub title: String,
    /// Shown first and loud, e.g. the DRY RUN notice.
    pub banner: Option<String>,
    pub summary: String,
    /// `(label, value)` pairs: who, account, region, group…
    pub fields: Vec<(String, String)>,
    /// `(title, lines)`: e.g. "What Reflex did" with one line per rule.
    pub sections: Vec<(String, Vec<String>)>,
    /// Small print: event id, function.
    pub footer: Vec<String>,
    /// Buttons: console, portal, log search.
    pub links: Vec<reflex_core::Link>,
}

impl Message {
    /// A plain-text rendering (SNS, logs, the webhook's `text` fallback).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(b) = &self.banner {
            out.push_str(b);
            out.push_str("\n\n");
        }
        out.push_str(&self.title);
        out.push_str("\n\n");
        out.push_str(&self.summary);
        out.push('\n');
        for (k, v) in &self.fields {
            out.push_str(&format!("{k}: {v}\n"));
        }
        for (title, lines) in &self.sections {
            out.push_str(&format!("\n{title}\n"));
            for l in lines {
                out.push_str(&format!("- {l}\n"));
            }
        }
        for l in &self.links {
            out.push_str(&format!("{}: {}\n", l.label, l.url));
        }
        if !self.footer.is_empty() {
            out.push('\n');
            out.push_str(&self.footer.join(" | "));
            out.push('\n');
        }
        out
    }
}
