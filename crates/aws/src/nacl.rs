//! Network ACLs: the ACL of an instance's subnet, its inbound entries, and DENY
//! entries added and removed by rule number.

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, RuleAction};
use reflex_core::CloudError;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::LazySdk;
use crate::errors::classify;

/// One inbound entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclEntry {
    pub rule_number: i32,
    /// `allow` or `deny`.
    pub action: String,
    /// IPv4 or IPv6 CIDR.
    pub cidr: String,
}

/// The network ACL of an instance's subnet, re-read before acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclView {
    pub instance: String,
    pub subnet: String,
    pub acl: String,
    /// Inbound entries (the default `*` rule 32767 excluded).
    pub inbound: Vec<AclEntry>,
}

/// The NACL operations the SSH blocker needs.
#[async_trait]
pub trait NetworkAcls: Send + Sync {
    /// The ACL of the instance's subnet; `None` if the instance does not exist.
    async fn of_instance(&self, instance: &str) -> Result<Option<AclView>, CloudError>;
    /// The ACL's inbound entries now; `None` if the ACL is gone.
    async fn inbound(&self, acl: &str) -> Result<Option<Vec<AclEntry>>, CloudError>;
    /// Adds an inbound DENY of all traffic from `cidr` as `rule_number`.
    async fn deny(&self, acl: &str, rule_number: i32, cidr: &str) -> Result<(), CloudError>;
    /// Removes inbound entry `rule_number`.
    async fn remove(&self, acl: &str, rule_number: i32) -> Result<(), CloudError>;
}

/// [`NetworkAcls`] on the EC2 SDK; the client is built on first use.
#[derive(Debug, Clone, Default)]
pub struct SdkAcls {
    sdk: LazySdk,
    client: std::sync::Arc<OnceCell<Client>>,
}

impl SdkAcls {
    pub fn new(sdk: LazySdk) -> Self {
        Self {
            sdk,
            client: std::sync::Arc::default(),
        }
    }

    async fn ec2(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(self.sdk.get().await) })
            .await
    }

    /// The ACLs matching `filter`, or the one with `id` (none if it is gone).
    async fn acls(
        &self,
        filter: Option<Filter>,
        id: Option<&str>,
    ) -> Result<Vec<aws_sdk_ec2::types::NetworkAcl>, CloudError> {
        let out = self
            .ec2()
            .await
            .describe_network_acls()
            .set_filters(filter.map(|f| vec![f]))
            .set_network_acl_ids(id.map(|i| vec![i.to_string()]))
            .send()
            .await;
        match out {
            Ok(o) => Ok(o.network_acls.unwrap_or_default()),
            Err(e) => {
                let e = classify(&e);
                if e.is_not_found() {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn inbound_of(acl: &aws_sdk_ec2::types::NetworkAcl) -> Vec<AclEntry> {
    let mut v: Vec<AclEntry> = acl
        .entries()
        .iter()
        .filter(|e| e.egress != Some(true))
        .filter_map(|e| {
            let number = e.rule_number?;
            (number != 32767).then(|| AclEntry {
                rule_number: number,
                action: e
                    .rule_action
                    .as_ref()
                    .map_or("", |a| a.as_str())
                    .to_string(),
                cidr: e
                    .cidr_block
                    .clone()
                    .or_else(|| e.ipv6_cidr_block.clone())
                    .unwrap_or_default(),
            })
        })
        .collect();
    v.sort_by_key(|e| e.rule_number);
    v
}

#[async_trait]
impl NetworkAcls for SdkAcls {
    async fn of_instance(&self, instance: &str) -> Result<Option<AclView>, CloudError> {
        let Some(subnet) = crate::ec2::describe_instance(self.ec2().await, instance)
            .await?
            .and_then(|i| i.subnet_id)
        else {
            return Ok(None);
        };
        let acls = self
            .acls(
                Some(
                    Filter::builder()
                        .name("association.subnet-id")
                        .values(&subnet)
                        .build(),
                ),
                None,
            )
            .await?;
        Ok(acls.first().and_then(|a| {
            Some(AclView {
                instance: instance.to_string(),
                subnet,
                acl: a.network_acl_id.clone()?,
                inbound: inbound_of(a),
            })
        }))
    }

    async fn inbound(&self, acl: &str) -> Result<Option<Vec<AclEntry>>, CloudError> {
        let acls = self.acls(None, Some(acl)).await?;
        Ok(acls.first().map(inbound_of))
    }

    async fn deny(&self, acl: &str, rule_number: i32, cidr: &str) -> Result<(), CloudError> {
        let mut req = self
            .ec2()
            .await
            .create_network_acl_entry()
            .network_acl_id(acl)
            .rule_number(rule_number)
            .egress(false)
            .protocol("-1")
            .rule_action(RuleAction::Deny);
        req = if cidr.contains(':') {
            req.ipv6_cidr_block(cidr)
        } else {
            req.cidr_block(cidr)
        };
        req.send().await.map(|_| ()).map_err(|e| classify(&e))
    }

    async fn remove(&self, acl: &str, rule_number: i32) -> Result<(), CloudError> {
        self.ec2()
            .await
            .delete_network_acl_entry()
            .network_acl_id(acl)
            .rule_number(rule_number)
            .egress(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
