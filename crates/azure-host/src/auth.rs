//! Webhook authentication that Reflex checks itself, on top of the function key the
//! Functions host checks (`authLevel: function`): an optional shared token, and
//! optional Entra ID secure-webhook bearer tokens. Both, when configured, must pass.

use axum::http::HeaderMap;
use reflex_core::settings::Lookup;
use reflex_core::{ConfigError, Secret};

use crate::entra::{EntraVerifier, Refusal};

/// The header that may carry the shared token.
pub const TOKEN_HEADER: &str = "x-reflex-token";
/// The query parameter that may carry it (action groups can only set the URL).
pub const TOKEN_PARAM: &str = "token";

/// What a request must carry.
#[derive(Debug, Default)]
pub struct Auth {
    /// `REFLEX_WEBHOOK_TOKEN`: a shared secret in the `X-Reflex-Token` header or the
    /// `token` query parameter.
    pub token: Option<Secret>,
    /// `REFLEX_WEBHOOK_AAD_*`: Entra ID secure webhooks.
    pub entra: Option<EntraVerifier>,
}

impl Auth {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            token: env.get("REFLEX_WEBHOOK_TOKEN").map(Secret::new),
            entra: EntraVerifier::from_lookup(env)?,
        })
    }

    /// Runs every configured check: `Denied` is a 401, `Unavailable` a 503.
    pub async fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
        self.check_token(headers, query)
            .map_err(|why| Refusal::Denied(why.to_string()))?;
        if let Some(entra) = &self.entra {
            let header = headers.get("authorization").and_then(|v| v.to_str().ok());
            entra.verify(header).await?;
        }
        Ok(())
    }

    /// The shared-token check alone.
    pub fn check_token(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), &'static str> {
        let Some(want) = &self.token else {
            return Ok(());
        };
        let from_header = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from_query = query.and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == TOKEN_PARAM)
                .map(|(_, v)| percent_decode(v))
        });
        match from_header.or(from_query) {
            None => Err("missing webhook token (X-Reflex-Token header or token query parameter)"),
            Some(got) if constant_time_eq(got.as_bytes(), want.expose().as_bytes()) => Ok(()),
            Some(_) => Err("wrong webhook token"),
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of
/// the token matched. (The length is not secret.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: &str) -> Auth {
        Auth {
            token: Some(Secret::new(token)),
            entra: None,
        }
    }

    #[test]
    fn the_auth_debug_never_shows_the_webhook_token() {
        let shown = format!("{:?}", auth("S3CR3TS3CR3T"));
        assert!(!shown.contains("S3CR3T"), "{shown}");
    }

    #[test]
    fn no_token_configured_lets_everything_through() {
        assert_eq!(Auth::default().check_token(&HeaderMap::new(), None), Ok(()));
    }

    #[test]
    fn the_token_is_accepted_from_the_header_or_the_query() {
        let a = auth("s3cret/+x");
        let mut h = HeaderMap::new();
        h.insert(
            TOKEN_HEADER,
            axum::http::HeaderValue::from_static("s3cret/+x"),
        );
        assert_eq!(a.check_token(&h, None), Ok(()));
        assert_eq!(
            a.check_token(&HeaderMap::new(), Some("a=1&token=s3cret%2F%2Bx")),
            Ok(())
        );
    }

    #[test]
    fn a_missing_or_wrong_token_is_refused() {
        let a = auth("s3cret");
        assert!(a.check_token(&HeaderMap::new(), None).is_err());
        assert_eq!(
            a.check_token(&HeaderMap::new(), Some("token=s3creT")),
            Err("wrong webhook token")
        );
        assert_eq!(
            a.check_token(&HeaderMap::new(), Some("token=s3cret-longer")),
            Err("wrong webhook token")
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
