//! The `alert-to-slack` state store on Azure Table storage (the Function App's own
//! storage account), over the Table REST API with Shared Key Lite auth. Tested
//! against Azurite.
//!
//! Rows are keyed by the SHA-256 of the store key (hex), which sidesteps the Table
//! service's forbidden key characters; the key itself is kept in a `Key` column.
//! Table storage has no TTL, so expiry is an `ExpiresAt` column every read checks,
//! and claims and counters use ETags (`If-Match`) for compare-and-swap.
//!
//! A hold keeps its owner in `Holder` (what the decision reads) and in `Record` (what
//! `get` and `list` show). `hold` and `let_go` read the row, decide, and write only
//! if the row is still the one they read: an insert (409 if someone else inserted
//! first) or a replace or delete with `If-Match` (412 if it changed). A lost race
//! reads again and decides again.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reflex_core::store::epoch_secs;
use reflex_core::{Secret, Store, StoreError, ThreadRef};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Azurite's documented development account.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const PARTITION: &str = "reflex";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Compare-and-swap rounds before giving up on a contended row.
const CAS_ROUNDS: usize = 16;

/// A table in a storage account.
pub struct TableStore {
    endpoint: String,
    account: String,
    /// The decoded account key (never printed: `Debug` leaves it out).
    key: Vec<u8>,
    table: String,
    http: reqwest::Client,
    created: OnceCell<()>,
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableStore")
            .field("endpoint", &self.endpoint)
            .field("table", &self.table)
            .finish()
    }
}

/// `(endpoint, account, key)` from an Azure Storage connection string.
pub fn parse_connection_string(cs: &str) -> Result<(String, String, Secret), String> {
    let mut parts = std::collections::HashMap::new();
    for item in cs.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        // Keys end in `==`: split on the first `=` only.
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!(
                "'{}…' is not Key=Value",
                item.chars().take(20).collect::<String>()
            ));
        };
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if parts
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok((
            format!("http://127.0.0.1:10002/{DEV_ACCOUNT}"),
            DEV_ACCOUNT.into(),
            Secret::new(DEV_KEY),
        ));
    }
    let account = parts
        .get("accountname")
        .cloned()
        .ok_or("the connection string has no AccountName")?;
    let key = parts
        .get("accountkey")
        .cloned()
        .ok_or("the connection string has no AccountKey (managed-identity connections are not supported for the table store)")?;
    let endpoint = match parts.get("tableendpoint") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => format!(
            "{}://{account}.table.{}",
            parts
                .get("defaultendpointsprotocol")
                .map_or("https", String::as_str),
            parts
                .get("endpointsuffix")
                .map_or("core.windows.net", String::as_str)
        ),
    };
    Ok((endpoint, account, Secret::new(key)))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now() -> u64 {
    epoch_secs(SystemTime::now())
}

fn row_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn int64(v: u64) -> (Value, Value) {
    (json!(v.to_string()), json!("Edm.Int64"))
}

/// A response, reduced to what the store needs.
struct Reply {
    status: u16,
    etag: Option<String>,
    body: Value,
    /// A query's `x-ms-continuation-NextPartitionKey` / `NextRowKey`.
    next: Option<(String, String)>,
}

impl TableStore {
    /// A store on `table` in the account the connection string names.
    pub fn from_connection_string(cs: &str, table: &str) -> Result<Self, String> {
        let (endpoint, account, key) = parse_connection_string(cs)?;
        let key = STANDARD
            .decode(key.expose())
            .map_err(|_| "AccountKey is not base64".to_string())?;
        if !(3..=63).contains(&table.len()) || !table.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("table name '{table}': 3-63 letters and digits"));
        }
        Ok(Self {
            endpoint,
            account,
            key,
            table: table.to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            created: OnceCell::new(),
        })
    }

    /// Shared Key Lite: HMAC-SHA256 over `x-ms-date \n /account/path`.
    fn authorization(&self, date: &str, path: &str) -> Result<String, StoreError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|_| StoreError::new("AccountKey cannot be used", false))?;
        mac.update(format!("{date}\n/{}{path}", self.account).as_bytes());
        Ok(format!(
            "SharedKeyLite {}:{}",
            self.account,
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }

    async fn request(
        &self,
        method: reqwest::Method,
        resource: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, StoreError> {
        let url = format!("{}/{resource}", self.endpoint);
        let path = reqwest::Url::parse(&url)
            .map(|u| u.path().to_string())
            .map_err(|e| StoreError::new(format!("bad table URL: {e}"), false))?;
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut req = self
            .http
            .request(method, &url)
            .timeout(REQUEST_TIMEOUT)
            .header("x-ms-date", &date)
            .header("x-ms-version", "2019-02-02")
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Accept", "application/json;odata=nometadata")
            .header("Authorization", self.authorization(&date, &path)?);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .header("Prefer", "return-no-content")
                .body(b.to_string());
        }
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| StoreError::new(format!("table storage unreachable: {e}"), true))?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let next = header("x-ms-continuation-nextpartitionkey").map(|pk| {
            (
                pk,
                header("x-ms-continuation-nextrowkey").unwrap_or_default(),
            )
        });
        let text = reflex_runtime::http::text_capped(resp, reflex_runtime::http::MAX_BODY).await;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            403 => Err(StoreError::new(
                "table storage refused the credentials (403): check the connection string",
                false,
            )),
            429 | 500..=599 => Err(StoreError::new(
                format!("table storage answered HTTP {status}"),
                true,
            )),
            _ => Ok(Reply {
                status,
                etag,
                body,
                next,
            }),
        }
    }

    fn entity_path(&self, key: &str) -> String {
        format!(
            "{}(PartitionKey='{PARTITION}',RowKey='{}')",
            self.table,
            row_key(key)
        )
    }

    async fn ensure_table(&self) -> Result<(), StoreError> {
        self.created
            .get_or_try_init(|| async {
                let r = self
                    .request(
                        reqwest::Method::POST,
                        "Tables",
                        Some(&json!({"TableName": self.table})),
                        None,
                    )
                    .await?;
                match r.status {
                    201 | 204 | 409 => Ok(()),
                    s => Err(StoreError::new(
                        format!("cannot create table {}: HTTP {s} {}", self.table, r.body),
                        false,
                    )),
                }
            })
            .await
            .map(|_| ())
    }

    fn entity(&self, key: &str, mut props: Value, expires: u64) -> Value {
        let (v, t) = int64(expires);
        props["PartitionKey"] = json!(PARTITION);
        props["RowKey"] = json!(row_key(key));
        props["Key"] = json!(key);
        props["ExpiresAt"] = v;
        props["ExpiresAt@odata.type"] = t;
        props
    }

    async fn row(&self, key: &str) -> Result<Option<(Value, String)>, StoreError> {
        self.ensure_table().await?;
        let r = self
            .request(reqwest::Method::GET, &self.entity_path(key), None, None)
            .await?;
        match r.status {
            200 => Ok(Some((r.body, r.etag.unwrap_or_else(|| "*".into())))),
            404 => Ok(None),
            s => Err(unexpected("read", s, &r.body)),
        }
    }

    async fn insert(&self, entity: &Value) -> Result<bool, StoreError> {
        self.ensure_table().await?;
        let r = self
            .request(reqwest::Method::POST, &self.table, Some(entity), None)
            .await?;
        match r.status {
            201 | 204 => Ok(true),
            409 => Ok(false),
            s => Err(unexpected("insert", s, &r.body)),
        }
    }

    /// Replaces the row; with `etag`, only if it has not changed (`false` if it has).
    async fn replace(
        &self,
        key: &str,
        entity: &Value,
        etag: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.ensure_table().await?;
        let r = self
            .request(
                reqwest::Method::PUT,
                &self.entity_path(key),
                Some(entity),
                etag,
            )
            .await?;
        match r.status {
            204 | 200 => Ok(true),
            412 | 404 if etag.is_some() => Ok(false),
            s => Err(unexpected("replace", s, &r.body)),
        }
    }
}

fn unexpected(what: &str, status: u16, body: &Value) -> StoreError {
    let code = body
        .pointer("/odata.error/code")
        .and_then(Value::as_str)
        .unwrap_or("no error code");
    StoreError::new(format!("table {what}: HTTP {status} {code}"), false)
}

/// An Int64 property: a string with `odata=nometadata`, a number if written plain.
fn int(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn expires_at(row: &Value) -> u64 {
    int(&row["ExpiresAt"])
}

/// Whether `owner` may write a hold over `row`: it has expired, or `owner` holds it.
fn free_for(row: &Value, owner: &str) -> bool {
    expires_at(row) < now() || row["Holder"].as_str() == Some(owner)
}

fn contended(what: &str, key: &str, started: Instant) -> StoreError {
    StoreError::new(
        format!(
            "{what} {key} stayed contended for {CAS_ROUNDS} rounds ({:.1}s)",
            started.elapsed().as_secs_f64()
        ),
        true,
    )
}

/// Opens the store on `table` from a connection string, as a configuration step
/// (matches `reflex_aws::dynamo::OpenAzureTable`).
pub fn open(
    table: &str,
    connection: &str,
) -> Result<std::sync::Arc<dyn Store>, reflex_core::ConfigError> {
    let store = TableStore::from_connection_string(connection, table).map_err(|r| {
        reflex_core::ConfigError::new("REFLEX_AZURE_STORAGE_CONNECTION", "[redacted]", r)
    })?;
    Ok(std::sync::Arc::new(store))
}

/// The smallest string above every string that starts with `prefix` (ASCII keys).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7e {
            bytes.push(last + 1);
            return String::from_utf8(bytes).unwrap_or_default();
        }
    }
    "~".into()
}

/// A string literal for an OData `$filter`.
fn odata(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[async_trait::async_trait]
impl Store for TableStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        let entity = self.entity(key, json!({}), epoch_secs(SystemTime::now() + lease));
        if self.insert(&entity).await? {
            return Ok(true);
        }
        // Taken: an expired claim may be taken over, once, by whoever swaps first.
        match self.row(key).await? {
            Some((row, etag)) if expires_at(&row) < now() => {
                self.replace(key, &entity, Some(&etag)).await
            }
            Some(_) => Ok(false),
            None => self.insert(&entity).await,
        }
    }

    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let entity = self.entity(key, json!({}), epoch_secs(SystemTime::now() + ttl));
        self.replace(key, &entity, None).await.map(|_| ())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.ensure_table().await?;
        let r = self
            .request(
                reqwest::Method::DELETE,
                &self.entity_path(key),
                None,
                Some("*"),
            )
            .await?;
        match r.status {
            204 | 200 | 404 => Ok(()),
            s => Err(unexpected("delete", s, &r.body)),
        }
    }

    async fn thread(&self, key: &str) -> Result<Option<ThreadRef>, StoreError> {
        let Some((row, _)) = self.row(key).await? else {
            return Ok(None);
        };
        if expires_at(&row) < now() {
            return Ok(None);
        }
        Ok(ThreadRef::from_columns(|k| {
            row[k].as_str().map(str::to_string)
        }))
    }

    async fn save_thread(
        &self,
        key: &str,
        thread: &ThreadRef,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let props: serde_json::Map<String, Value> = thread
            .columns()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let props = Value::Object(props);
        let entity = self.entity(key, props, epoch_secs(SystemTime::now() + ttl));
        self.replace(key, &entity, None).await.map(|_| ())
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let entity = self.entity(
            key,
            json!({ "Record": value }),
            epoch_secs(SystemTime::now() + ttl),
        );
        self.replace(key, &entity, None).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .row(key)
            .await?
            .filter(|(row, _)| expires_at(row) >= now())
            .and_then(|(row, _)| row["Record"].as_str().map(str::to_string)))
    }

    /// A query on the partition for `Key` in `[prefix, prefix_end)`, following
    /// continuation tokens to the end.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.ensure_table().await?;
        let filter = format!(
            "PartitionKey eq {} and Key ge {} and Key lt {}",
            odata(PARTITION),
            odata(prefix),
            odata(&prefix_end(prefix))
        );
        let mut out = Vec::new();
        let mut next: Option<(String, String)> = None;
        loop {
            let mut query = vec![("$filter", filter.as_str())];
            if let Some((pk, rk)) = &next {
                query.push(("NextPartitionKey", pk));
                query.push(("NextRowKey", rk));
            }
            let qs: String = query
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let resource = format!("{}()?{qs}", self.table);
            let r = self
                .request(reqwest::Method::GET, &resource, None, None)
                .await?;
            if r.status != 200 {
                return Err(unexpected("query", r.status, &r.body));
            }
            for row in r.body["value"].as_array().into_iter().flatten() {
                if expires_at(row) < now() {
                    continue;
                }
                if let (Some(k), Some(v)) = (row["Key"].as_str(), row["Record"].as_str()) {
                    out.push((k.to_string(), v.to_string()));
                }
            }
            match r.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        out.sort();
        Ok(out)
    }

    async fn count(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let started = Instant::now();
        for _ in 0..CAS_ROUNDS {
            let (hits, etag, expires) = match self.row(key).await? {
                Some((row, etag)) if expires_at(&row) >= now() => {
                    (int(&row["Hits"]), Some(etag), expires_at(&row))
                }
                Some((_, etag)) => (0, Some(etag), epoch_secs(SystemTime::now() + ttl)),
                None => (0, None, epoch_secs(SystemTime::now() + ttl)),
            };
            let (v, t) = int64(hits + 1);
            let entity = self.entity(key, json!({"Hits": v, "Hits@odata.type": t}), expires);
            let done = match &etag {
                Some(e) => self.replace(key, &entity, Some(e)).await?,
                None => self.insert(&entity).await?,
            };
            if done {
                return Ok(hits + 1);
            }
        }
        Err(contended("counter", key, started))
    }

    async fn hold(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        let started = Instant::now();
        for _ in 0..CAS_ROUNDS {
            let entity = self.entity(
                key,
                json!({ "Holder": owner, "Record": owner }),
                epoch_secs(SystemTime::now() + lease),
            );
            let done = match self.row(key).await? {
                None => self.insert(&entity).await?,
                Some((row, etag)) if free_for(&row, owner) => {
                    self.replace(key, &entity, Some(&etag)).await?
                }
                Some(_) => return Ok(false),
            };
            if done {
                return Ok(true);
            }
        }
        Err(contended("hold", key, started))
    }

    /// An expired row is deleted whoever held it: it was free already, and Table
    /// storage never sweeps it.
    async fn let_go(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let started = Instant::now();
        for _ in 0..CAS_ROUNDS {
            let etag = match self.row(key).await? {
                None => return Ok(true),
                Some((row, etag)) if free_for(&row, owner) => etag,
                Some(_) => return Ok(false),
            };
            let r = self
                .request(
                    reqwest::Method::DELETE,
                    &self.entity_path(key),
                    None,
                    Some(&etag),
                )
                .await?;
            match r.status {
                204 | 200 | 404 => return Ok(true),
                412 => continue,
                s => return Err(unexpected("delete", s, &r.body)),
            }
        }
        Err(contended("let_go", key, started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_store_debug_never_shows_the_account_key() {
        // "S3CR3TS3CR3T" in base64.
        let Ok(store) = TableStore::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=reflexsa;AccountKey=UzNDUjNUUzNDUjNU;EndpointSuffix=core.windows.net",
            "alerts",
        ) else {
            panic!("the connection string parses")
        };
        let shown = format!("{store:?}");
        assert!(
            shown.contains("alerts") && !shown.contains("UzNDUjNU") && !shown.contains("83, 51"),
            "{shown}"
        );
    }

    #[test]
    fn connection_strings_give_endpoint_account_and_key() {
        let Ok((e, a, _)) = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=reflexsa;AccountKey=a2V5a2V5;EndpointSuffix=core.windows.net",
        ) else {
            panic!()
        };
        assert_eq!(
            (e.as_str(), a.as_str()),
            ("https://reflexsa.table.core.windows.net", "reflexsa")
        );
        let Ok((e, a, _)) = parse_connection_string("UseDevelopmentStorage=true") else {
            panic!()
        };
        assert_eq!(
            (e.as_str(), a.as_str()),
            ("http://127.0.0.1:10002/devstoreaccount1", DEV_ACCOUNT)
        );
        let Ok((e, _, _)) = parse_connection_string(&format!(
            "AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:4000/{DEV_ACCOUNT}/"
        )) else {
            panic!()
        };
        assert_eq!(e, "http://127.0.0.1:4000/devstoreaccount1");
        let e = parse_connection_string("AccountName=x")
            .err()
            .unwrap_or_default();
        assert!(e.contains("AccountKey"), "{e}");
    }

    #[test]
    fn shared_key_lite_signs_date_and_canonical_resource() {
        // Golden value checked against Azurite (notes/azure-table-protocol.md).
        let Ok(s) = TableStore::from_connection_string(
            &format!(
                "AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT}"
            ),
            "reflexalerts",
        ) else {
            panic!()
        };
        let a = s
            .authorization("Tue, 24 Nov 2026 16:33:00 GMT", "/devstoreaccount1/Tables")
            .unwrap_or_default();
        assert_eq!(
            a,
            "SharedKeyLite devstoreaccount1:GMif99QJAUm44MDvFkzHTl6FhJ4bQL2DyqkvtYronpE="
        );
    }
}
