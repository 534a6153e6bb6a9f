//! The Azure side of a drain, through ARM: a VM's tags and NICs, its addresses in
//! load-balancer backend pools (`adminState` Down / None), and the scheduled-event
//! acknowledge.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use reflex_core::CloudError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ArmClient;
use reflex_core::ids::ResourceId;

pub const COMPUTE_API: &str = "2024-07-01";
pub const NETWORK_API: &str = "2024-05-01";
/// The first API version with `Microsoft.Maintenance/scheduledevents/{id}/acknowledge`.
pub const MAINTENANCE_API: &str = "2025-11-01";
/// How many read-change-write rounds a backend-pool change gets when its ETag is
/// stale (someone else wrote the pool in between).
const ETAG_ATTEMPTS: u32 = 8;
/// The base wait before another round (plus up to as much again of jitter).
const ETAG_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// What ARM says about one VM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmView {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// Network interface ids (lower-case), to find the VM in backend pools.
    pub nics: Vec<String>,
}

/// The VM's addresses in one backend pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMember {
    pub pool: String,
    /// `loadBalancerBackendAddresses[].name`.
    pub addresses: Vec<String>,
    /// Whether every one of them is `adminState: Down` already.
    pub down: bool,
}

/// The drain operations on ARM.
#[async_trait]
pub trait AzureFleet: Send + Sync {
    async fn vm(&self, id: &str, deadline: Instant) -> Result<Option<VmView>, CloudError>;
    /// The VM's addresses in each of `pools`.
    async fn members(
        &self,
        pools: &[String],
        vm: &VmView,
        deadline: Instant,
    ) -> Result<Vec<PoolMember>, CloudError>;
    /// Sets `adminState` (`Down`, or `None` to hand control back to the probes) on
    /// the named addresses of a pool: the pool is read, changed and PUT whole.
    async fn set_admin_state(
        &self,
        pool: &str,
        addresses: &[String],
        state: &str,
        deadline: Instant,
    ) -> Result<(), CloudError>;
    /// Acknowledges (approves) scheduled event `event` of the VM or scale set `owner`.
    async fn acknowledge(
        &self,
        owner: &str,
        event: &str,
        deadline: Instant,
    ) -> Result<(), CloudError>;
}

/// `id` checked by the ARM grammar before it reaches a URL.
fn resource(id: &str) -> Result<ResourceId, CloudError> {
    ResourceId::parse(id).map_err(|e| {
        CloudError::new(
            reflex_core::CloudErrorKind::Other,
            "InvalidResourceId",
            e.to_string(),
        )
    })
}

/// [`AzureFleet`] on the ARM client.
#[derive(Debug)]
pub struct ArmFleet {
    arm: ArmClient,
}

impl ArmFleet {
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }
}

/// Whether a backend address belongs to one of the VM's NICs (its IP configuration
/// id is under the NIC's id).
fn on_vm(address: &Value, nics: &[String]) -> bool {
    address
        .pointer("/properties/networkInterfaceIPConfiguration/id")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .is_some_and(|ip| nics.iter().any(|n| ip.starts_with(&format!("{n}/"))))
}

/// The pool with `adminState` set on the named addresses.
pub fn with_admin_state(mut pool: Value, addresses: &[String], state: &str) -> Value {
    if let Some(list) = pool
        .pointer_mut("/properties/loadBalancerBackendAddresses")
        .and_then(Value::as_array_mut)
    {
        for a in list {
            let named = a["name"]
                .as_str()
                .is_some_and(|n| addresses.iter().any(|x| x == n));
            if named && a["properties"].is_object() {
                a["properties"]["adminState"] = Value::String(state.to_string());
            }
        }
    }
    pool
}

#[async_trait]
impl AzureFleet for ArmFleet {
    async fn vm(&self, id: &str, deadline: Instant) -> Result<Option<VmView>, CloudError> {
        let Some(doc) = self.arm.get(&resource(id)?, COMPUTE_API, deadline).await? else {
            return Ok(None);
        };
        let tags = doc["tags"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let nics = doc
            .pointer("/properties/networkProfile/networkInterfaces")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(VmView {
            id: id.to_string(),
            name: doc["name"].as_str().unwrap_or_default().to_string(),
            tags,
            nics,
        }))
    }

    async fn members(
        &self,
        pools: &[String],
        vm: &VmView,
        deadline: Instant,
    ) -> Result<Vec<PoolMember>, CloudError> {
        let mut out = Vec::new();
        for pool in pools {
            let Some(doc) = self
                .arm
                .get(&resource(pool)?, NETWORK_API, deadline)
                .await?
            else {
                continue;
            };
            let mine: Vec<&Value> = doc
                .pointer("/properties/loadBalancerBackendAddresses")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter(|a| on_vm(a, &vm.nics)).collect())
                .unwrap_or_default();
            if mine.is_empty() {
                continue;
            }
            out.push(PoolMember {
                pool: pool.clone(),
                down: mine.iter().all(|a| {
                    a.pointer("/properties/adminState").and_then(Value::as_str) == Some("Down")
                }),
                addresses: mine
                    .iter()
                    .filter_map(|a| a["name"].as_str().map(str::to_string))
                    .collect(),
            });
        }
        Ok(out)
    }

    async fn set_admin_state(
        &self,
        pool: &str,
        addresses: &[String],
        state: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let id = resource(pool)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(doc) = self.arm.get(&id, NETWORK_API, deadline).await? else {
                return Err(CloudError::new(
                    reflex_core::CloudErrorKind::NotFound,
                    "ResourceNotFound",
                    format!("{pool} does not exist"),
                ));
            };
            // Read, change, write with the ETag it was read with: a concurrent drain of
            // another VM in the pool (or an operator) makes ARM answer 412, and the
            // pool is read again, so neither change is lost.
            let etag = doc["etag"].as_str().map(str::to_string);
            let body = with_admin_state(doc, addresses, state);
            match self
                .arm
                .put(&id, NETWORK_API, &body, etag.as_deref(), deadline)
                .await
            {
                Err(e) if e.code == crate::arm::PRECONDITION_FAILED && attempt < ETAG_ATTEMPTS => {
                    // Jittered, so two drains racing for one pool do not collide again.
                    let wait = ETAG_BACKOFF.mul_f64(1.0 + reflex_runtime::retry::jitter_draw());
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tracing::info!(pool, attempt, "Backend pool changed meanwhile: read again");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn acknowledge(
        &self,
        owner: &str,
        event: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let scheduled = resource(owner)?
            .extension("Microsoft.Maintenance", "scheduledevents", event)
            .map_err(|e| {
                CloudError::new(
                    reflex_core::CloudErrorKind::Other,
                    "InvalidEventId",
                    e.to_string(),
                )
            })?;
        self.arm
            .post(&scheduled, "acknowledge", MAINTENANCE_API, deadline)
            .await
            .map(|_| ())
    }
}
