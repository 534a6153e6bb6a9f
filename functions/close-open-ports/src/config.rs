//! Typed configuration, read once at cold start. See the README's table.

use reflex_core::settings::{Lookup, flag};
use reflex_core::{ConfigError, ExposurePolicy};
use reflex_notify::Reporting;

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub policy: ExposurePolicy,
    /// `REFLEX_DRY_RUN`: plan only, change nothing.
    pub dry_run: bool,
    /// Slack webhook and SNS topic.
    pub reporting: Reporting,
    /// `REFLEX_AZURE_SCOPES`: when set, NSGs outside these subscriptions or resource
    /// groups are left alone.
    pub azure_scopes: Vec<reflex_core::ids::AzureScope>,
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            policy: ExposurePolicy::from_lookup(env)?,
            dry_run: flag(env, "REFLEX_DRY_RUN", false)?,
            reporting: Reporting::from_lookup(env)?,
            azure_scopes: reflex_core::settings::azure_scopes(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::settings::from_pairs as env;

    use super::*;

    #[test]
    fn dry_run_defaults_off() {
        assert_eq!(Config::from_lookup(&env(&[])).map(|c| c.dry_run), Ok(false));
        assert_eq!(
            Config::from_lookup(&env(&[("REFLEX_DRY_RUN", "true")])).map(|c| c.dry_run),
            Ok(true)
        );
    }
}
