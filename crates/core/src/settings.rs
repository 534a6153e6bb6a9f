//! Typed configuration from `REFLEX_*` settings, read once at cold start.
//!
//! Parsing is pure: callers pass a lookup function (the process environment in
//! production, a map in tests).

use std::fmt;

use ipnet::IpNet;

use crate::model::Tag;
use crate::policy::{ExposurePolicy, PortSet, default_public_cidrs};

/// A setting with a value that cannot be used. Displays as
/// `REFLEX_FORBIDDEN_PORTS='22,ssh': 'ssh' is not a port or range (0-65535)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}='{value}': {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

/// A string that must never be printed: webhook URLs, tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the secret from `text` (error messages often echo
    /// the URL they failed on).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Fetches a secret on first use (e.g. from SSM or Secrets Manager), so a
/// secret-store outage delays a message but never blocks a remediation.
pub type SecretSource = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secret, String>> + Send>>
        + Send
        + Sync,
>;

/// A source that always yields `secret`.
pub fn fixed_source(secret: Secret) -> SecretSource {
    std::sync::Arc::new(move || {
        let s = secret.clone();
        Box::pin(async move { Ok(s) })
    })
}

/// A source of settings: `name -> value`. Empty values count as unset.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

/// Settings from fixed pairs: tests, and adapters that layer overrides.
pub fn from_pairs(pairs: &[(&str, &str)]) -> impl Lookup + use<> {
    let m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

impl ConfigError {
    /// The setting `name` with `value` cannot be used, because of `reason`. Pass
    /// `[redacted]` as the value of a secret.
    pub fn new(name: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); unset gives `default`.
pub fn flag(env: &impl Lookup, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(name, &v, "expected true or false")),
        },
    }
}

/// A whole number from 1 to `max`; unset gives `default`.
pub fn number(
    env: &impl Lookup,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(default);
    };
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ConfigError::new(name, &v, format!("expected a whole number from 1 to {max}"))
        })
}

/// A comma-separated list, each item read by `parse` (whose error becomes the
/// reason); empty when unset.
pub fn list<T, E: std::fmt::Display>(
    env: &impl Lookup,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| ConfigError::new(name, &v, e.to_string())))
        .collect()
}

/// `REFLEX_AZURE_SCOPES`: a comma-separated list of subscription or resource-group
/// ids (`/subscriptions/{guid}[/resourceGroups/{name}]`). Empty when unset.
pub fn azure_scopes(env: &impl Lookup) -> Result<Vec<crate::ids::AzureScope>, ConfigError> {
    list(env, "REFLEX_AZURE_SCOPES", crate::ids::AzureScope::parse)
}

/// A comma-separated CIDR list; unset gives `default`.
pub fn cidrs(
    env: &impl Lookup,
    name: &'static str,
    default: Vec<IpNet>,
) -> Result<Vec<IpNet>, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(default);
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                ConfigError::new(
                    name,
                    &v,
                    format!("'{item}' is not a CIDR such as 10.0.0.0/8"),
                )
            })
        })
        .collect()
}

/// A `key=value` tag; unset gives `default`.
pub fn tag(env: &impl Lookup, name: &'static str, default: Tag) -> Result<Tag, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(default);
    };
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() && !val.trim().is_empty() => Ok(Tag {
            key: k.trim().to_string(),
            value: val.trim().to_string(),
        }),
        _ => Err(ConfigError::new(
            name,
            &v,
            "expected key=value, e.g. reflex:exempt=true",
        )),
    }
}

/// A prefix length from 0 to `max`; unset gives `default`.
fn prefix_len(
    env: &impl Lookup,
    name: &'static str,
    default: u8,
    max: u8,
) -> Result<u8, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(default);
    };
    v.trim()
        .trim_start_matches('/')
        .parse::<u8>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            ConfigError::new(
                name,
                &v,
                format!("expected a prefix length from 0 to {max}, e.g. 8"),
            )
        })
}

impl ExposurePolicy {
    /// Reads `REFLEX_FORBIDDEN_PORTS`, `REFLEX_PUBLIC_CIDRS`, `REFLEX_ALLOWED_CIDRS`,
    /// `REFLEX_EXEMPT_TAG`, `REFLEX_REAUTHORIZE_REMAINDER` and
    /// `REFLEX_PUBLIC_MAX_PREFIX_V4` / `_V6`.
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let d = Self::default();
        let forbidden_ports = match env.get("REFLEX_FORBIDDEN_PORTS") {
            None => d.forbidden_ports,
            Some(v) => {
                PortSet::parse(&v).map_err(|r| ConfigError::new("REFLEX_FORBIDDEN_PORTS", &v, r))?
            }
        };
        Ok(Self {
            forbidden_ports,
            public_cidrs: cidrs(env, "REFLEX_PUBLIC_CIDRS", default_public_cidrs())?,
            allowed_cidrs: cidrs(env, "REFLEX_ALLOWED_CIDRS", Vec::new())?,
            exempt_tag: tag(env, "REFLEX_EXEMPT_TAG", d.exempt_tag)?,
            reauthorize_remainder: flag(env, "REFLEX_REAUTHORIZE_REMAINDER", false)?,
            public_max_prefix_v4: prefix_len(
                env,
                "REFLEX_PUBLIC_MAX_PREFIX_V4",
                d.public_max_prefix_v4,
                32,
            )?,
            public_max_prefix_v6: prefix_len(
                env,
                "REFLEX_PUBLIC_MAX_PREFIX_V6",
                d.public_max_prefix_v6,
                128,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::from_pairs as env;
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let p = ExposurePolicy::from_lookup(&env(&[]));
        assert_eq!(p, Ok(ExposurePolicy::default()));
    }

    #[test]
    fn every_policy_setting_is_read() {
        let p = ExposurePolicy::from_lookup(&env(&[
            ("REFLEX_FORBIDDEN_PORTS", "22,5432-5433"),
            ("REFLEX_ALLOWED_CIDRS", "203.0.113.0/24, 198.51.100.7/32"),
            ("REFLEX_EXEMPT_TAG", "team:owner=netops"),
            ("REFLEX_REAUTHORIZE_REMAINDER", "TRUE"),
            ("REFLEX_PUBLIC_MAX_PREFIX_V4", "/12"),
            ("REFLEX_PUBLIC_MAX_PREFIX_V6", "0"),
        ]));
        let Ok(p) = p else {
            panic!("settings should parse: {p:?}");
        };
        assert_eq!(p.forbidden_ports.to_string(), "22,5432-5433");
        assert_eq!(p.allowed_cidrs.len(), 2);
        assert_eq!(p.exempt_tag.to_string(), "team:owner=netops");
        assert!(p.reauthorize_remainder);
        assert_eq!((p.public_max_prefix_v4, p.public_max_prefix_v6), (12, 0));
    }

    #[test]
    fn bad_settings_name_the_variable_and_the_fix() {
        let e = ExposurePolicy::from_lookup(&env(&[("REFLEX_FORBIDDEN_PORTS", "22,ssh")]));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("REFLEX_FORBIDDEN_PORTS='22,ssh': 'ssh' is not a port or range (0-65535)".into())
        );
        let e = ExposurePolicy::from_lookup(&env(&[("REFLEX_EXEMPT_TAG", "exempt")]));
        assert!(e.is_err());
        let e = ExposurePolicy::from_lookup(&env(&[("REFLEX_ALLOWED_CIDRS", "10.0.0.0/33")]));
        assert!(e.is_err());
        let e = ExposurePolicy::from_lookup(&env(&[("REFLEX_PUBLIC_MAX_PREFIX_V4", "33")]));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err(
                "REFLEX_PUBLIC_MAX_PREFIX_V4='33': expected a prefix length from 0 to 32, e.g. 8"
                    .into()
            )
        );
        assert!(
            flag(
                &env(&[("REFLEX_DRY_RUN", "maybe")]),
                "REFLEX_DRY_RUN",
                false
            )
            .is_err()
        );
    }

    #[test]
    fn secrets_never_print_and_are_redacted_from_text() {
        let s = Secret::new("https://hooks.slack.com/services/T/B/xyz");
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        assert_eq!(
            s.redact("error sending to https://hooks.slack.com/services/T/B/xyz: timeout"),
            "error sending to [redacted]: timeout"
        );
    }
}
