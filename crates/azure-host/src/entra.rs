//! Entra ID secure webhooks: action groups can send a bearer token issued to the
//! Azure Monitor app for the function's app registration. Reflex verifies it: an
//! RS256 signature from a key in the tenant's JWKS, the issuer, the audience, the
//! lifetime (`exp` and `nbf`), and the app role (`ActionGroupsSecureWebhook` by
//! default).
//!
//! The signing keys are cached. They are fetched again when a token names an unknown
//! `kid`, and at least daily anyway, so a key Entra has withdrawn stops being
//! trusted. A fetch runs outside the lock on the keys (single-flight: one fetch at a
//! time, and tokens whose key is known never wait for it), and fetches, failed or not,
//! are at most once a minute, so a flood of tokens cannot turn into a flood of
//! requests to Entra.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use reflex_core::ConfigError;
use reflex_core::settings::Lookup;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// The app role Azure Monitor's token carries for secure webhooks.
pub const DEFAULT_ROLE: &str = "ActionGroupsSecureWebhook";
/// Entra's multi-tenant signing keys.
pub const DEFAULT_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
/// Clock skew allowed on `exp` / `nbf`.
const LEEWAY_SECS: u64 = 300;
/// Key fetches, successful or failed, are at most this often.
const FETCH_EVERY: Duration = Duration::from_secs(60);
/// Keys older than this are fetched again even when the `kid` is known.
const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the token is missing, malformed, or fails a check.
    Denied(String),
    /// 503: the keys could not be fetched; a retry may succeed.
    Unavailable(String),
}

/// The cached key set.
#[derive(Debug, Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// When `by_kid` was fetched (`None`: never).
    fetched: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried: Option<Instant>,
    /// Why the last fetch failed, while it stands.
    failure: Option<String>,
}

/// What to do for a `kid`, given the cache.
enum Decision {
    Use(DecodingKey),
    /// Fetch the keys; `stale` is the known (old) key to fall back on.
    Fetch {
        stale: Option<DecodingKey>,
    },
    Refuse(Refusal),
}

impl Keys {
    fn decide(&self, kid: &str, now: Instant) -> Decision {
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let known = self.by_kid.get(kid);
        let fresh = since(self.fetched).is_some_and(|age| age < MAX_KEY_AGE);
        let wait = since(self.tried).and_then(|ago| FETCH_EVERY.checked_sub(ago));
        let wait = wait.filter(|w| !w.is_zero());
        match (known, fresh, wait) {
            (Some(k), true, _) => Decision::Use(k.clone()),
            // Old, but a fetch was just tried (and failed): Entra being down must
            // not take secure webhooks down with it.
            (Some(k), false, Some(_)) => Decision::Use(k.clone()),
            (known, _, None) => Decision::Fetch {
                stale: known.cloned(),
            },
            (None, _, Some(wait)) => Decision::Refuse(match &self.failure {
                Some(why) => {
                    Refusal::Unavailable(format!("{why} (next try in {}s)", wait.as_secs().max(1)))
                }
                None => Refusal::Denied(format!("unknown signing key '{kid}'")),
            }),
        }
    }
}

/// Monotonic time, injectable so tests can move a day on without sleeping.
#[derive(Clone)]
struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self(Arc::new(Instant::now))
    }
}

/// The verifier, configured once.
pub struct EntraVerifier {
    audiences: Vec<String>,
    issuers: Vec<String>,
    role: String,
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// Held for the duration of a fetch (not `keys`): one fetch at a time.
    fetching: Mutex<()>,
    clock: Clock,
}

impl std::fmt::Debug for EntraVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraVerifier")
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("role", &self.role)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
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
            fetching: Mutex::new(()),
            clock: Clock::default(),
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
        // jsonwebtoken leaves `nbf` unchecked unless asked.
        validation.validate_nbf = true;
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

    /// The key for `kid`, fetching the key set when `kid` is unknown or the set is a
    /// day old (see the module's notes).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let stale = match self.keys.read().await.decide(kid, self.clock.now()) {
            Decision::Use(k) => return Ok(k),
            Decision::Refuse(r) => return Err(r),
            Decision::Fetch { stale } => stale,
        };
        let _fetching = match stale {
            // A known key does not wait for someone else's refresh.
            Some(k) => match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(k),
            },
            None => self.fetching.lock().await,
        };
        // Someone else may have fetched while this task waited its turn.
        if let Some(done) = self.decided(kid).await {
            return done;
        }
        let fetched = self.fetch().await;
        let now = self.clock.now();
        let mut keys = self.keys.write().await;
        keys.tried = Some(now);
        match fetched {
            Ok(by_kid) => {
                keys.by_kid = by_kid;
                keys.fetched = Some(now);
                keys.failure = None;
            }
            Err(Refusal::Unavailable(why) | Refusal::Denied(why)) => {
                tracing::warn!(error = %why, "Entra signing keys not refreshed");
                keys.failure = Some(why);
            }
        }
        match keys.decide(kid, now) {
            Decision::Use(k) => Ok(k),
            Decision::Refuse(r) => Err(r),
            // Not reached (a fetch was just tried); refuse rather than loop.
            Decision::Fetch { .. } => Err(Refusal::Unavailable(
                "cannot fetch the Entra signing keys".into(),
            )),
        }
    }

    /// The answer for `kid` without fetching, if the cache has one now.
    async fn decided(&self, kid: &str) -> Option<Result<DecodingKey, Refusal>> {
        match self.keys.read().await.decide(kid, self.clock.now()) {
            Decision::Use(k) => Some(Ok(k)),
            Decision::Refuse(r) => Some(Err(r)),
            Decision::Fetch { .. } => None,
        }
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
        let text = reflex_runtime::http::text_capped(res, reflex_runtime::http::MAX_BODY).await;
        let jwks: Jwks =
            serde_json::from_str(&text).map_err(|e| unavailable(format!("not a key set: {e}")))?;
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
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use reflex_core::settings::from_pairs as env;
    use serde_json::{Value, json};
    use tokio::sync::Semaphore;

    use super::*;

    const KID: &str = "reflex-test-key";
    const AUDIENCE: &str = "api://reflex";
    const ISSUER: &str = "https://sts.windows.net/t/";

    /// A JWKS endpoint that counts its requests, and can fail or hold them.
    struct Jwks {
        fetches: AtomicU32,
        failing: AtomicBool,
        holding: AtomicBool,
        release: Semaphore,
    }

    async fn serve_keys(State(s): State<Arc<Jwks>>) -> Response {
        s.fetches.fetch_add(1, Ordering::SeqCst);
        if s.holding.load(Ordering::SeqCst) {
            let _ = s.release.acquire().await;
        }
        if s.failing.load(Ordering::SeqCst) {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        (
            [("content-type", "application/json")],
            include_str!("../../testkit/keys/test-jwks.json"),
        )
            .into_response()
    }

    /// A verifier on a local JWKS server, with a clock the test moves (seconds).
    async fn verifier() -> (Arc<EntraVerifier>, Arc<Jwks>, Arc<AtomicU64>) {
        let jwks = Arc::new(Jwks {
            fetches: AtomicU32::new(0),
            failing: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            release: Semaphore::new(0),
        });
        let app = axum::Router::new()
            .route("/keys", axum::routing::get(serve_keys))
            .with_state(Arc::clone(&jwks));
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("no loopback port");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("no local address");
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}/keys");
        let Ok(Some(mut v)) = EntraVerifier::from_lookup(&env(&[
            ("REFLEX_WEBHOOK_AAD_AUDIENCE", AUDIENCE),
            ("REFLEX_WEBHOOK_AAD_ISSUER", ISSUER),
            ("REFLEX_WEBHOOK_AAD_JWKS_URL", &url),
        ])) else {
            panic!("the verifier should be configured");
        };
        let offset = Arc::new(AtomicU64::new(0));
        let (start, moved) = (Instant::now(), Arc::clone(&offset));
        v.clock = Clock(Arc::new(move || {
            start + Duration::from_secs(moved.load(Ordering::SeqCst))
        }));
        (Arc::new(v), jwks, offset)
    }

    fn epoch_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// `Bearer …` signed by the test key, under `kid`, with `claims` over valid ones.
    fn bearer(kid: &str, claims: &Value) -> String {
        let now = epoch_now();
        let mut all = json!({
            "aud": AUDIENCE, "iss": ISSUER, "nbf": now - 60, "exp": now + 3600,
            "roles": [DEFAULT_ROLE],
        });
        if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            all.extend(extra.clone());
        }
        let Ok(key) = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
            "../../testkit/keys/test-signing-key.pem"
        )) else {
            panic!("the test signing key parses");
        };
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let Ok(token) = jsonwebtoken::encode(&header, &all, &key) else {
            panic!("the test token signs");
        };
        format!("Bearer {token}")
    }

    fn valid() -> String {
        bearer(KID, &json!({}))
    }

    const DAY: u64 = 24 * 3600;

    #[tokio::test]
    async fn a_token_that_is_not_yet_valid_is_denied() {
        let (v, _, _) = verifier().await;
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        let later = bearer(KID, &json!({"nbf": epoch_now() + 3600}));
        let r = v.verify(Some(&later)).await;
        assert!(
            matches!(&r, Err(Refusal::Denied(m)) if m.contains("ImmatureSignature")),
            "{r:?}"
        );
        // Within the allowed clock skew it is fine.
        let skewed = bearer(KID, &json!({"nbf": epoch_now() + 60}));
        assert_eq!(v.verify(Some(&skewed)).await, Ok(()));
    }

    #[tokio::test]
    async fn signing_keys_are_refreshed_daily_even_when_the_kid_is_known() {
        let (v, jwks, clock) = verifier().await;
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        clock.store(DAY - 1, Ordering::SeqCst);
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
        clock.store(DAY + 1, Ordering::SeqCst);
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_key_fetch_is_retried_at_most_once_a_minute() {
        let (v, jwks, clock) = verifier().await;
        jwks.failing.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            let r = v.verify(Some(&valid())).await;
            assert!(
                matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("HTTP 500")),
                "{r:?}"
            );
        }
        clock.store(59, Ordering::SeqCst);
        let r = v.verify(Some(&valid())).await;
        assert!(
            matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("next try in 1s")),
            "{r:?}"
        );
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
        jwks.failing.store(false, Ordering::SeqCst);
        clock.store(60, Ordering::SeqCst);
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_daily_refresh_keeps_the_known_keys_in_use() {
        let (v, jwks, clock) = verifier().await;
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        jwks.failing.store(true, Ordering::SeqCst);
        clock.store(DAY + 1, Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        }
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
        clock.store(DAY + 61, Ordering::SeqCst);
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_keys_at_most_once_a_minute() {
        let (v, jwks, clock) = verifier().await;
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        let rotated = bearer("rotated-key", &json!({}));
        for _ in 0..3 {
            let r = v.verify(Some(&rotated)).await;
            assert!(
                matches!(&r, Err(Refusal::Denied(m)) if m.contains("unknown signing key 'rotated-key'")),
                "{r:?}"
            );
        }
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
        clock.store(61, Ordering::SeqCst);
        assert!(v.verify(Some(&rotated)).await.is_err());
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_key_fetch_in_flight_holds_up_no_token_whose_key_is_known() {
        let (v, jwks, clock) = verifier().await;
        assert_eq!(v.verify(Some(&valid())).await, Ok(()));
        // The daily refresh starts, and the JWKS server does not answer yet.
        jwks.holding.store(true, Ordering::SeqCst);
        clock.store(DAY + 1, Ordering::SeqCst);
        let refresh = tokio::spawn({
            let v = Arc::clone(&v);
            async move { v.verify(Some(&valid())).await }
        });
        for _ in 0..500 {
            if jwks.fetches.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
        // A token with a known key is checked while that fetch is pending.
        let quick = tokio::time::timeout(Duration::from_secs(5), v.verify(Some(&valid()))).await;
        assert_eq!(quick, Ok(Ok(())));
        // An unknown kid waits for the fetch in flight instead of starting another.
        let unknown = tokio::spawn({
            let v = Arc::clone(&v);
            async move { v.verify(Some(&bearer("rotated-key", &json!({})))).await }
        });
        jwks.release.add_permits(2);
        let refreshed = refresh.await.ok();
        assert_eq!(refreshed, Some(Ok(())));
        let unknown = unknown.await.ok();
        assert!(
            matches!(&unknown, Some(Err(Refusal::Denied(m))) if m.contains("unknown signing key")),
            "{unknown:?}"
        );
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    }

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
