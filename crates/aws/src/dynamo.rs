//! The `alert-to-slack` state store on DynamoDB: one table, key `pk` (string), TTL
//! attribute `expires_at` (epoch seconds). Claims are conditional puts, counters
//! atomic `ADD`s. DynamoDB deletes expired items lazily (up to days later), so every
//! read and condition also checks `expires_at` itself.
//!
//! A hold is an item with its owner in `holder` (the condition's attribute) and in
//! `record` (what `get` and `list` show); `hold` is a put and `let_go` a delete, each
//! conditional on `holder`, so two owners never both win.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use reflex_core::store::epoch_secs;
use reflex_core::{Store, StoreError, ThreadRef};
use tokio::sync::OnceCell;

use crate::LazySdk;
use crate::errors::classify;

/// Opens an Azure Table store: `(table, connection string)`.
pub type OpenAzureTable =
    fn(&str, &str) -> Result<std::sync::Arc<dyn Store>, reflex_core::ConfigError>;

/// The store a [`StoreSetting`](reflex_core::store::StoreSetting) names. Azure
/// tables come from `azure` (`reflex_azure::table::open`, or
/// [`no_azure`] in builds without Azure), so this crate needs no Azure code.
pub fn store(
    setting: &reflex_core::store::StoreSetting,
    sdk: &LazySdk,
    azure: OpenAzureTable,
) -> Result<std::sync::Arc<dyn Store>, reflex_core::ConfigError> {
    use reflex_core::store::{MemoryStore, StoreSetting};
    Ok(match setting {
        StoreSetting::Memory => std::sync::Arc::new(MemoryStore::default()),
        StoreSetting::DynamoDb(table) => {
            std::sync::Arc::new(DynamoStore::new(sdk.clone(), table.clone()))
        }
        StoreSetting::AzureTable { table, connection } => azure(table, connection.expose())?,
    })
}

/// The [`OpenAzureTable`] of a build without Azure: a configuration error.
pub fn no_azure(
    table: &str,
    _: &str,
) -> Result<std::sync::Arc<dyn Store>, reflex_core::ConfigError> {
    Err(reflex_core::ConfigError::new(
        "REFLEX_AZURE_TABLE",
        table,
        "this build has no Azure support (build with the `azure` feature)",
    ))
}

/// The store on one DynamoDB table.
#[derive(Debug)]
pub struct DynamoStore {
    sdk: LazySdk,
    client: OnceCell<Client>,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn expiry(ttl: Duration) -> u64 {
    epoch_secs(SystemTime::now() + ttl)
}

fn now() -> u64 {
    epoch_secs(SystemTime::now())
}

fn failed<E>(
    e: &aws_sdk_dynamodb::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let c = classify(e);
    StoreError::new(c.to_string(), c.is_retryable())
}

impl DynamoStore {
    pub fn new(sdk: LazySdk, table: impl Into<String>) -> Self {
        Self {
            sdk,
            client: OnceCell::new(),
            table: table.into(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(self.sdk.get().await) })
            .await
    }

    /// The item under `key`, read consistently, if it has not expired.
    async fn live_item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        Ok(out.item.filter(is_live))
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("expires_at", n(expiry(lease)))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now()))
            .send()
            .await;
        conditional(r)
    }

    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("expires_at", n(expiry(ttl)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(&e))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(&e))
    }

    async fn thread(&self, key: &str) -> Result<Option<ThreadRef>, StoreError> {
        Ok(self.live_item(key).await?.and_then(|item| {
            ThreadRef::from_columns(|k| item.get(k).and_then(|v| v.as_s().ok()).cloned())
        }))
    }

    async fn save_thread(
        &self,
        key: &str,
        thread: &ThreadRef,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("expires_at", n(expiry(ttl)));
        for (column, value) in thread.columns() {
            put = put.item(column, s(value));
        }
        put.send().await.map(|_| ()).map_err(|e| failed(&e))
    }

    async fn count(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let out = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expiry(ttl)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("hits"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::new("UpdateItem returned no count", true))
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("record", s(value))
            .item("expires_at", n(expiry(ttl)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(&e))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.live_item(key).await?.as_ref().and_then(live_record))
    }

    /// A filtered scan: the table holds short-lived rows only (claims, threads,
    /// drains), so a scan stays small; pages are followed to the end.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .await
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :p) AND attribute_exists(#r)")
                .expression_attribute_names("#r", "record")
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed(&e))?;
            for item in page.items() {
                if let (Some(k), Some(v)) = (
                    item.get("pk").and_then(|v| v.as_s().ok()),
                    live_record(item),
                ) {
                    out.push((k.clone(), v));
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    /// One conditional put: free (no item), expired, or already ours.
    async fn hold(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("holder", s(owner))
            .item("record", s(owner))
            .item("expires_at", n(expiry(lease)))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now OR #h = :owner")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        conditional(r)
    }

    /// One conditional delete. An expired item (not yet swept by TTL) is deleted
    /// whoever held it: it was free already, and that keeps `let_go` on an expired
    /// hold `true` as on the other stores.
    async fn let_go(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let r = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression("attribute_not_exists(pk) OR #h = :owner OR expires_at < :now")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_values(":now", n(now()))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        conditional(r)
    }
}

/// A conditional write's outcome: `false` when its condition failed.
fn conditional<T, E>(
    r: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> Result<bool, StoreError>
where
    E: ConditionFailed
        + aws_sdk_dynamodb::error::ProvideErrorMetadata
        + std::error::Error
        + 'static,
{
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(E::condition_failed) => Ok(false),
        Err(e) => Err(failed(&e)),
    }
}

/// The operation errors that can say "the condition failed".
trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// Whether an item has not expired (DynamoDB deletes expired items lazily).
fn is_live(item: &Item) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_none_or(|e| e >= now())
}

/// The `record` of an item that has not expired.
fn live_record(item: &Item) -> Option<String> {
    is_live(item)
        .then(|| item.get("record").and_then(|v| v.as_s().ok()).cloned())
        .flatten()
}
