//! WAFv2 IP sets as a block list: addresses added and removed under WAF's
//! optimistic lock (read the set and its lock token, write the whole list back,
//! retry when someone else wrote in between).

use async_trait::async_trait;
use aws_sdk_wafv2::Client;
use aws_sdk_wafv2::types::Scope;
use reflex_core::{CloudError, CloudErrorKind};

use crate::LazySdk;
use crate::errors::classify;

/// Writes retried after a `WAFOptimisticLockException`.
const LOCK_RETRIES: usize = 3;

/// An IP set, from its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSetRef {
    pub arn: String,
    pub name: String,
    pub id: String,
    /// `REGIONAL`, or `CLOUDFRONT` for `global/ipset`.
    pub scope: String,
    /// The region in the ARN, where WAF is called: a regional set's own, `us-east-1`
    /// for a CloudFront (global) set.
    pub region: String,
}

impl IpSetRef {
    /// `arn:aws:wafv2:REGION:ACCOUNT:regional/ipset/NAME/ID` (or `global/ipset/…`).
    pub fn parse(arn: &str) -> Option<Self> {
        let resource = arn.strip_prefix("arn:").and(arn.splitn(6, ':').nth(5))?;
        let mut parts = resource.split('/');
        let scope = match parts.next()? {
            "regional" => "REGIONAL",
            "global" => "CLOUDFRONT",
            _ => return None,
        };
        if parts.next()? != "ipset" {
            return None;
        }
        let (name, id) = (parts.next()?, parts.next()?);
        let region = arn.split(':').nth(3)?;
        (arn.split(':').nth(2) == Some("wafv2")
            && !region.is_empty()
            && !name.is_empty()
            && !id.is_empty()
            && parts.next().is_none())
        .then(|| Self {
            arn: arn.to_string(),
            name: name.to_string(),
            id: id.to_string(),
            scope: scope.to_string(),
            region: region.to_string(),
        })
    }
}

/// The IP-set operations the SSH blocker needs.
#[async_trait]
pub trait IpSets: Send + Sync {
    async fn addresses(&self, set: &IpSetRef) -> Result<Vec<String>, CloudError>;
    /// Adds `cidr`; `false` when it was there already.
    async fn add(&self, set: &IpSetRef, cidr: &str) -> Result<bool, CloudError>;
    /// Removes `cidr`; `false` when it was not there.
    async fn remove(&self, set: &IpSetRef, cidr: &str) -> Result<bool, CloudError>;
}

/// [`IpSets`] on the WAFv2 SDK, called in the IP set's region (a function in
/// eu-west-1 can keep a CloudFront set, which lives in us-east-1).
#[derive(Debug, Clone, Default)]
pub struct SdkIpSets {
    sdk: LazySdk,
}

impl SdkIpSets {
    pub fn new(sdk: LazySdk) -> Self {
        Self { sdk }
    }

    /// A client for `set`'s region; building one makes no call.
    async fn waf(&self, set: &IpSetRef) -> Client {
        let config = aws_sdk_wafv2::config::Builder::from(self.sdk.get().await)
            .region(aws_sdk_wafv2::config::Region::new(set.region.clone()))
            .build();
        Client::from_conf(config)
    }

    async fn read(&self, set: &IpSetRef) -> Result<(Vec<String>, String), CloudError> {
        let out = self
            .waf(set)
            .await
            .get_ip_set()
            .name(&set.name)
            .id(&set.id)
            .scope(Scope::from(set.scope.as_str()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let addresses = out.ip_set.map(|s| s.addresses).unwrap_or_default();
        Ok((addresses, out.lock_token.unwrap_or_default()))
    }

    /// Applies `change` to the list under the lock; `Ok(false)` when it changed nothing.
    async fn change(
        &self,
        set: &IpSetRef,
        change: impl Fn(&mut Vec<String>) -> bool + Send + Sync,
    ) -> Result<bool, CloudError> {
        for _ in 0..LOCK_RETRIES {
            let (mut addresses, token) = self.read(set).await?;
            if !change(&mut addresses) {
                return Ok(false);
            }
            let written = self
                .waf(set)
                .await
                .update_ip_set()
                .name(&set.name)
                .id(&set.id)
                .scope(Scope::from(set.scope.as_str()))
                .set_addresses(Some(addresses))
                .lock_token(token)
                .send()
                .await;
            match written {
                Ok(_) => return Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_waf_optimistic_lock_exception()) =>
                {
                    continue;
                }
                Err(e) => return Err(classify(&e)),
            }
        }
        Err(CloudError::new(
            CloudErrorKind::Throttled,
            "WAFOptimisticLockException",
            format!("{} kept changing under the lock", set.arn),
        ))
    }
}

#[async_trait]
impl IpSets for SdkIpSets {
    async fn addresses(&self, set: &IpSetRef) -> Result<Vec<String>, CloudError> {
        Ok(self.read(set).await?.0)
    }

    async fn add(&self, set: &IpSetRef, cidr: &str) -> Result<bool, CloudError> {
        self.change(set, |list| {
            if list.iter().any(|a| a.eq_ignore_ascii_case(cidr)) {
                false
            } else {
                list.push(cidr.to_string());
                true
            }
        })
        .await
    }

    async fn remove(&self, set: &IpSetRef, cidr: &str) -> Result<bool, CloudError> {
        self.change(set, |list| {
            let before = list.len();
            list.retain(|a| !a.eq_ignore_ascii_case(cidr));
            list.len() != before
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_set_arns_give_name_id_and_scope() {
        let r = IpSetRef::parse(
            "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh/91f365c5-9053-4502-aef5-7b140e2c85db",
        );
        assert_eq!(
            r.map(|r| (r.name, r.id, r.scope, r.region)),
            Some((
                "reflex-ssh".into(),
                "91f365c5-9053-4502-aef5-7b140e2c85db".into(),
                "REGIONAL".into(),
                "us-east-1".into()
            ))
        );
        let g = IpSetRef::parse("arn:aws:wafv2:us-east-1:123456789012:global/ipset/edge/abc");
        assert_eq!(g.map(|g| g.scope), Some("CLOUDFRONT".into()));
        let eu = IpSetRef::parse("arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/x/1");
        assert_eq!(eu.map(|g| g.region), Some("eu-west-1".into()));
        for bad in [
            "",
            "arn:aws:wafv2:us-east-1:1:regional/webacl/x/y",
            "arn:aws:s3:::bucket",
            "arn:aws:wafv2:us-east-1:1:regional/ipset/x",
            "arn:aws:wafv2::1:regional/ipset/x/1",
        ] {
            assert_eq!(IpSetRef::parse(bad), None, "{bad}");
        }
    }
}
