//! The state `alert-to-slack` keeps between deliveries: which notifications were
//! already posted (dedup), which Slack message is an alert's thread, and how many
//! times something happened in a window (bursts); and `drain-before-maintenance`'s
//! records of drained nodes and waits to resume. DynamoDB on AWS, Azure Table
//! storage on Azure, and [`MemoryStore`] for the CLI.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A store call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    /// Throttling, 5xx, timeouts: a redelivery may succeed.
    pub retryable: bool,
}

impl StoreError {
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self {
            message: message.into(),
            retryable,
        }
    }
}

/// The Slack message that holds an alert's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    /// The channel id Slack answered with (`chat.update` needs the id, not the name).
    pub channel: String,
    /// The parent message's `ts`.
    pub ts: String,
    /// `firing` or `resolved`: the state the parent shows.
    pub state: String,
    /// When the conversation started (the first firing), for the parent's text.
    pub since: String,
}

impl ThreadRef {
    /// The stored columns (DynamoDB attributes, Table properties).
    pub fn columns(&self) -> [(&'static str, &str); 4] {
        [
            ("channel", &self.channel),
            ("ts", &self.ts),
            ("state", &self.state),
            ("since", &self.since),
        ]
    }

    /// Reads a stored row by column name; `None` without a channel and a ts.
    pub fn from_columns(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        Some(Self {
            channel: get("channel")?,
            ts: get("ts")?,
            state: get("state").unwrap_or_else(|| "firing".into()),
            since: get("since").unwrap_or_default(),
        })
    }
}

/// Where the dedup / thread / burst state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSetting {
    /// In this process only (the CLI; tests).
    Memory,
    /// `REFLEX_DYNAMODB_TABLE`.
    DynamoDb(String),
    /// `REFLEX_AZURE_TABLE`, with the connection string from
    /// `REFLEX_AZURE_STORAGE_CONNECTION` or `AzureWebJobsStorage` (a secret: it holds
    /// the account key).
    AzureTable {
        table: String,
        connection: crate::settings::Secret,
    },
}

impl StoreSetting {
    /// `REFLEX_DYNAMODB_TABLE`, else `REFLEX_AZURE_TABLE` (with its connection
    /// string), else memory.
    pub fn from_lookup(env: &impl crate::settings::Lookup) -> Result<Self, crate::ConfigError> {
        Ok(
            match (
                env.get("REFLEX_DYNAMODB_TABLE"),
                env.get("REFLEX_AZURE_TABLE"),
            ) {
                (Some(t), _) => StoreSetting::DynamoDb(t),
                (None, Some(table)) => {
                    let connection = env
                    .get("REFLEX_AZURE_STORAGE_CONNECTION")
                    .or_else(|| env.get("AzureWebJobsStorage"))
                    .ok_or_else(|| {
                        crate::ConfigError::new(
                            "REFLEX_AZURE_TABLE",
                            &table,
                            "needs a storage connection string: set REFLEX_AZURE_STORAGE_CONNECTION or AzureWebJobsStorage",
                        )
                    })?;
                    StoreSetting::AzureTable {
                        table,
                        connection: crate::settings::Secret::new(connection),
                    }
                }
                (None, None) => StoreSetting::Memory,
            },
        )
    }
}

/// Seconds since the epoch, now.
pub fn epoch_now() -> i64 {
    i64::try_from(epoch_secs(SystemTime::now())).unwrap_or(i64::MAX)
}

/// Seconds since the epoch: what DynamoDB's TTL reads.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The state store.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Claims `key` for `lease` unless a live claim exists. `true`: first claim, go
    /// ahead; `false`: a duplicate. An expired claim can be taken again, so a delivery
    /// that died mid-way does not block its redelivery for longer than the lease.
    async fn claim(&self, key: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Keeps a claim for `ttl` (the delivery succeeded: drop duplicates that long).
    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Drops a claim (the delivery failed: let a redelivery try again).
    async fn release(&self, key: &str) -> Result<(), StoreError>;
    /// The thread for an alert, if one is live.
    async fn thread(&self, key: &str) -> Result<Option<ThreadRef>, StoreError>;
    /// Records (or replaces) the thread for an alert.
    async fn save_thread(
        &self,
        key: &str,
        thread: &ThreadRef,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Adds one to the counter `key` (which lives for `ttl`) and returns the new count.
    async fn count(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;
    /// Saves (or replaces) a record: JSON text under `key`, kept for `ttl`.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// The live record under `key`.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Every live record whose key starts with `prefix`, as `(key, value)`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Holds `key` for `owner` for `lease`: takes it when it is free or expired, and
    /// renews it when `owner` already holds it. `false`: another owner holds a live
    /// claim (or the key holds a live entry that is not a hold: a claim, a record).
    /// While held, [`get`](Store::get) and [`list`](Store::list) show `owner` as the
    /// value.
    async fn hold(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Lets go of `key` only if `owner` holds it (a conditional delete). `false`: a
    /// live entry held by another owner (or not a hold) is there, and nothing changed;
    /// `true`: it was ours and is gone, or it was absent or expired already.
    async fn let_go(&self, key: &str, owner: &str) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone)]
enum Entry {
    Claim,
    Thread(ThreadRef),
    Count(u64),
    Record(String),
    /// A hold, by its owner.
    Held(String),
}

/// An in-process store: the CLI, and tests of everything above the store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, (Entry, SystemTime)>>,
}

impl MemoryStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (Entry, SystemTime)>) -> T,
    ) -> Result<T, StoreError> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| StoreError::new("memory store poisoned", false))?;
        let now = SystemTime::now();
        map.retain(|_, (_, expires)| *expires > now);
        Ok(f(&mut map))
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn claim(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        self.with(|m| {
            if m.contains_key(key) {
                false
            } else {
                m.insert(key.to_string(), (Entry::Claim, SystemTime::now() + lease));
                true
            }
        })
    }

    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| {
            m.insert(key.to_string(), (Entry::Claim, SystemTime::now() + ttl));
        })
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.remove(key);
        })
    }

    async fn thread(&self, key: &str) -> Result<Option<ThreadRef>, StoreError> {
        self.with(|m| match m.get(key) {
            Some((Entry::Thread(t), _)) => Some(t.clone()),
            _ => None,
        })
    }

    async fn save_thread(
        &self,
        key: &str,
        thread: &ThreadRef,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with(|m| {
            m.insert(
                key.to_string(),
                (Entry::Thread(thread.clone()), SystemTime::now() + ttl),
            );
        })
    }

    async fn count(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.with(|m| {
            let now = SystemTime::now();
            let e = m
                .entry(key.to_string())
                .or_insert((Entry::Count(0), now + ttl));
            let n = match e.0 {
                Entry::Count(n) => n + 1,
                _ => 1,
            };
            e.0 = Entry::Count(n);
            n
        })
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| {
            m.insert(
                key.to_string(),
                (Entry::Record(value.to_string()), SystemTime::now() + ttl),
            );
        })
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|m| match m.get(key) {
            Some((Entry::Record(v) | Entry::Held(v), _)) => Some(v.clone()),
            _ => None,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|m| {
            let mut out: Vec<(String, String)> = m
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .filter_map(|(k, (e, _))| match e {
                    Entry::Record(v) | Entry::Held(v) => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect();
            out.sort();
            out
        })
    }

    async fn hold(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        // `with` has dropped expired entries: what is left is live.
        self.with(|m| {
            let ours = match m.get(key) {
                Some((Entry::Held(o), _)) => o == owner,
                Some(_) => false,
                None => true,
            };
            if ours {
                m.insert(
                    key.to_string(),
                    (Entry::Held(owner.to_string()), SystemTime::now() + lease),
                );
            }
            ours
        })
    }

    async fn let_go(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        self.with(|m| match m.get(key) {
            Some((Entry::Held(o), _)) if o == owner => {
                m.remove(key);
                true
            }
            Some(_) => false,
            None => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_memory_hold_is_kept_from_other_owners_until_its_owner_lets_go()
    -> Result<(), StoreError> {
        let s = MemoryStore::default();
        assert!(
            s.hold("lease/a/0", "vm-1", MINUTE).await?,
            "a free key is held"
        );
        assert!(
            !s.hold("lease/a/0", "vm-2", MINUTE).await?,
            "another owner is refused"
        );
        assert!(
            !s.let_go("lease/a/0", "vm-2").await?,
            "another owner cannot let go"
        );
        assert_eq!(s.get("lease/a/0").await?.as_deref(), Some("vm-1"));
        assert!(
            s.hold("lease/a/0", "vm-1", MINUTE).await?,
            "the owner renews"
        );
        assert_eq!(
            s.list("lease/a/").await?,
            vec![("lease/a/0".to_string(), "vm-1".to_string())]
        );
        assert!(s.let_go("lease/a/0", "vm-1").await?, "the owner lets go");
        assert!(
            s.let_go("lease/a/0", "vm-1").await?,
            "an absent key is let go already"
        );
        assert!(
            s.hold("lease/a/0", "vm-2", MINUTE).await?,
            "then another owner holds it"
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_memory_hold_is_taken_by_another_owner_but_a_renewed_one_is_not()
    -> Result<(), StoreError> {
        let s = MemoryStore::default();
        let short = Duration::from_millis(50);
        assert!(s.hold("lease/a/0", "vm-1", short).await?);
        assert!(s.hold("lease/a/1", "vm-1", short).await?);
        assert!(
            s.hold("lease/a/1", "vm-1", MINUTE).await?,
            "renewed for longer"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(s.hold("lease/a/0", "vm-2", MINUTE).await?, "expired: free");
        assert!(!s.let_go("lease/a/0", "vm-1").await?, "no longer vm-1's");
        assert!(
            !s.hold("lease/a/1", "vm-2", MINUTE).await?,
            "renewed: still held"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_memory_claim_without_an_owner_is_neither_held_nor_let_go() -> Result<(), StoreError>
    {
        let s = MemoryStore::default();
        assert!(s.claim("lease/a/0", MINUTE).await?);
        assert!(!s.hold("lease/a/0", "vm-1", MINUTE).await?);
        assert!(!s.let_go("lease/a/0", "vm-1").await?);
        assert!(
            !s.claim("lease/a/0", MINUTE).await?,
            "the claim is still there"
        );
        Ok(())
    }

    #[test]
    fn the_azure_table_setting_never_prints_its_account_key() {
        let env = crate::settings::from_pairs(&[
            ("REFLEX_AZURE_TABLE", "alerts"),
            (
                "AzureWebJobsStorage",
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3CR3TS3CR3T==",
            ),
        ]);
        let s = StoreSetting::from_lookup(&env);
        let shown = format!("{s:?}");
        assert!(
            shown.contains("alerts") && !shown.contains("S3CR3T"),
            "{shown}"
        );
        let Ok(StoreSetting::AzureTable { connection, .. }) = s else {
            panic!("{shown}")
        };
        assert!(connection.expose().ends_with("AccountKey=S3CR3TS3CR3T=="));
    }
}
