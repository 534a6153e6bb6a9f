//! A small ARM client: bearer tokens from the managed identity (cached until they
//! expire), the shared retrier for 429/5xx (honouring `Retry-After`), and
//! long-running operations followed through `Azure-AsyncOperation` / `Location`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reflex_core::ids::ResourceId;
use reflex_core::settings::Lookup;
use reflex_core::{CloudError, CloudErrorKind, ConfigError, Secret};
use reflex_runtime::retry::{Attempt, RetryPolicy, parse_retry_after, retry};
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::Mutex;

/// ARM's public endpoint.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// The managed-identity API version Azure Functions / App Service serve.
const IDENTITY_API_VERSION: &str = "2019-08-01";
/// Per-request cap; the invocation deadline usually bounds it sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Where bearer tokens come from.
#[derive(Debug)]
enum Credential {
    /// `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (Azure Functions, App Service).
    ManagedIdentity {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    /// `REFLEX_ARM_TOKEN`: a bearer token for local runs
    /// (`az account get-access-token --query accessToken -o tsv`).
    Static(Secret),
    /// Nothing configured: every call fails with a message saying what to set.
    Missing,
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    renew_at: Instant,
}

/// A response ARM gave: status, headers and the parsed JSON body (`Null` if none).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The ARM client.
#[derive(Debug)]
pub struct ArmClient {
    http: reqwest::Client,
    /// The configured ARM endpoint: the only origin the bearer token is sent to.
    base: Url,
    credential: Credential,
    token: Mutex<Option<Token>>,
    policy: RetryPolicy,
    /// Used when a long-running operation gives no `Retry-After`.
    poll_interval: Duration,
}

impl ArmClient {
    /// Reads `REFLEX_ARM_ENDPOINT`, `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` (plus
    /// `REFLEX_AZURE_CLIENT_ID` for a user-assigned identity) or `REFLEX_ARM_TOKEN`.
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let raw = env
            .get("REFLEX_ARM_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ARM_ENDPOINT.to_string());
        let base = Url::parse(raw.trim())
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
            .ok_or_else(|| {
                ConfigError::new(
                    "REFLEX_ARM_ENDPOINT",
                    &raw,
                    "expected an http(s) URL with no user, query or fragment, e.g. https://management.azure.com",
                )
            })?;
        let credential = match (
            env.get("IDENTITY_ENDPOINT"),
            env.get("IDENTITY_HEADER"),
            env.get("REFLEX_ARM_TOKEN"),
        ) {
            (Some(endpoint), Some(header), _) => Credential::ManagedIdentity {
                endpoint,
                header: Secret::new(header),
                client_id: env.get("REFLEX_AZURE_CLIENT_ID"),
            },
            (_, _, Some(token)) => Credential::Static(Secret::new(token)),
            _ => Credential::Missing,
        };
        Ok(Self {
            http: reqwest::Client::builder()
                .user_agent(concat!("reflex/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            base,
            credential,
            token: Mutex::new(None),
            policy: RetryPolicy::default(),
            poll_interval: Duration::from_secs(2),
        })
    }

    /// Overrides the retry and polling settings (tests use short waits).
    pub fn with_timing(mut self, policy: RetryPolicy, poll_interval: Duration) -> Self {
        self.policy = policy;
        self.poll_interval = poll_interval;
        self
    }

    /// The base URL, e.g. `https://management.azure.com`.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of `id` (plus `action`, e.g. `acknowledge`), built segment by segment
    /// so that nothing in an id can change the host, the query or the fragment.
    pub fn url(&self, id: &ResourceId, action: Option<&str>, api_version: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(id.segments()).extend(action);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", api_version);
        url
    }

    /// Refuses any URL whose origin is not the configured ARM endpoint's: the token
    /// is for ARM only, including the operation URLs ARM itself hands back.
    fn check_origin(&self, url: &Url) -> Result<(), CloudError> {
        if url.origin() == self.base.origin() {
            Ok(())
        } else {
            Err(CloudError::new(
                CloudErrorKind::Denied,
                "ForeignOrigin",
                format!(
                    "refused to send the ARM token to {} (only {} is trusted)",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            ))
        }
    }

    async fn token(&self, deadline: Instant) -> Result<Secret, CloudError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let fresh = match &self.credential {
            Credential::Static(s) => Token {
                value: s.clone(),
                renew_at: Instant::now() + Duration::from_secs(3600),
            },
            Credential::ManagedIdentity {
                endpoint,
                header,
                client_id,
            } => {
                self.identity_token(endpoint, header, client_id.as_deref(), deadline)
                    .await?
            }
            Credential::Missing => {
                return Err(CloudError::new(
                    CloudErrorKind::Denied,
                    "NoCredential",
                    "no Azure credential: run with a managed identity (IDENTITY_ENDPOINT and \
                     IDENTITY_HEADER) or set REFLEX_ARM_TOKEN",
                ));
            }
        };
        *cached = Some(fresh.clone());
        Ok(fresh.value)
    }

    async fn identity_token(
        &self,
        endpoint: &str,
        header: &Secret,
        client_id: Option<&str>,
        deadline: Instant,
    ) -> Result<Token, CloudError> {
        let resource = format!("{}/", self.base_resource());
        let mut query = vec![
            ("resource", resource.as_str()),
            ("api-version", IDENTITY_API_VERSION),
        ];
        if let Some(id) = client_id {
            query.push(("client_id", id));
        }
        let r = self
            .send(deadline, || {
                self.http
                    .get(endpoint)
                    .query(&query)
                    .header("X-IDENTITY-HEADER", header.expose())
            })
            .await
            .map_err(|e| CloudError::new(e.kind, "ManagedIdentity", header.redact(&e.message)))?;
        if !(200..300).contains(&r.status) {
            return Err(status_error(&r, "managed identity token request"));
        }
        let value = r
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CloudError::new(
                    CloudErrorKind::Other,
                    "ManagedIdentity",
                    "token response has no access_token",
                )
            })?;
        // `expires_on` is epoch seconds, sent as a string (sometimes a number).
        let expires_on = match r.body.get("expires_on") {
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let lifetime = expires_on.map_or(Duration::from_secs(600), |e| {
            Duration::from_secs(e.saturating_sub(now))
        });
        Ok(Token {
            value: Secret::new(value),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        })
    }

    /// The token audience: the public ARM resource, whatever endpoint tests use.
    fn base_resource(&self) -> &'static str {
        DEFAULT_ARM_ENDPOINT
    }

    /// Sends a request built by `build`, retrying 429 (after `Retry-After`), 5xx and
    /// connection failures until `deadline`. Any other status is returned as is.
    async fn send<F>(&self, deadline: Instant, build: F) -> Result<Response, CloudError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let attempt = |left: Duration| {
            let req = build().timeout(left.min(REQUEST_TIMEOUT));
            let policy = self.policy;
            async move {
                let res = match req.send().await {
                    Ok(r) => r,
                    Err(e) => return Attempt::Transient(e.without_url().to_string()),
                };
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                let text =
                    reflex_runtime::http::text_capped(res, reflex_runtime::http::MAX_BODY).await;
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                let r = Response {
                    status,
                    headers,
                    body,
                };
                match status {
                    429 => Attempt::RateLimited(
                        retry_after(&r.headers).unwrap_or(policy.default_retry_after),
                    ),
                    500..=599 => Attempt::Transient(error_text(&r)),
                    _ => Attempt::Delivered(r),
                }
            }
        };
        retry(self.policy, deadline, attempt)
            .await
            .map(|(r, _)| r)
            .map_err(|g| {
                let kind = if g.error.starts_with("rate limited") {
                    CloudErrorKind::Throttled
                } else {
                    CloudErrorKind::Transient
                };
                CloudError::new(kind, "ArmUnavailable", g.error)
            })
    }

    /// An authorised ARM request to `url` (which carries its own `api-version`).
    async fn call(
        &self,
        method: reqwest::Method,
        url: &Url,
        deadline: Instant,
    ) -> Result<Response, CloudError> {
        self.call_with(method, url, None, None, deadline).await
    }

    /// [`Self::call`] with a JSON body, and `If-Match` when `if_match` is set.
    async fn call_with(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        deadline: Instant,
    ) -> Result<Response, CloudError> {
        self.check_origin(url)?;
        let token = self.token(deadline).await?;
        self.send(deadline, || {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(tag) = if_match {
                req = req.header(reqwest::header::IF_MATCH, tag);
            }
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        })
        .await
    }

    /// GETs a resource; `None` when ARM says 404.
    pub async fn get(
        &self,
        id: &ResourceId,
        api_version: &str,
        deadline: Instant,
    ) -> Result<Option<Value>, CloudError> {
        let r = self
            .call(
                reqwest::Method::GET,
                &self.url(id, None, api_version),
                deadline,
            )
            .await?;
        match r.status {
            200..=299 => Ok(Some(r.body)),
            404 => Ok(None),
            _ => Err(status_error(&r, "GET")),
        }
    }

    /// PUTs (creates or replaces) a resource and follows a long-running operation to
    /// the end. With `if_match` (the ETag the resource was read with), ARM refuses
    /// with 412 `PreconditionFailed` when someone changed it since:
    /// [`CloudError::code`] is then [`PRECONDITION_FAILED`].
    pub async fn put(
        &self,
        id: &ResourceId,
        api_version: &str,
        body: &Value,
        if_match: Option<&str>,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let r = self
            .call_with(
                reqwest::Method::PUT,
                &self.url(id, None, api_version),
                Some(body),
                if_match,
                deadline,
            )
            .await?;
        if r.status == 412 {
            return Err(CloudError::new(
                CloudErrorKind::Transient,
                PRECONDITION_FAILED,
                "PUT: the resource changed since it was read (ETag)",
            ));
        }
        match r.status {
            200..=299 => self.follow(&r, deadline).await,
            _ => Err(status_error(&r, "PUT")),
        }
    }

    /// POSTs `action` (e.g. `acknowledge`) on `id` with no body and returns its answer.
    pub async fn post(
        &self,
        id: &ResourceId,
        action: &str,
        api_version: &str,
        deadline: Instant,
    ) -> Result<Value, CloudError> {
        let r = self
            .call(
                reqwest::Method::POST,
                &self.url(id, Some(action), api_version),
                deadline,
            )
            .await?;
        match r.status {
            200..=299 => Ok(r.body),
            _ => Err(status_error(&r, "POST")),
        }
    }

    /// DELETEs a resource and follows a 202 to the end. A resource that is not
    /// there (204, or 404) is `NotFound`.
    pub async fn delete(
        &self,
        id: &ResourceId,
        api_version: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let r = self
            .call(
                reqwest::Method::DELETE,
                &self.url(id, None, api_version),
                deadline,
            )
            .await?;
        match r.status {
            200 => Ok(()),
            202 => self.follow(&r, deadline).await,
            204 | 404 => Err(CloudError::new(
                CloudErrorKind::NotFound,
                "NotFound",
                format!("{id} does not exist"),
            )),
            _ => Err(status_error(&r, "DELETE")),
        }
    }

    /// Polls a long-running operation: `Azure-AsyncOperation` (a status document)
    /// or else `Location` (202 until done), waiting `Retry-After` between polls.
    async fn follow(&self, accepted: &Response, deadline: Instant) -> Result<(), CloudError> {
        let header = |name: &str| {
            accepted
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (raw, is_status_doc) = match (header("azure-asyncoperation"), header("location")) {
            (Some(u), _) => (u, true),
            (None, Some(u)) => (u, false),
            (None, None) => return Ok(()),
        };
        // Relative references resolve against the endpoint; any other origin is
        // refused before the token is attached (in `call`).
        let url = self.base.join(raw.trim()).map_err(|_| {
            CloudError::new(
                CloudErrorKind::Other,
                "UnexpectedResponse",
                "the operation URL ARM returned is not a URL",
            )
        })?;
        self.check_origin(&url)?;
        let mut wait = retry_after(&accepted.headers).unwrap_or(self.poll_interval);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if wait >= left {
                return Err(CloudError::new(
                    CloudErrorKind::Transient,
                    "OperationTimeout",
                    format!("the operation was still running when the deadline came ({url})"),
                ));
            }
            tokio::time::sleep(wait).await;
            let r = self.call(reqwest::Method::GET, &url, deadline).await?;
            wait = retry_after(&r.headers).unwrap_or(self.poll_interval);
            if !is_status_doc {
                match r.status {
                    202 => continue,
                    200..=299 => return Ok(()),
                    _ => return Err(status_error(&r, "operation")),
                }
            }
            if !(200..300).contains(&r.status) {
                return Err(status_error(&r, "operation status"));
            }
            match r.body.get("status").and_then(Value::as_str) {
                Some("Succeeded") => return Ok(()),
                Some(status @ ("Failed" | "Canceled")) => {
                    let (code, message) =
                        arm_error(&r.body.get("error").cloned().unwrap_or_default());
                    let code = code.unwrap_or_else(|| format!("Operation{status}"));
                    // A cancelled operation was superseded or interrupted (Azure
                    // networking: `CanceledAndSupersededDueToAnotherOperation`): the
                    // next delivery re-reads and tries again.
                    let kind = if status == "Canceled" || RETRYABLE_CODES.contains(&code.as_str()) {
                        CloudErrorKind::Transient
                    } else {
                        CloudErrorKind::Other
                    };
                    return Err(CloudError::new(
                        kind,
                        code,
                        message.unwrap_or_else(|| format!("the operation ended {status}")),
                    ));
                }
                _ => {}
            }
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get("retry-after").and_then(|v| v.to_str().ok()))
}

/// `{"error": {"code", "message"}}` → its parts.
fn arm_error(error: &Value) -> (Option<String>, Option<String>) {
    let s = |k: &str| error.get(k).and_then(Value::as_str).map(str::to_string);
    (s("code"), s("message"))
}

fn error_text(r: &Response) -> String {
    let (code, message) = arm_error(r.body.get("error").unwrap_or(&Value::Null));
    match (code, message) {
        (Some(c), Some(m)) => format!("HTTP {} {c}: {m}", r.status),
        (Some(c), None) => format!("HTTP {} {c}", r.status),
        _ => format!("HTTP {}", r.status),
    }
}

/// ARM error codes that say "try again later" (the ARM and Azure networking docs'
/// retryable conflicts and transient failures).
const RETRYABLE_CODES: &[&str] = &[
    "AnotherOperationInProgress",
    "CanceledAndSupersededDueToAnotherOperation",
    "RetryableError",
    "OperationPreempted",
];

/// The code of a PUT refused because its `If-Match` ETag is stale.
pub const PRECONDITION_FAILED: &str = "PreconditionFailed";

fn status_error(r: &Response, what: &str) -> CloudError {
    let (code, message) = arm_error(r.body.get("error").unwrap_or(&Value::Null));
    let kind = match r.status {
        401 | 403 => CloudErrorKind::Denied,
        404 => CloudErrorKind::NotFound,
        // 409 Conflict: another operation holds the resource; ARM asks clients to
        // retry once it finishes.
        409 => CloudErrorKind::Transient,
        _ if code
            .as_deref()
            .is_some_and(|c| RETRYABLE_CODES.contains(&c)) =>
        {
            CloudErrorKind::Transient
        }
        _ => CloudErrorKind::Other,
    };
    CloudError::new(
        kind,
        code.unwrap_or_else(|| format!("HTTP{}", r.status)),
        format!("{what}: {}", message.unwrap_or_else(|| error_text(r))),
    )
}
