//! Typed configuration, read once at cold start. See the README's table.

use std::time::Duration;

use reflex_core::ConfigError;
use reflex_core::settings::{Lookup, cidrs, flag, number};
use reflex_core::store::StoreSetting;
use reflex_notify::Reporting;

use crate::decide::Policy;

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dry_run: bool,
    pub policy: Policy,
    /// `REFLEX_NACL_RULE_RANGE` (default `50-99`): the NACL rule numbers Reflex owns.
    /// They must sort before the subnet's ALLOW rules to take effect.
    pub rule_range: (i32, i32),
    /// `REFLEX_SSH_BLOCK_SECS` (default one day): how long a block lasts.
    pub block_for: Duration,
    /// `REFLEX_SSH_INSTANCE_ID`: the instance when the log stream is not named by it.
    pub instance: Option<String>,
    /// `REFLEX_SSH_WAF_IPSET_ARN`: block by adding the source to this WAFv2 IP set
    /// instead of the subnet's network ACL.
    pub waf: Option<reflex_aws::waf::IpSetRef>,
    pub store: StoreSetting,
    pub reporting: Reporting,
}

fn ipv6_prefix(env: &impl Lookup) -> Result<u8, ConfigError> {
    const NAME: &str = "REFLEX_SSH_IPV6_PREFIX";
    let n = number(env, NAME, 64, 128)?;
    match u8::try_from(n) {
        Ok(p) if p >= 48 => Ok(p),
        _ => Err(ConfigError::new(
            NAME,
            &n.to_string(),
            "expected a prefix length from 48 to 128 (64: block an IPv6 source's /64)",
        )),
    }
}

fn range(env: &impl Lookup) -> Result<(i32, i32), ConfigError> {
    const NAME: &str = "REFLEX_NACL_RULE_RANGE";
    let Some(v) = env.get(NAME) else {
        return Ok((50, 99));
    };
    let parsed = v.split_once('-').and_then(|(a, b)| {
        let (a, b) = (a.trim().parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?);
        (1 <= a && a <= b && b <= 32766).then_some((a, b))
    });
    parsed
        .ok_or_else(|| ConfigError::new(NAME, &v, "expected FIRST-LAST within 1-32766, e.g. 50-99"))
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let instance = env.get("REFLEX_SSH_INSTANCE_ID");
        if let Some(i) = &instance
            && !crate::is_instance_id(i)
        {
            return Err(ConfigError::new(
                "REFLEX_SSH_INSTANCE_ID",
                i,
                "expected an instance id (i-…)",
            ));
        }
        let waf = match env.get("REFLEX_SSH_WAF_IPSET_ARN") {
            None => None,
            Some(arn) => Some(reflex_aws::waf::IpSetRef::parse(&arn).ok_or_else(|| {
                ConfigError::new(
                    "REFLEX_SSH_WAF_IPSET_ARN",
                    &arn,
                    "expected an IP set ARN, arn:aws:wafv2:REGION:ACCOUNT:regional/ipset/NAME/ID",
                )
            })?),
        };
        Ok(Self {
            waf,
            dry_run: flag(env, "REFLEX_DRY_RUN", false)?,
            policy: Policy {
                // fail2ban's sshd jail: 5 failures in 10 minutes.
                max_failures: usize::try_from(number(env, "REFLEX_SSH_MAX_FAILURES", 5, 1000)?)
                    .unwrap_or(5),
                window_secs: i64::try_from(number(env, "REFLEX_SSH_WINDOW_SECS", 600, 86_400)?)
                    .unwrap_or(600),
                allowed: cidrs(env, "REFLEX_ALLOWED_CIDRS", Vec::new())?,
                block_private: flag(env, "REFLEX_SSH_BLOCK_PRIVATE", false)?,
                ipv6_prefix: ipv6_prefix(env)?,
            },
            rule_range: range(env)?,
            block_for: Duration::from_secs(number(
                env,
                "REFLEX_SSH_BLOCK_SECS",
                86_400,
                30 * 86_400,
            )?),
            instance,
            store: StoreSetting::from_lookup(env)?,
            reporting: Reporting::from_lookup(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::settings::from_pairs as env;

    use super::*;

    #[test]
    fn defaults_and_mistakes() {
        let c = Config::from_lookup(&env(&[]));
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(
            (
                c.policy.max_failures,
                c.policy.window_secs,
                c.policy.ipv6_prefix,
                c.rule_range
            ),
            (5, 600, 64, (50, 99))
        );
        for (name, value, says) in [
            ("REFLEX_NACL_RULE_RANGE", "99-50", "FIRST-LAST"),
            ("REFLEX_NACL_RULE_RANGE", "0-10", "FIRST-LAST"),
            ("REFLEX_SSH_MAX_FAILURES", "0", "from 1"),
            ("REFLEX_SSH_WINDOW_SECS", "a", "from 1"),
            ("REFLEX_SSH_IPV6_PREFIX", "32", "from 48 to 128"),
            ("REFLEX_SSH_IPV6_PREFIX", "129", "from 1 to 128"),
            ("REFLEX_SSH_INSTANCE_ID", "web-1", "instance id"),
            ("REFLEX_ALLOWED_CIDRS", "office", "CIDR"),
            ("REFLEX_SSH_WAF_IPSET_ARN", "reflex-ssh", "IP set ARN"),
        ] {
            let e = Config::from_lookup(&env(&[(name, value)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.starts_with(name) && e.contains(says), "{name}: {e}");
        }
    }
}
