//! Security groups on EC2: re-read state, revoke by rule id, authorise.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, SecurityGroupRule, UserIdGroupPair,
};
use reflex_core::{
    CloudError, GroupState, PortSpan, PrefixLists, Protocol, RuleSpec, SgRule, Source,
};

use crate::errors::classify;

/// One instance by id; `None` when EC2 does not know it (or the id is malformed).
pub async fn describe_instance(
    client: &Client,
    id: &str,
) -> Result<Option<aws_sdk_ec2::types::Instance>, CloudError> {
    let out = match client.describe_instances().instance_ids(id).send().await {
        Ok(o) => o,
        Err(e) => {
            let e = classify(&e);
            return if e.is_not_found() || e.code == "InvalidInstanceID.Malformed" {
                Ok(None)
            } else {
                Err(e)
            };
        }
    };
    Ok(out
        .reservations
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.instances.unwrap_or_default())
        .find(|i| i.instance_id.as_deref() == Some(id)))
}

/// The security-group operations Reflex needs. The SDK sits behind it so that the
/// function is tested without the cloud and the client is tested on its own.
#[async_trait]
pub trait SecurityGroups: Send + Sync {
    /// Current state of the given groups. Groups that no longer exist are absent.
    async fn describe(&self, group_ids: &[String]) -> Result<Vec<GroupState>, CloudError>;
    /// Every group in the region, with its ingress rules (paginated).
    async fn all(&self) -> Result<Vec<GroupState>, CloudError>;
    /// Revokes one ingress rule by id. `NotFound` when it is already gone.
    async fn revoke_ingress(&self, group_id: &str, rule_id: &str) -> Result<(), CloudError>;
    /// Authorises one ingress rule; returns the new rule id. An identical existing rule
    /// counts as success (`None`).
    async fn authorize_ingress(
        &self,
        group_id: &str,
        rule: &RuleSpec,
        description: &str,
    ) -> Result<Option<String>, CloudError>;
}

/// [`Ec2SecurityGroups`] built on first use from a [`LazySdk`](crate::LazySdk).
#[derive(Debug, Clone, Default)]
pub struct LazyEc2 {
    sdk: crate::LazySdk,
    client: std::sync::Arc<tokio::sync::OnceCell<Ec2SecurityGroups>>,
}

impl LazyEc2 {
    pub fn new(sdk: crate::LazySdk) -> Self {
        Self {
            sdk,
            client: std::sync::Arc::default(),
        }
    }

    async fn get(&self) -> &Ec2SecurityGroups {
        self.client
            .get_or_init(|| async { Ec2SecurityGroups::from_sdk(self.sdk.get().await) })
            .await
    }
}

#[async_trait]
impl SecurityGroups for LazyEc2 {
    async fn describe(&self, group_ids: &[String]) -> Result<Vec<GroupState>, CloudError> {
        self.get().await.describe(group_ids).await
    }
    async fn all(&self) -> Result<Vec<GroupState>, CloudError> {
        self.get().await.all().await
    }
    async fn revoke_ingress(&self, group_id: &str, rule_id: &str) -> Result<(), CloudError> {
        self.get().await.revoke_ingress(group_id, rule_id).await
    }
    async fn authorize_ingress(
        &self,
        group_id: &str,
        rule: &RuleSpec,
        description: &str,
    ) -> Result<Option<String>, CloudError> {
        self.get()
            .await
            .authorize_ingress(group_id, rule, description)
            .await
    }
}

/// [`SecurityGroups`] on the AWS SDK.
#[derive(Debug, Clone)]
pub struct Ec2SecurityGroups {
    client: Client,
}

impl Ec2SecurityGroups {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client from the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_types::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }

    async fn rules(
        &self,
        group_ids: Option<&[String]>,
    ) -> Result<Vec<SecurityGroupRule>, CloudError> {
        let mut req = self
            .client
            .describe_security_group_rules()
            .max_results(1000);
        if let Some(ids) = group_ids {
            req = req.filters(
                Filter::builder()
                    .name("group-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            );
        }
        let mut pages = req.into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            out.extend(page.security_group_rules.unwrap_or_default());
        }
        Ok(out)
    }

    /// The entries of every managed prefix list an ingress rule references, so the
    /// policy judges what the list opens, not its id. A list that is gone (or not
    /// shared with this account any more) has no entries.
    async fn prefix_lists(&self, rules: &[SecurityGroupRule]) -> Result<PrefixLists, CloudError> {
        let ids: std::collections::BTreeSet<&str> = rules
            .iter()
            .filter(|r| r.is_egress != Some(true))
            .filter_map(|r| r.prefix_list_id.as_deref())
            .collect();
        let mut out = PrefixLists::new();
        for id in ids {
            let mut pages = self
                .client
                .get_managed_prefix_list_entries()
                .prefix_list_id(id)
                .max_results(100)
                .into_paginator()
                .send();
            let mut entries = Vec::new();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(p) => entries.extend(
                        p.entries
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|e| e.cidr?.trim().parse::<ipnet::IpNet>().ok())
                            .map(|n| n.trunc()),
                    ),
                    Err(e) => {
                        let e = classify(&e);
                        if e.is_not_found() {
                            break;
                        }
                        return Err(e);
                    }
                }
            }
            out.insert(id.to_string(), entries);
        }
        Ok(out)
    }

    async fn describe_one(
        &self,
        group_id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::SecurityGroup>, CloudError> {
        match self
            .client
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.security_groups.unwrap_or_default().into_iter().next()),
            Err(e) => {
                let e = classify(&e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }
}

#[async_trait]
impl SecurityGroups for Ec2SecurityGroups {
    async fn describe(&self, group_ids: &[String]) -> Result<Vec<GroupState>, CloudError> {
        let mut groups = Vec::new();
        for id in group_ids {
            if let Some(g) = self.describe_one(id).await? {
                groups.push(g);
            }
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = groups.iter().filter_map(|g| g.group_id.clone()).collect();
        let rules = self.rules(Some(&ids)).await?;
        let lists = self.prefix_lists(&rules).await?;
        Ok(assemble(groups, &rules, &lists))
    }

    async fn all(&self) -> Result<Vec<GroupState>, CloudError> {
        let mut pages = self
            .client
            .describe_security_groups()
            .max_results(1000)
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            groups.extend(page.security_groups.unwrap_or_default());
        }
        let rules = self.rules(None).await?;
        let lists = self.prefix_lists(&rules).await?;
        Ok(assemble(groups, &rules, &lists))
    }

    async fn revoke_ingress(&self, group_id: &str, rule_id: &str) -> Result<(), CloudError> {
        let out = self
            .client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .security_group_rule_ids(rule_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // EC2 answers `return=false` (or lists the rule as unknown) instead of an error
        // for rules that were already gone.
        let unknown = out
            .unknown_ip_permissions
            .as_ref()
            .is_some_and(|u| !u.is_empty());
        if out.r#return == Some(false) || unknown {
            return Err(CloudError::new(
                reflex_core::CloudErrorKind::NotFound,
                "InvalidPermission.NotFound",
                format!("rule {rule_id} is not in {group_id}"),
            ));
        }
        Ok(())
    }

    async fn authorize_ingress(
        &self,
        group_id: &str,
        rule: &RuleSpec,
        description: &str,
    ) -> Result<Option<String>, CloudError> {
        let res = self
            .client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(to_permission(rule, description))
            .send()
            .await;
        match res {
            Ok(out) => Ok(out
                .security_group_rules
                .unwrap_or_default()
                .into_iter()
                .find_map(|r| r.security_group_rule_id)),
            Err(e) => {
                let e = classify(&e);
                if e.code == "InvalidPermission.Duplicate" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn assemble(
    groups: Vec<aws_sdk_ec2::types::SecurityGroup>,
    rules: &[SecurityGroupRule],
    lists: &PrefixLists,
) -> Vec<GroupState> {
    groups
        .into_iter()
        .map(|g| {
            let id = g.group_id.unwrap_or_default();
            let ingress: Vec<SgRule> = rules
                .iter()
                .filter(|r| r.group_id.as_deref() == Some(id.as_str()) && r.is_egress != Some(true))
                .filter_map(to_rule)
                .collect();
            let prefix_lists = ingress
                .iter()
                .filter_map(|r| match &r.spec.source {
                    Source::PrefixList(pl) => Some((pl.clone(), lists.get(pl)?.clone())),
                    _ => None,
                })
                .collect();
            GroupState {
                tags: g
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
                    .collect::<BTreeMap<_, _>>(),
                id,
                name: g.group_name.unwrap_or_default(),
                vpc_id: g.vpc_id,
                owner_id: g.owner_id,
                ingress,
                prefix_lists,
            }
        })
        .collect()
}

/// Converts an SDK rule; rules with an unknown protocol or no source are skipped
/// (they cannot be judged, so they are never touched).
fn to_rule(r: &SecurityGroupRule) -> Option<SgRule> {
    let protocol = Protocol::parse(r.ip_protocol.as_deref()?)?;
    let ports = PortSpan::from_ec2(
        protocol,
        r.from_port.map(i64::from),
        r.to_port.map(i64::from),
    );
    let source = if let Some(c) = r.cidr_ipv4.as_deref().or(r.cidr_ipv6.as_deref()) {
        Source::parse_cidr(c)?
    } else if let Some(pl) = &r.prefix_list_id {
        Source::PrefixList(pl.clone())
    } else {
        Source::Group(r.referenced_group_info.as_ref()?.group_id.clone()?)
    };
    Some(SgRule {
        id: r.security_group_rule_id.clone()?,
        spec: RuleSpec::new(protocol, ports, source),
        description: r.description.clone().filter(|d| !d.is_empty()),
    })
}

fn to_permission(rule: &RuleSpec, description: &str) -> IpPermission {
    let (from, to) = rule.ports.ec2_bounds();
    let mut p = IpPermission::builder().ip_protocol(rule.protocol.to_string());
    if rule.protocol != Protocol::All {
        p = p.from_port(from).to_port(to);
    }
    let desc = description.to_string();
    match &rule.source {
        Source::Cidr(net @ ipnet::IpNet::V4(_)) => {
            p = p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(net.to_string())
                    .description(desc)
                    .build(),
            );
        }
        Source::Cidr(net) => {
            p = p.ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(net.to_string())
                    .description(desc)
                    .build(),
            );
        }
        Source::PrefixList(id) => {
            p = p.prefix_list_ids(
                PrefixListId::builder()
                    .prefix_list_id(id)
                    .description(desc)
                    .build(),
            );
        }
        // Azure-only: never built from EC2 data. EC2 rejects a permission without a
        // source, and the outcome records that failure.
        Source::ServiceTag(_) => {}
        Source::Group(id) => {
            p = p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(id)
                    .description(desc)
                    .build(),
            );
        }
    }
    p.build()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_ec2::config::retry::RetryConfig;
    use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_ec2::operation::revoke_security_group_ingress::RevokeSecurityGroupIngressOutput;
    use aws_smithy_mocks::{
        MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use reflex_core::CloudErrorKind;

    use super::*;

    /// A real SDK client whose HTTP layer answers from `rules`, with the standard
    /// retry strategy (short backoff so the suite stays fast).
    fn client(rules: &[&Rule], mode: RuleMode, attempts: u32) -> Client {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(mode);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        Client::from_conf(conf)
    }

    fn ec2_error(status: u16, code: &str) -> HttpResponse {
        let body = format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{code} happened</Message></Error></Errors><RequestID>r</RequestID></Response>"
        );
        HttpResponse::new(
            StatusCode::try_from(status).unwrap_or_else(|_| unreachable!()),
            SdkBody::from(body),
        )
    }

    #[tokio::test]
    async fn revoking_a_rule_that_is_gone_maps_to_not_found() {
        let rule = mock!(Client::revoke_security_group_ingress)
            .then_http_response(|| ec2_error(400, "InvalidPermission.NotFound"));
        let sgs = Ec2SecurityGroups::new(client(&[&rule], RuleMode::Sequential, 1));
        let e = sgs.revoke_ingress("sg-1", "sgr-1").await;
        assert_eq!(e.map_err(|e| e.kind), Err(CloudErrorKind::NotFound));
    }

    #[tokio::test]
    async fn revoke_answered_with_return_false_is_not_found() {
        let rule = mock!(Client::revoke_security_group_ingress).then_output(|| {
            RevokeSecurityGroupIngressOutput::builder()
                .r#return(false)
                .build()
        });
        let sgs = Ec2SecurityGroups::new(client(&[&rule], RuleMode::Sequential, 1));
        let e = sgs.revoke_ingress("sg-1", "sgr-1").await;
        assert_eq!(e.map_err(|e| e.kind), Err(CloudErrorKind::NotFound));
    }

    #[tokio::test]
    async fn throttling_is_retried_by_the_sdk_then_succeeds() {
        let rule = mock!(Client::revoke_security_group_ingress)
            .sequence()
            .http_response(|| ec2_error(503, "RequestLimitExceeded"))
            .output(|| {
                RevokeSecurityGroupIngressOutput::builder()
                    .r#return(true)
                    .build()
            })
            .build();
        let sgs = Ec2SecurityGroups::new(client(&[&rule], RuleMode::Sequential, 3));
        assert_eq!(sgs.revoke_ingress("sg-1", "sgr-1").await, Ok(()));
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn persistent_throttling_is_a_retryable_failure() {
        let throttled = mock!(Client::revoke_security_group_ingress)
            .then_http_response(|| ec2_error(503, "RequestLimitExceeded"));
        let sgs = Ec2SecurityGroups::new(client(&[&throttled], RuleMode::MatchAny, 2));
        let e = sgs.revoke_ingress("sg-1", "sgr-1").await.err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(CloudErrorKind::Throttled));
        assert!(e.is_some_and(|e| e.is_retryable()));
        assert_eq!(throttled.num_calls(), 2);
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        let broken = mock!(Client::revoke_security_group_ingress)
            .then_http_response(|| ec2_error(500, "InternalError"));
        let sgs = Ec2SecurityGroups::new(client(&[&broken], RuleMode::MatchAny, 2));
        let e = sgs.revoke_ingress("sg-1", "sgr-1").await.err();
        assert_eq!(e.map(|e| e.kind), Some(CloudErrorKind::Transient));
        assert_eq!(broken.num_calls(), 2);
    }

    #[tokio::test]
    async fn access_denied_is_not_retryable() {
        let denied = mock!(Client::revoke_security_group_ingress)
            .then_http_response(|| ec2_error(403, "UnauthorizedOperation"));
        let sgs = Ec2SecurityGroups::new(client(&[&denied], RuleMode::MatchAny, 3));
        let e = sgs.revoke_ingress("sg-1", "sgr-1").await.err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(CloudErrorKind::Denied));
        assert!(!e.is_some_and(|e| e.is_retryable()));
        assert_eq!(denied.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_deleted_group_is_absent_not_an_error() {
        let gone = mock!(Client::describe_security_groups)
            .then_http_response(|| ec2_error(400, "InvalidGroup.NotFound"));
        let sgs = Ec2SecurityGroups::new(client(&[&gone], RuleMode::Sequential, 1));
        let groups = sgs.describe(&["sg-gone".to_string()]).await;
        assert_eq!(groups, Ok(Vec::new()));
    }

    #[tokio::test]
    async fn a_duplicate_authorize_counts_as_success() {
        let dup = mock!(Client::authorize_security_group_ingress)
            .then_http_response(|| ec2_error(400, "InvalidPermission.Duplicate"));
        let sgs = Ec2SecurityGroups::new(client(&[&dup], RuleMode::Sequential, 1));
        let rule = RuleSpec::new(
            Protocol::Tcp,
            PortSpan::Range(23, 3388),
            Source::parse_cidr("0.0.0.0/0").unwrap_or(Source::Group("x".into())),
        );
        assert_eq!(
            sgs.authorize_ingress("sg-1", &rule, "reflex").await,
            Ok(None)
        );
    }
}
