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

/// Parses a target: `mute`, an `https://` webhook URL, or a channel.
pub fn target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("mute") {
        Ok(Target::Mute)
    } else if t.starts_with("https://") || t.starts_with("http://") {
        Ok(Target::Webhook(Secret::new(t)))
    } else if !t.is_empty() && !t.contains(char::is_whitespace) {
        Ok(Target::Channel(t.to_string()))
    } else {
        Err(format!(
            "'{t}' is not a channel (#name or id), a webhook URL or mute"
        ))
    }
}

impl Routes {
    /// Parses the table. Errors name the rule and what to fix.
    pub fn parse(table: &str, default: Option<Target>) -> Result<Self, String> {
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
            let text = format!(
                "{} => {target}",
                raw.split_once("=>").map_or("", |p| p.0).trim()
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
