//! The routing table: which Slack channel (or webhook) a notice goes to, or whether
//! it is muted. Pure: parsed once from `REFLEX_SLACK_ROUTES`, matched per notice.
//!
//! Syntax: rules separated by `;` or newlines, each `CONDITIONS => TARGET`, the first
//! match wins. CONDITIONS are `key=value` pairs joined by `,` (all must hold), where a
//! value may list alternatives with `|`; `*` matches everything. Keys: `kind`,
//! `severity` (`critical|error|warning|info`), `account` (AWS account or Azure
//! subscription id), `state` (`firing|resolved|event`). TARGET is a channel (`#name` or
//! an id such as `C0123ABCD`), an incoming-webhook URL, or `mute`.
//!
//! ```text
//! kind=guardduty => #security; severity=critical => #oncall; kind=health,severity=info => mute
//! ```

use std::fmt;

use serde::Serialize;

use crate::notice::{Level, Notice, NoticeKind, NoticeState};
use crate::settings::Secret;

/// Where a notice goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A channel name or id, for the bot token.
    Channel(String),
    /// An incoming webhook (a secret: never printed).
    Webhook(Secret),
    /// The configured incoming webhook (`REFLEX_SLACK_WEBHOOK_URL` or `_SECRET`).
    DefaultWebhook,
    /// Nobody wants these.
    Mute,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(c) => f.write_str(c),
            Self::Webhook(_) => f.write_str("webhook:[redacted]"),
            Self::DefaultWebhook => f.write_str("webhook"),
            Self::Mute => f.write_str("mute"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Kind(Vec<NoticeKind>),
    Severity(Vec<Level>),
    Account(Vec<String>),
    State(Vec<NoticeState>),
}

impl Cond {
    fn holds(&self, n: &Notice) -> bool {
        match self {
            Self::Kind(k) => k.contains(&n.kind),
            Self::Severity(l) => l.contains(&n.level),
            Self::Account(a) => n.account.as_ref().is_some_and(|acc| a.contains(acc)),
            Self::State(s) => s.contains(&n.state),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    conds: Vec<Cond>,
    target: Target,
    /// The rule as written (webhook URLs redacted), for the outcome.
    text: String,
}

/// The parsed routing table plus the default target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    rules: Vec<Rule>,
    default: Option<Target>,
}

/// The route a notice took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub target: Target,
    /// The rule that matched, or `default`.
    pub rule: String,
}

fn alternatives<T>(
    values: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, String> {
    values
        .split('|')
        .map(|v| {
            let v = v.trim();
            parse(v).ok_or_else(|| format!("unknown {what} '{v}'"))
        })
        .collect()
}

fn cond(part: &str) -> Result<Option<Cond>, String> {
    let part = part.trim();
    if part == "*" {
        return Ok(None);
    }
    let Some((key, values)) = part.split_once('=') else {
        return Err(format!("'{part}' is not key=value"));
    };
    let values = values.trim();
    if values.is_empty() {
        return Err(format!("'{part}' has no value"));
    }
    let c = match key.trim() {
        "kind" => Cond::Kind(alternatives(values, NoticeKind::parse, "kind")?),
        "severity" => Cond::Severity(alternatives(values, Level::parse, "severity")?),
        "state" => Cond::State(alternatives(
            values,
            |s| {
                [
                    NoticeState::Firing,
                    NoticeState::Resolved,
                    NoticeState::Event,
                ]
                .into_iter()
                .find(|st| st.name() == s)
            },
            "state",
        )?),
        "account" => Cond::Account(alternatives(values, |s| Some(s.to_string()), "account")?),
        other => {
            return Err(format!(
                "unknown key '{other}' (expected kind, severity, account or state)"
            ));
        }
    };
    Ok(Some(c))
}

/// Where a word of a setting ends, for [`redact_urls`]. Not `,` or `|`: they
/// cannot start a URL, so a URL after them is still found, and the rest of the word
/// is redacted with it.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\'' | '"' | ';' | '<' | '>' | '`' | '(' | ')')
}

/// One word, with a URL's path, query and credentials (where webhook secrets live)
/// and a Slack token's body replaced by `[redacted]`.
fn redact_word(word: &str) -> String {
    if let Some(at) = word.find("://") {
        // `kind=x|https://…`: the scheme starts after the last non-scheme character.
        let start = word[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let rest = &word[at + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let hidden = if rest.len() > host.len() {
            "/[redacted]"
        } else {
            ""
        };
        let (before, scheme) = word[..at].split_at(start);
        return format!("{}{scheme}://{host}{hidden}", redact_word(before));
    }
    // Slack tokens: xoxb-…, xoxp-…, xapp-….
    let bytes = word.as_bytes();
    for (at, _) in word.match_indices('x') {
        let body = match bytes.get(at..at + 5) {
            Some([b'x', b'o', b'x', l, b'-']) if l.is_ascii_lowercase() => at + 5,
            Some(b"xapp-") => at + 5,
            _ => continue,
        };
        if word.len() > body {
            return format!("{}[redacted]", &word[..body]);
        }
    }
    // A webhook URL written without its scheme: `hooks.slack.com/services/…`.
    if let Some(slash) = word.find('/')
        && word[..slash].contains('.')
        && word.len() > slash + 1
    {
        return format!("{}/[redacted]", &word[..slash]);
    }
    word.to_string()
}

/// `text` with every URL cut down to its scheme and host
/// (`https://hooks.slack.com/[redacted]`) and every Slack token redacted, for echoing
/// a setting that may hold webhook URLs (`REFLEX_SLACK_ROUTES`) in an error or a log.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if ends_word(c) {
            out.push_str(&redact_word(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&redact_word(&word));
    out
}

/// Parses a target: `mute`, an `https://` webhook URL, or a channel.
pub fn target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("mute") {
        Ok(Target::Mute)
    } else if t.starts_with("https://") || t.starts_with("http://") {
        if t.contains(char::is_whitespace) {
            return Err(format!(
                "'{}' is not a webhook URL: it contains a space",
                redact_urls(t)
            ));
        }
        Ok(Target::Webhook(Secret::new(t)))
    } else if !t.is_empty() && !t.contains(char::is_whitespace) {
        Ok(Target::Channel(t.to_string()))
    } else {
        Err(format!(
            "'{}' is not a channel (#name or id), a webhook URL or mute",
            redact_urls(t)
        ))
    }
}

impl Routes {
    /// Parses the table. Errors name the rule and what to fix, with webhook URLs
    /// redacted ([`redact_urls`]): the table is a secret where it routes to them.
    pub fn parse(table: &str, default: Option<Target>) -> Result<Self, String> {
        Self::parse_rules(table, default).map_err(|e| redact_urls(&e))
    }

    fn parse_rules(table: &str, default: Option<Target>) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (i, raw) in table
            .split([';', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .enumerate()
        {
            let Some((conds, to)) = raw.split_once("=>") else {
                return Err(format!(
                    "rule {} '{raw}': expected CONDITIONS => TARGET",
                    i + 1
                ));
            };
            let conds = conds
                .split(',')
                .map(cond)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("rule {}: {e}", i + 1))?
                .into_iter()
                .flatten()
                .collect();
            let target = target(to).map_err(|e| format!("rule {}: {e}", i + 1))?;
            // `account=` takes any value, so the conditions may hold a URL too.
            let text = format!(
                "{} => {target}",
                redact_urls(raw.split_once("=>").map_or("", |p| p.0).trim())
            );
            rules.push(Rule {
                conds,
                target,
                text,
            });
        }
        Ok(Self { rules, default })
    }

    /// The route for `notice`: the first matching rule, else the default. `None` when
    /// nothing matches and there is no default.
    pub fn route(&self, notice: &Notice) -> Option<Route> {
        self.rules
            .iter()
            .find(|r| r.conds.iter().all(|c| c.holds(notice)))
            .map(|r| Route {
                target: r.target.clone(),
                rule: r.text.clone(),
            })
            .or_else(|| {
                self.default.clone().map(|target| Route {
                    target,
                    rule: "default".into(),
                })
            })
    }

    /// Every target a rule or the default names (to check the setup at cold start).
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.rules.iter().map(|r| &r.target).chain(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind, level: Level, account: &str) -> Notice {
        let mut n = Notice::new(kind, "t", level, NoticeState::Firing, "x", "d");
        n.account = Some(account.into());
        n
    }

    fn to(r: Option<Route>) -> String {
        r.map(|r| r.target.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_default_catches_the_rest() {
        let routes = Routes::parse(
            "kind=guardduty => #security; severity=critical|error => #oncall;\n\
             account=111122223333 => C0PROD; kind=health,severity=info => mute",
            Some(Target::Channel("#alerts".into())),
        );
        let Ok(routes) = routes else {
            panic!("{routes:?}")
        };
        let r = |k, l, a| to(routes.route(&notice(k, l, a)));
        assert_eq!(r(NoticeKind::Guardduty, Level::Critical, "1"), "#security");
        assert_eq!(r(NoticeKind::CloudwatchAlarm, Level::Error, "1"), "#oncall");
        assert_eq!(
            r(NoticeKind::CloudwatchAlarm, Level::Warning, "111122223333"),
            "C0PROD"
        );
        assert_eq!(r(NoticeKind::Health, Level::Info, "1"), "mute");
        assert_eq!(r(NoticeKind::Health, Level::Warning, "1"), "#alerts");
        let hit = routes.route(&notice(NoticeKind::Guardduty, Level::Info, "1"));
        assert_eq!(
            hit.map(|r| r.rule),
            Some("kind=guardduty => #security".into())
        );
    }

    #[test]
    fn without_a_default_unmatched_notices_have_no_route() {
        let Ok(routes) = Routes::parse("kind=config => #compliance", None) else {
            panic!()
        };
        assert_eq!(
            routes.route(&notice(NoticeKind::Health, Level::Info, "1")),
            None
        );
    }

    #[test]
    fn webhook_targets_never_print_their_url() {
        let Ok(routes) = Routes::parse("* => https://hooks.slack.com/services/T/B/secret", None)
        else {
            panic!()
        };
        let r = routes.route(&notice(NoticeKind::Event, Level::Info, "1"));
        let shown = format!("{r:?} {}", serde_json::to_string(&r).unwrap_or_default());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(matches!(r.map(|r| r.target), Some(Target::Webhook(_))));
    }

    const HOOK: &str = "https://hooks.slack.com/services/T0001/B0001/S3CR3TS3CR3T";

    #[test]
    fn a_broken_rule_is_named_without_echoing_its_webhook_url() {
        let e = |t: &str| Routes::parse(t, None).err().unwrap_or_default();
        for (table, want) in [
            (
                format!("kind=config {HOOK}"),
                "rule 1 'kind=config https://hooks.slack.com/[redacted]': expected CONDITIONS => TARGET",
            ),
            (
                format!("kind=config => #c; {HOOK} => #x"),
                "rule 2: 'https://hooks.slack.com/[redacted]' is not key=value",
            ),
            (
                format!("kind=config|{HOOK} => #x"),
                "rule 1: unknown kind 'https://hooks.slack.com/[redacted]'",
            ),
            (
                format!("* => {HOOK} #oncall"),
                "rule 1: 'https://hooks.slack.com/[redacted] #oncall' is not a webhook URL: it contains a space",
            ),
            (
                "* => hooks.slack.com/services/T0001/B0001/S3CR3TS3CR3T now".into(),
                "rule 1: 'hooks.slack.com/[redacted] now' is not a channel (#name or id), a webhook URL or mute",
            ),
            (
                "* => xoxb-1111-S3CR3TS3CR3T #x".into(),
                "rule 1: 'xoxb-[redacted] #x' is not a channel (#name or id), a webhook URL or mute",
            ),
        ] {
            let got = e(&table);
            assert_eq!(got, want, "{table}");
            assert!(!got.contains("S3CR3T"), "{got}");
        }
    }

    #[test]
    fn a_url_in_a_condition_is_redacted_from_the_rule_shown() {
        let Ok(routes) = Routes::parse(&format!("account={HOOK} => {HOOK}"), None) else {
            panic!()
        };
        let shown = format!(
            "{:?}",
            routes.route(&notice(NoticeKind::Event, Level::Info, HOOK))
        );
        assert!(
            shown.contains("account=https://hooks.slack.com/[redacted] => webhook:[redacted]"),
            "{shown}"
        );
        assert!(!shown.contains("S3CR3T"), "{shown}");
    }

    #[test]
    fn redaction_keeps_the_scheme_and_host_and_hides_the_rest() {
        assert_eq!(
            redact_urls("a https://user:pw@hooks.slack.com:443/services/x?t=1 b"),
            "a https://hooks.slack.com:443/[redacted] b"
        );
        assert_eq!(redact_urls("'http://127.0.0.1:9'"), "'http://127.0.0.1:9'");
        assert_eq!(
            redact_urls("k=xoxp-1-2;xapp-1-x;#xoxo-fans"),
            "k=xoxp-[redacted];xapp-[redacted];#xoxo-[redacted]"
        );
        assert_eq!(redact_urls("#alerts, kind=config"), "#alerts, kind=config");
        assert_eq!(redact_urls("ünïcode://ä/b"), "ünïcode://ä/[redacted]");
    }

    #[test]
    fn mistakes_are_reported_with_the_rule_and_the_fix() {
        let e = |t: &str| Routes::parse(t, None).err().unwrap_or_default();
        assert_eq!(e("kind=alarm => #x"), "rule 1: unknown kind 'alarm'");
        assert_eq!(
            e("kind=config => #x; sev=high => #y"),
            "rule 2: unknown key 'sev' (expected kind, severity, account or state)"
        );
        assert_eq!(
            e("kind=config #x"),
            "rule 1 'kind=config #x': expected CONDITIONS => TARGET"
        );
        assert_eq!(
            e("kind=config => two words"),
            "rule 1: 'two words' is not a channel (#name or id), a webhook URL or mute"
        );
        assert_eq!(e("severity= => #x"), "rule 1: 'severity=' has no value");
    }
}
