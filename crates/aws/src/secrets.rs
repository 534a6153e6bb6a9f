//! Secrets by reference: an SSM SecureString parameter or a Secrets Manager secret.

use std::sync::Arc;

use reflex_core::settings::{Lookup, SecretSource, fixed_source};
use reflex_core::{CloudError, CloudErrorKind, ConfigError, Secret};

use crate::LazySdk;

use crate::errors::classify;

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An SSM parameter name (`/reflex/slack-webhook`) or parameter ARN.
    Ssm(String),
    /// A Secrets Manager secret ARN (or name, with the `secretsmanager:` prefix).
    SecretsManager(String),
}

impl SecretRef {
    /// `arn:…:secretsmanager:…` and `secretsmanager:NAME` name Secrets Manager;
    /// anything else is an SSM parameter name or ARN.
    pub fn parse(reference: &str) -> Self {
        let r = reference.trim();
        if let Some(name) = r.strip_prefix("secretsmanager:") {
            Self::SecretsManager(name.to_string())
        } else if r.starts_with("arn:") && r.contains(":secretsmanager:") {
            Self::SecretsManager(r.to_string())
        } else {
            Self::Ssm(r.to_string())
        }
    }
}

/// A secret setting: given as a value, or by reference to where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSetting {
    None,
    /// Given directly (an app setting, a Key Vault reference resolved by Azure).
    Value(Secret),
    /// An SSM parameter or Secrets Manager secret holding it.
    Reference(SecretRef),
}

impl SecretSetting {
    /// Reads `value_name` (checked by `check`, which must not echo the value), else
    /// `reference_name`.
    pub fn from_lookup(
        env: &impl Lookup,
        value_name: &'static str,
        reference_name: &'static str,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<Self, ConfigError> {
        match (env.get(value_name), env.get(reference_name)) {
            (Some(v), _) => match check(v.trim()) {
                Ok(()) => Ok(Self::Value(Secret::new(v.trim()))),
                Err(reason) => Err(ConfigError::new(value_name, "[redacted]", reason)),
            },
            (None, Some(r)) => Ok(Self::Reference(SecretRef::parse(&r))),
            (None, None) => Ok(Self::None),
        }
    }

    /// Where to get the secret on first use; `json_key` unwraps JSON secret values.
    pub fn source(&self, sdk: &LazySdk, json_key: &'static str) -> Option<SecretSource> {
        match self {
            Self::None => None,
            Self::Value(v) => Some(fixed_source(v.clone())),
            Self::Reference(reference) => {
                let sdk = sdk.clone();
                let reference = reference.clone();
                Some(Arc::new(move || {
                    let sdk = sdk.clone();
                    let reference = reference.clone();
                    Box::pin(async move {
                        fetch(sdk.get().await, &reference, json_key)
                            .await
                            .map_err(|e| e.to_string())
                    })
                }))
            }
        }
    }
}

/// A check for URL settings: `https://` (or `http://` for local stand-ins).
pub fn check_url(v: &str) -> Result<(), String> {
    if v.starts_with("https://") || v.starts_with("http://") {
        Ok(())
    } else {
        Err("expected an https:// URL".into())
    }
}

/// Fetches the secret's value. Secrets Manager values may be the bare string or a
/// JSON object holding it under `key` (e.g. `{"webhook_url": "https://…"}`).
pub async fn fetch(
    config: &aws_config::SdkConfig,
    reference: &SecretRef,
    key: &str,
) -> Result<Secret, CloudError> {
    let raw = match reference {
        SecretRef::Ssm(name) => aws_sdk_ssm::Client::new(config)
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| classify(&e))?
            .parameter
            .and_then(|p| p.value),
        SecretRef::SecretsManager(id) => {
            aws_sdk_secretsmanager::Client::new(config)
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| classify(&e))?
                .secret_string
        }
    };
    let raw = raw.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        CloudError::new(
            CloudErrorKind::Other,
            "EmptySecret",
            format!("{reference:?} holds no value"),
        )
    })?;
    Ok(Secret::new(unwrap_json(raw.trim(), key)))
}

fn unwrap_json(raw: &str, key: &str) -> String {
    if raw.starts_with('{')
        && let Ok(serde_json::Value::Object(m)) = serde_json::from_str(raw)
        && let Some(v) = m.get(key).or_else(|| m.get("url")).and_then(|v| v.as_str())
    {
        return v.to_string();
    }
    raw.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_pick_the_right_store() {
        assert_eq!(
            SecretRef::parse("/reflex/slack"),
            SecretRef::Ssm("/reflex/slack".into())
        );
        let ssm_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/reflex/slack";
        assert_eq!(SecretRef::parse(ssm_arn), SecretRef::Ssm(ssm_arn.into()));
        let sm = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf";
        assert_eq!(SecretRef::parse(sm), SecretRef::SecretsManager(sm.into()));
        assert_eq!(
            SecretRef::parse("secretsmanager:slack"),
            SecretRef::SecretsManager("slack".into())
        );
    }

    #[test]
    fn json_secret_values_are_unwrapped_by_key() {
        assert_eq!(
            unwrap_json(r#"{"webhook_url":"https://x"}"#, "webhook_url"),
            "https://x"
        );
        assert_eq!(
            unwrap_json(r#"{"url":"https://y"}"#, "webhook_url"),
            "https://y"
        );
        assert_eq!(unwrap_json("https://z", "webhook_url"), "https://z");
        assert_eq!(unwrap_json("{not json", "webhook_url"), "{not json");
    }
}
