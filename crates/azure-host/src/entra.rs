//! Entra ID secure webhooks: action groups can send a bearer token issued to the
//! Azure Monitor app for the function's app registration. Reflex verifies it: an
//! RS256 signature from a key in the tenant's JWKS, the issuer, the audience, the
//! lifetime, and the app role (`ActionGroupsSecureWebhook` by default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use reflex_core::ConfigError;
use reflex_core::settings::Lookup;
use serde::Deserialize;
use tokio::sync::RwLock;

/// The app role Azure Monitor's token carries for secure webhooks.
pub const DEFAULT_ROLE: &str = "ActionGroupsSecureWebhook";
/// Entra's multi-tenant signing keys.
pub const DEFAULT_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
/// Clock skew allowed on `exp` / `nbf`.
const LEEWAY_SECS: u64 = 300;
/// An unknown `kid` refreshes the key set at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the token is missing, malformed, or fails a check.
    Denied(String),
    /// 503: the keys could not be fetched; a retry may succeed.
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

/// The verifier, configured once.
#[derive(Debug)]
pub struct EntraVerifier {
    audiences: Vec<String>,
    issuers: Vec<String>,
    role: String,
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<Keys>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    roles: Vec<String>,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl EntraVerifier {
    /// Enabled by `REFLEX_WEBHOOK_AAD_AUDIENCE` (the app registration's application id
    /// or identifier URI; comma-separated for several), which then needs
    /// `REFLEX_WEBHOOK_AAD_ISSUER` (e.g. `https://sts.windows.net/<tenant>/`,
    /// `https://login.microsoftonline.com/<tenant>/v2.0`). Optional:
    /// `REFLEX_WEBHOOK_AAD_ROLE`, `REFLEX_WEBHOOK_AAD_JWKS_URL`.
    pub fn from_lookup(env: &impl Lookup) -> Result<Option<Self>, ConfigError> {
        let Some(audience) = env.get("REFLEX_WEBHOOK_AAD_AUDIENCE") else {
            return Ok(None);
        };
        let issuers = env
            .get("REFLEX_WEBHOOK_AAD_ISSUER")
            .map(|i| list(&i))
            .unwrap_or_default();
        if issuers.is_empty() {
            return Err(ConfigError {
                name: "REFLEX_WEBHOOK_AAD_ISSUER",
                value: String::new(),
                reason: "required with REFLEX_WEBHOOK_AAD_AUDIENCE, e.g. https://sts.windows.net/<tenant id>/".into(),
            });
        }
        Ok(Some(Self {
            audiences: list(&audience),
            issuers,
            role: env
                .get("REFLEX_WEBHOOK_AAD_ROLE")
                .unwrap_or_else(|| DEFAULT_ROLE.into()),
            jwks_url: env
                .get("REFLEX_WEBHOOK_AAD_JWKS_URL")
                .unwrap_or_else(|| DEFAULT_JWKS_URL.into()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            keys: RwLock::default(),
        }))
    }

    /// Checks the `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let denied = |m: String| Refusal::Denied(m);
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| denied("missing bearer token (Entra ID secure webhook)".into()))?;
        let header =
            decode_header(token).map_err(|e| denied(format!("malformed bearer token: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(denied(format!(
                "bearer token algorithm {:?} is not RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| denied("bearer token has no key id (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&self.audiences);
        validation.set_issuer(&self.issuers);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| denied(format!("bearer token rejected: {e}")))?;
        if !data.claims.roles.iter().any(|r| r == &self.role) {
            return Err(denied(format!(
                "bearer token lacks the app role {}",
                self.role
            )));
        }
        Ok(())
    }

    /// The key for `kid`, fetching the key set when it is unknown (rate-limited).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        {
            let keys = self.keys.read().await;
            if let Some(k) = keys.by_kid.get(kid) {
                return Ok(k.clone());
            }
            if keys.fetched.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
                return Err(Refusal::Denied(format!("unknown signing key '{kid}'")));
            }
        }
        let mut keys = self.keys.write().await;
        keys.by_kid = self.fetch().await?;
        keys.fetched = Some(Instant::now());
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Refusal::Denied(format!("unknown signing key '{kid}'")))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, Refusal> {
        let unavailable =
            |e: String| Refusal::Unavailable(format!("cannot fetch the Entra signing keys: {e}"));
        let res = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(unavailable(format!("HTTP {}", res.status().as_u16())));
        }
        let jwks: Jwks = res
            .json()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        Ok(jwks
            .keys
            .into_iter()
            .filter(|k| k.kty.as_deref() == Some("RSA"))
            .filter_map(|k| {
                let key =
                    DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
                Some((k.kid?, key))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::settings::from_pairs as env;

    use super::*;

    #[test]
    fn entra_is_off_unless_an_audience_is_set() {
        assert!(matches!(EntraVerifier::from_lookup(&env(&[])), Ok(None)));
    }

    #[test]
    fn an_audience_without_an_issuer_is_a_configuration_error() {
        let e = EntraVerifier::from_lookup(&env(&[("REFLEX_WEBHOOK_AAD_AUDIENCE", "api://x")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("REFLEX_WEBHOOK_AAD_ISSUER='': required"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_missing_or_foreign_algorithm_token_is_denied_without_fetching_keys() {
        let v = EntraVerifier::from_lookup(&env(&[
            ("REFLEX_WEBHOOK_AAD_AUDIENCE", "api://x"),
            ("REFLEX_WEBHOOK_AAD_ISSUER", "https://sts.windows.net/t/"),
            ("REFLEX_WEBHOOK_AAD_JWKS_URL", "http://127.0.0.1:9/never"),
        ]))
        .ok()
        .flatten();
        let Some(v) = v else {
            panic!("the verifier should be configured");
        };
        assert!(matches!(v.verify(None).await, Err(Refusal::Denied(_))));
        // HS256 (a shared-secret algorithm) must never be accepted.
        let hs = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let r = v.verify(Some(&format!("Bearer {hs}"))).await;
        assert!(
            matches!(&r, Err(Refusal::Denied(m)) if m.contains("is not RS256")),
            "{r:?}"
        );
    }
}
