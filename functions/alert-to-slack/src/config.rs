//! Typed configuration, read once at cold start. See the README's table.

use std::time::Duration;

use reflex_aws::secrets::{SecretSetting, check_url};
use reflex_core::route::redact_urls;
use reflex_core::settings::{Lookup, flag};
pub use reflex_core::store::StoreSetting;
use reflex_core::{ConfigError, Routes, Target};

/// `REFLEX_DENIED_BURST`: this many denials by one principal within the window make
/// one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub count: u64,
    pub window: Duration,
}

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dry_run: bool,
    /// `REFLEX_SLACK_WEBHOOK_URL` / `REFLEX_SLACK_WEBHOOK_SECRET`.
    pub webhook: SecretSetting,
    /// `REFLEX_SLACK_BOT_TOKEN` / `REFLEX_SLACK_BOT_TOKEN_SECRET`.
    pub bot_token: SecretSetting,
    /// `REFLEX_SLACK_API_URL`.
    pub api_url: String,
    pub routes: Routes,
    pub store: StoreSetting,
    pub burst: Burst,
    /// `REFLEX_SNS_TOPIC_ARN`: also publish each message here.
    pub sns_topic_arn: Option<String>,
    /// `REFLEX_OWN_ROLE_ARNS`: the roles of Reflex's remediating functions. Their
    /// successful security-group and NACL changes are not reported again.
    pub own_roles: Vec<String>,
}

fn check_token(v: &str) -> Result<(), String> {
    if v.starts_with("xox") {
        Ok(())
    } else {
        Err("expected a bot token (xoxb-…)".into())
    }
}

/// The longest burst window: a day.
const MAX_WINDOW_SECS: u64 = 86_400;

fn burst(env: &impl Lookup) -> Result<Burst, ConfigError> {
    const NAME: &str = "REFLEX_DENIED_BURST";
    let Some(v) = env.get(NAME) else {
        return Ok(Burst {
            count: 5,
            window: Duration::from_secs(300),
        });
    };
    let parsed = v.split_once('/').and_then(|(c, w)| {
        let count = c.trim().parse::<u64>().ok().filter(|c| *c > 0)?;
        let secs = w
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_WINDOW_SECS).contains(s))?;
        Some(Burst {
            count,
            window: Duration::from_secs(secs),
        })
    });
    parsed.ok_or_else(|| {
        ConfigError::new(
            NAME,
            &v,
            format!("expected COUNT/SECONDS with 1-{MAX_WINDOW_SECS} seconds, e.g. 5/300"),
        )
    })
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, as CloudTrail's `sessionIssuer.arn`.
fn is_role_arn(s: &str) -> bool {
    let mut f = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource
            .strip_prefix("role/")
            .is_some_and(|r| !r.is_empty() && !r.ends_with('/'))
}

fn own_roles(env: &impl Lookup) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "REFLEX_OWN_ROLE_ARNS";
    let Some(v) = env.get(NAME) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            if is_role_arn(r) {
                Ok(r.to_string())
            } else {
                Err(ConfigError::new(
                    NAME,
                    &v,
                    format!(
                        "'{r}' is not an IAM role ARN: expected comma-separated \
                         arn:aws:iam::ACCOUNT:role/NAME"
                    ),
                ))
            }
        })
        .collect()
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let webhook = SecretSetting::from_lookup(
            env,
            "REFLEX_SLACK_WEBHOOK_URL",
            "REFLEX_SLACK_WEBHOOK_SECRET",
            check_url,
        )?;
        let bot_token = SecretSetting::from_lookup(
            env,
            "REFLEX_SLACK_BOT_TOKEN",
            "REFLEX_SLACK_BOT_TOKEN_SECRET",
            check_token,
        )?;
        let api_url = env
            .get("REFLEX_SLACK_API_URL")
            .unwrap_or_else(|| "https://slack.com/api".into());
        check_url(&api_url).map_err(|r| ConfigError::new("REFLEX_SLACK_API_URL", &api_url, r))?;
        let has_bot = bot_token != SecretSetting::None;
        let channel = env.get("REFLEX_SLACK_CHANNEL");
        if channel.is_some() && !has_bot {
            return Err(ConfigError::new(
                "REFLEX_SLACK_CHANNEL",
                channel.as_deref().unwrap_or_default(),
                "a channel needs a bot token: set REFLEX_SLACK_BOT_TOKEN (or _SECRET)",
            ));
        }
        // The default: the bot's channel, else the incoming webhook.
        let default = match (channel, &webhook) {
            (Some(c), _) => Some(
                reflex_core::route::target(&c)
                    .map_err(|r| ConfigError::new("REFLEX_SLACK_CHANNEL", &redact_urls(&c), r))?,
            ),
            (None, SecretSetting::None) => None,
            (None, _) => Some(Target::DefaultWebhook),
        };
        let table = env.get("REFLEX_SLACK_ROUTES").unwrap_or_default();
        // The table may hold webhook URLs (secrets): errors show it redacted.
        let routes = Routes::parse(&table, default)
            .map_err(|r| ConfigError::new("REFLEX_SLACK_ROUTES", &redact_urls(&table), r))?;
        if !has_bot && routes.targets().any(|t| matches!(t, Target::Channel(_))) {
            return Err(ConfigError::new(
                "REFLEX_SLACK_ROUTES",
                &redact_urls(&table),
                "routes to channels need a bot token: set REFLEX_SLACK_BOT_TOKEN (or _SECRET), or route to webhook URLs",
            ));
        }
        let store = StoreSetting::from_lookup(env)?;
        Ok(Self {
            dry_run: flag(env, "REFLEX_DRY_RUN", false)?,
            webhook,
            bot_token,
            api_url,
            routes,
            store,
            burst: burst(env)?,
            sns_topic_arn: env.get("REFLEX_SNS_TOPIC_ARN"),
            own_roles: own_roles(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::settings::from_pairs as env;

    use super::*;

    fn err(pairs: &[(&str, &str)]) -> String {
        Config::from_lookup(&env(pairs))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_webhook_is_the_default_route_without_a_bot() {
        let c = Config::from_lookup(&env(&[(
            "REFLEX_SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/x",
        )]));
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(
            c.routes.targets().collect::<Vec<_>>(),
            [&Target::DefaultWebhook]
        );
        assert_eq!(c.store, StoreSetting::Memory);
        assert_eq!(c.burst.count, 5);
    }

    #[test]
    fn the_bot_channel_is_the_default_route() {
        let c = Config::from_lookup(&env(&[
            ("REFLEX_SLACK_BOT_TOKEN", "xoxb-1"),
            ("REFLEX_SLACK_CHANNEL", "#alerts"),
            ("REFLEX_SLACK_ROUTES", "kind=guardduty => #security"),
            ("REFLEX_DYNAMODB_TABLE", "reflex-alerts"),
            ("REFLEX_DENIED_BURST", "10/60"),
        ]));
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.routes.targets().count(), 2);
        assert_eq!(c.store, StoreSetting::DynamoDb("reflex-alerts".into()));
        assert_eq!(c.burst.window, Duration::from_secs(60));
        assert!(c.own_roles.is_empty());
    }

    #[test]
    fn own_roles_are_a_comma_separated_list_of_role_arns() {
        let c = Config::from_lookup(&env(&[(
            "REFLEX_OWN_ROLE_ARNS",
            " arn:aws:iam::123456789012:role/reflex-CloseOpenPortsRole-1, ,arn:aws-cn:iam::123456789012:role/ops/ssh ",
        )]));
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(
            c.own_roles,
            [
                "arn:aws:iam::123456789012:role/reflex-CloseOpenPortsRole-1",
                "arn:aws-cn:iam::123456789012:role/ops/ssh"
            ]
        );
    }

    #[test]
    fn mistakes_name_the_setting_and_the_fix() {
        assert!(err(&[("REFLEX_SLACK_CHANNEL", "#alerts")]).contains("needs a bot token"));
        assert!(
            err(&[
                ("REFLEX_SLACK_WEBHOOK_URL", "https://h/x"),
                ("REFLEX_SLACK_ROUTES", "kind=config => #c")
            ])
            .starts_with(
                "REFLEX_SLACK_ROUTES='kind=config => #c': routes to channels need a bot token"
            )
        );
        assert!(
            err(&[("REFLEX_SLACK_ROUTES", "kind=nope => mute")]).contains("unknown kind 'nope'")
        );
        assert!(err(&[("REFLEX_DENIED_BURST", "five")]).contains("COUNT/SECONDS"));
        let huge = format!("5/{}", u64::MAX);
        assert!(err(&[("REFLEX_DENIED_BURST", huge.as_str())]).contains("1-86400 seconds"));
        assert!(err(&[("REFLEX_AZURE_TABLE", "t")]).contains("AzureWebJobsStorage"));
        for bad in [
            "reflex-role",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::1234:role/r",
            "arn:aws:iam::123456789012:role/",
        ] {
            let e = err(&[("REFLEX_OWN_ROLE_ARNS", bad)]);
            assert!(e.contains("is not an IAM role ARN"), "{bad}: {e}");
        }
        let e = err(&[("REFLEX_SLACK_BOT_TOKEN", "secret-token-value")]);
        assert!(
            e.contains("xoxb") && !e.contains("secret-token-value"),
            "{e}"
        );
    }

    const HOOK: &str = "https://hooks.slack.com/services/T0001/B0001/S3CR3TS3CR3T";

    #[test]
    fn a_bad_routes_table_names_the_rule_but_never_echoes_a_webhook_url() {
        let table = format!("kind=guardduty => {HOOK}; kind=nope => {HOOK}");
        let e = err(&[("REFLEX_SLACK_ROUTES", table.as_str())]);
        assert_eq!(
            e,
            "REFLEX_SLACK_ROUTES='kind=guardduty => https://hooks.slack.com/[redacted]; \
             kind=nope => https://hooks.slack.com/[redacted]': rule 2: unknown kind 'nope'"
        );
        let table = format!("kind=guardduty {HOOK}");
        let e = err(&[("REFLEX_SLACK_ROUTES", table.as_str())]);
        assert!(e.contains("rule 1") && !e.contains("S3CR3T"), "{e}");
        // The debug form (what a `{:?}` in a log line shows) too.
        let dbg = format!(
            "{:?}",
            Config::from_lookup(&env(&[("REFLEX_SLACK_ROUTES", table.as_str())]))
        );
        assert!(dbg.contains("rule 1") && !dbg.contains("S3CR3T"), "{dbg}");
        let table = format!("kind=guardduty => {HOOK}; kind=config => #c");
        let e = err(&[("REFLEX_SLACK_ROUTES", table.as_str())]);
        assert!(
            e.contains("need a bot token") && !e.contains("S3CR3T"),
            "{e}"
        );
    }

    #[test]
    fn the_config_debug_shows_no_secret() {
        let routes = format!("kind=guardduty => {HOOK}; kind=config => #c");
        let c = Config::from_lookup(&env(&[
            ("REFLEX_SLACK_WEBHOOK_URL", HOOK),
            ("REFLEX_SLACK_BOT_TOKEN", "xoxb-1111-S3CR3TS3CR3T"),
            ("REFLEX_SLACK_ROUTES", routes.as_str()),
            ("REFLEX_AZURE_TABLE", "alerts"),
            (
                "REFLEX_AZURE_STORAGE_CONNECTION",
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3CR3TS3CR3T==",
            ),
        ]));
        let Ok(c) = c else { panic!("{c:?}") };
        let shown = format!("{c:?}");
        assert!(!shown.contains("S3CR3T"), "{shown}");
    }
}
