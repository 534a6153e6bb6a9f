//! Typed configuration, read once at cold start. See the README's table.

use std::time::Duration;

use reflex_core::ids::{AzureScope, ResourceId};
use reflex_core::maintenance::DrainPolicy;
use reflex_core::settings::{Lookup, flag, number, tag};
use reflex_core::store::StoreSetting;
use reflex_core::{ConfigError, Tag};
use reflex_notify::Reporting;

/// The function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `REFLEX_DRY_RUN`: plan only, change nothing.
    pub dry_run: bool,
    /// `REFLEX_DRAIN_POLICY`: what to do, and when, per kind of event.
    pub policy: DrainPolicy,
    /// `REFLEX_DRAIN_TAG` (default `reflex:drain=true`): only nodes carrying it are
    /// drained; others are ignored without error.
    pub opt_in: Tag,
    /// `REFLEX_EXEMPT_TAG` (default `reflex:exempt=true`): wins over the opt-in.
    pub exempt: Tag,
    /// `REFLEX_DRAIN_MAX_CONCURRENT` (default 1): drains at once per group (Auto
    /// Scaling group, else target group, else backend pool).
    pub max_concurrent: u32,
    /// `REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL` (default: no such cap): drains at once in
    /// the whole deployment's account or subscription, whatever their group (three
    /// per-AZ Auto Scaling groups then cannot drain three nodes at once).
    pub max_global: Option<u32>,
    /// `REFLEX_DRAIN_LEASE_SECS` (default 3600): how long a drain slot is held if the
    /// node is never recovered.
    pub lease: Duration,
    /// `REFLEX_DRAIN_POLL_SECS` (default 5): how often a wait re-reads the cloud.
    pub poll: Duration,
    /// `REFLEX_AZURE_LB_POOLS`: backend pool ids to set `adminState` in.
    pub azure_pools: Vec<String>,
    /// `REFLEX_AZURE_VM_SCOPE`: `/subscriptions/…/resourceGroups/…`, to turn a VM name
    /// (agent, log alert) into its resource id.
    pub azure_vm_scope: Option<AzureScope>,
    /// `REFLEX_AZURE_SCOPES`: when set, VMs outside these subscriptions or resource
    /// groups are left alone.
    pub azure_scopes: Vec<AzureScope>,
    /// `REFLEX_DRAIN_ACK_WHEN_NOTHING` (default false): acknowledge an Azure
    /// maintenance of an opted-in VM that is in no pool or cluster.
    pub ack_when_nothing: bool,
    pub store: StoreSetting,
    pub reporting: Reporting,
}

/// A comma-separated list of ARM resource ids, each checked by its grammar.
fn ids(env: &impl Lookup, name: &'static str) -> Result<Vec<String>, ConfigError> {
    reflex_core::settings::list(env, name, |id| ResourceId::parse(id).map(|r| r.to_string()))
}

fn scope(env: &impl Lookup, name: &'static str) -> Result<Option<AzureScope>, ConfigError> {
    env.get(name)
        .map(|v| AzureScope::parse(&v).map_err(|e| ConfigError::new(name, &v, e.to_string())))
        .transpose()
}

impl Config {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let default_tag = |key: &str| Tag {
            key: key.into(),
            value: "true".into(),
        };
        Ok(Self {
            dry_run: flag(env, "REFLEX_DRY_RUN", false)?,
            policy: DrainPolicy::from_lookup(env)?,
            opt_in: tag(env, "REFLEX_DRAIN_TAG", default_tag("reflex:drain"))?,
            exempt: tag(env, "REFLEX_EXEMPT_TAG", default_tag("reflex:exempt"))?,
            max_concurrent: u32::try_from(number(env, "REFLEX_DRAIN_MAX_CONCURRENT", 1, 1000)?)
                .unwrap_or(1),
            // Unset or empty (a template's "no cap"): no account-wide cap.
            max_global: match env.get("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL") {
                Some(v) if !v.trim().is_empty() => Some(
                    u32::try_from(number(env, "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", 1, 1000)?)
                        .unwrap_or(1),
                ),
                _ => None,
            },
            lease: Duration::from_secs(number(env, "REFLEX_DRAIN_LEASE_SECS", 3600, 7 * 86_400)?),
            poll: Duration::from_secs(number(env, "REFLEX_DRAIN_POLL_SECS", 5, 300)?),
            azure_pools: ids(env, "REFLEX_AZURE_LB_POOLS")?,
            azure_vm_scope: scope(env, "REFLEX_AZURE_VM_SCOPE")?,
            azure_scopes: reflex_core::settings::azure_scopes(env)?,
            ack_when_nothing: flag(env, "REFLEX_DRAIN_ACK_WHEN_NOTHING", false)?,
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
    fn defaults_are_safe() {
        let c = Config::from_lookup(&env(&[]));
        let Ok(c) = c else { panic!("{c:?}") };
        assert!(!c.dry_run);
        assert_eq!(c.opt_in.to_string(), "reflex:drain=true");
        assert_eq!(c.max_concurrent, 1);
        assert_eq!(c.max_global, None);
        let empty = Config::from_lookup(&env(&[("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "")]));
        assert_eq!(
            empty.map(|c| c.max_global).ok(),
            Some(None),
            "empty is unset"
        );
        let two = Config::from_lookup(&env(&[("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "2")]));
        assert_eq!(two.map(|c| c.max_global).ok(), Some(Some(2)));
        assert_eq!(c.store, StoreSetting::Memory);
    }

    #[test]
    fn mistakes_name_the_setting() {
        for (name, value, says) in [
            ("REFLEX_DRAIN_MAX_CONCURRENT", "0", "from 1 to 1000"),
            ("REFLEX_DRAIN_MAX_CONCURRENT", "many", "from 1 to 1000"),
            ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "0", "from 1 to 1000"),
            ("REFLEX_DRAIN_TAG", "drain", "key=value"),
            ("REFLEX_AZURE_LB_POOLS", "pool-1", "not an ARM resource id"),
            (
                "REFLEX_AZURE_VM_SCOPE",
                "/subscriptions/x/resourceGroups/rg",
                "not a GUID",
            ),
            (
                "REFLEX_AZURE_SCOPES",
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/a b",
                "holds",
            ),
            ("REFLEX_DRAIN_POLICY", "spot=now", "not a kind"),
        ] {
            let e = Config::from_lookup(&env(&[(name, value)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.starts_with(name) && e.contains(says), "{name}: {e}");
        }
    }
}
