//! The state `alert-to-slack` keeps between deliveries: which notifications were
//! already posted (dedup), which Slack message is an alert's thread, and how many
//! times something happened in a window (bursts). DynamoDB on AWS, Azure Table
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
}

#[derive(Debug, Clone)]
enum Entry {
    Claim,
    Thread(ThreadRef),
    Count(u64),
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
}
