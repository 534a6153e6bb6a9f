//! The EC2 side of a drain: an instance's tags, the ELBv2 target groups that hold
//! it, its Auto Scaling group, and the calls that take it out of service and bring
//! it back (deregister/register, standby, lifecycle heartbeat and completion).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::Client as Asg;
use aws_sdk_ec2::Client as Ec2;
use aws_sdk_elasticloadbalancingv2::Client as Elb;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use reflex_core::CloudError;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::LazySdk;
use crate::errors::classify;

/// One registration of the instance in a target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub target_group: String,
    /// The port it is registered on (`None`: the group's default port).
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining`, `unavailable`…
    pub state: String,
}

/// The instance's Auto Scaling group and where it is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub group: String,
    /// `InService`, `Standby`, `Terminating:Wait`, …
    pub lifecycle_state: String,
}

/// What the cloud says about one instance, re-read before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub registrations: Vec<Registration>,
    pub asg: Option<Membership>,
}

/// The drain operations on EC2, ELBv2 and Auto Scaling.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// The instance's tags, registrations and group; `None` if it does not exist.
    async fn instance(&self, id: &str) -> Result<Option<InstanceView>, CloudError>;
    async fn deregister(&self, group: &str, id: &str, port: Option<i32>) -> Result<(), CloudError>;
    async fn register(&self, group: &str, id: &str, port: Option<i32>) -> Result<(), CloudError>;
    /// The target's state in the group; `None` once it has left.
    async fn target_state(
        &self,
        group: &str,
        id: &str,
        port: Option<i32>,
    ) -> Result<Option<String>, CloudError>;
    /// Moves the instance to Standby without lowering the desired capacity, so the
    /// group launches a replacement.
    async fn enter_standby(&self, group: &str, id: &str) -> Result<(), CloudError>;
    async fn exit_standby(&self, group: &str, id: &str) -> Result<(), CloudError>;
    async fn heartbeat(
        &self,
        group: &str,
        hook: &str,
        token: Option<&str>,
        id: &str,
    ) -> Result<(), CloudError>;
    /// `CompleteLifecycleAction` with `result` (`CONTINUE`).
    async fn complete_lifecycle(
        &self,
        group: &str,
        hook: &str,
        token: Option<&str>,
        id: &str,
        result: &str,
    ) -> Result<(), CloudError>;
}

/// [`Fleet`] on the AWS SDK; clients are built on first use.
#[derive(Debug, Clone, Default)]
pub struct SdkFleet {
    sdk: LazySdk,
    ec2: std::sync::Arc<OnceCell<Ec2>>,
    elb: std::sync::Arc<OnceCell<Elb>>,
    asg: std::sync::Arc<OnceCell<Asg>>,
}

impl SdkFleet {
    pub fn new(sdk: LazySdk) -> Self {
        Self {
            sdk,
            ..Self::default()
        }
    }

    async fn ec2(&self) -> &Ec2 {
        self.ec2
            .get_or_init(|| async { Ec2::new(self.sdk.get().await) })
            .await
    }

    async fn elb(&self) -> &Elb {
        self.elb
            .get_or_init(|| async { Elb::new(self.sdk.get().await) })
            .await
    }

    async fn asg(&self) -> &Asg {
        self.asg
            .get_or_init(|| async { Asg::new(self.sdk.get().await) })
            .await
    }

    fn target(id: &str, port: Option<i32>) -> TargetDescription {
        TargetDescription::builder().id(id).set_port(port).build()
    }

    /// The instance's registrations in the instance-type target groups of its VPC
    /// (an instance target must be in the target group's VPC, so other VPCs' groups
    /// are not read: one DescribeTargetHealth per group of this VPC, not per group of
    /// the account). `vpc` `None` (EC2-Classic, moto oddities): every group.
    async fn registrations(
        &self,
        id: &str,
        vpc: Option<&str>,
    ) -> Result<Vec<Registration>, CloudError> {
        let elb = self.elb().await;
        let mut pages = elb.describe_target_groups().into_paginator().send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            groups.extend(
                page.target_groups
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|g| {
                        g.target_type
                            .as_ref()
                            .is_none_or(|t| t.as_str() == "instance")
                            && vpc.is_none_or(|v| g.vpc_id.as_deref().is_none_or(|g| g == v))
                    }),
            );
        }
        let mut out = Vec::new();
        for g in groups {
            let Some(arn) = g.target_group_arn else {
                continue;
            };
            let health = elb
                .describe_target_health()
                .target_group_arn(&arn)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for d in health.target_health_descriptions.unwrap_or_default() {
                let Some(t) = d.target.filter(|t| t.id.as_deref() == Some(id)) else {
                    continue;
                };
                let state = d
                    .target_health
                    .and_then(|h| h.state)
                    .map_or_else(|| "unknown".to_string(), |s| s.as_str().to_string());
                out.push(Registration {
                    target_group: arn.clone(),
                    port: t.port,
                    state,
                });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Fleet for SdkFleet {
    async fn instance(&self, id: &str) -> Result<Option<InstanceView>, CloudError> {
        let Some(instance) = crate::ec2::describe_instance(self.ec2().await, id).await? else {
            return Ok(None);
        };
        let vpc = instance.vpc_id.clone();
        let tags = instance
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
            .collect();
        let asg = self
            .asg()
            .await
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify(&e))?
            .auto_scaling_instances
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|i| Membership {
                group: i.auto_scaling_group_name.unwrap_or_default(),
                lifecycle_state: i.lifecycle_state.unwrap_or_default(),
            });
        Ok(Some(InstanceView {
            id: id.to_string(),
            tags,
            registrations: self.registrations(id, vpc.as_deref()).await?,
            asg,
        }))
    }

    async fn deregister(&self, group: &str, id: &str, port: Option<i32>) -> Result<(), CloudError> {
        self.elb()
            .await
            .deregister_targets()
            .target_group_arn(group)
            .targets(Self::target(id, port))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn register(&self, group: &str, id: &str, port: Option<i32>) -> Result<(), CloudError> {
        self.elb()
            .await
            .register_targets()
            .target_group_arn(group)
            .targets(Self::target(id, port))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn target_state(
        &self,
        group: &str,
        id: &str,
        port: Option<i32>,
    ) -> Result<Option<String>, CloudError> {
        let out = self
            .elb()
            .await
            .describe_target_health()
            .target_group_arn(group)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .target_health_descriptions
            .unwrap_or_default()
            .into_iter()
            .find(|d| {
                d.target.as_ref().is_some_and(|t| {
                    t.id.as_deref() == Some(id) && (port.is_none() || t.port == port)
                })
            })
            .and_then(|d| d.target_health)
            .and_then(|h| h.state)
            .map(|s| s.as_str().to_string())
            .filter(|s| s != "unused"))
    }

    async fn enter_standby(&self, group: &str, id: &str) -> Result<(), CloudError> {
        self.asg()
            .await
            .enter_standby()
            .auto_scaling_group_name(group)
            .instance_ids(id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn exit_standby(&self, group: &str, id: &str) -> Result<(), CloudError> {
        self.asg()
            .await
            .exit_standby()
            .auto_scaling_group_name(group)
            .instance_ids(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn heartbeat(
        &self,
        group: &str,
        hook: &str,
        token: Option<&str>,
        id: &str,
    ) -> Result<(), CloudError> {
        self.asg()
            .await
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .set_lifecycle_action_token(token.map(str::to_string))
            .instance_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn complete_lifecycle(
        &self,
        group: &str,
        hook: &str,
        token: Option<&str>,
        id: &str,
        result: &str,
    ) -> Result<(), CloudError> {
        self.asg()
            .await
            .complete_lifecycle_action()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .set_lifecycle_action_token(token.map(str::to_string))
            .instance_id(id)
            .lifecycle_action_result(result)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
