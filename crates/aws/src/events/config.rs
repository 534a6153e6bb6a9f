//! AWS Config "Config Rules Compliance Change" events for security-group rules.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::{ParseError, Parsed, SignalKind};
use serde::Deserialize;
use serde_json::Value;

use super::{signal, typed};

/// The managed rules that judge security-group ingress. Security Hub deploys them as
/// `securityhub-<name>-<random suffix>`, conformance packs as `<name>-<suffix>`.
pub const SG_RULES: [&str; 3] = [
    "restricted-ssh",
    "restricted-common-ports",
    "vpc-sg-open-only-to-authorized-ports",
];

/// The `detail` of a "Config Rules Compliance Change" event: the fields Reflex reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Detail {
    pub config_rule_name: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default)]
    pub aws_account_id: Option<String>,
    #[serde(default)]
    pub new_evaluation_result: Option<Evaluation>,
    #[serde(default)]
    pub old_evaluation_result: Option<Evaluation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Evaluation {
    #[serde(default)]
    pub compliance_type: Option<String>,
    #[serde(default)]
    pub annotation: Option<String>,
    #[serde(default)]
    pub result_recorded_time: Option<String>,
    #[serde(default)]
    evaluation_result_identifier: Option<Identifier>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identifier {
    #[serde(default)]
    evaluation_result_qualifier: Option<Qualifier>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Qualifier {
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

/// The managed rule a Config rule name belongs to, if it is one of [`SG_RULES`].
pub fn managed_rule(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_prefix("securityhub-").unwrap_or(&lower);
    SG_RULES.into_iter().find(|rule| {
        base == *rule
            || base
                .strip_prefix(rule)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Parses a compliance change into a `GroupNonCompliant` signal, or ignores it.
pub fn parse(env: &EventBridgeEvent<Value>) -> Result<Parsed, ParseError> {
    let d: Detail = typed(env.detail.clone(), "detail")?;
    let trigger = format!("aws.config/{}", d.config_rule_name);
    let ignored = |reason: String| {
        Ok(Parsed::Ignored {
            trigger: trigger.clone(),
            reason,
        })
    };
    let Some(rule) = managed_rule(&d.config_rule_name) else {
        return ignored(format!(
            "Config rule '{}' does not judge security-group ingress",
            d.config_rule_name
        ));
    };
    let qualifier = d
        .new_evaluation_result
        .as_ref()
        .and_then(|e| e.evaluation_result_identifier.as_ref())
        .and_then(|i| i.evaluation_result_qualifier.as_ref());
    let resource_type = d
        .resource_type
        .clone()
        .or_else(|| qualifier.and_then(|q| q.resource_type.clone()))
        .unwrap_or_default();
    if resource_type != "AWS::EC2::SecurityGroup" {
        return ignored(format!(
            "resource type '{resource_type}' is not a security group"
        ));
    }
    let compliance = d
        .new_evaluation_result
        .as_ref()
        .and_then(|e| e.compliance_type.clone())
        .unwrap_or_else(|| "missing".into());
    if compliance != "NON_COMPLIANT" {
        return ignored(format!("{rule} reports {compliance}: nothing to fix"));
    }
    let group_id = d
        .resource_id
        .or_else(|| qualifier.and_then(|q| q.resource_id.clone()))
        .ok_or_else(|| {
            ParseError::at(
                "detail.resourceId",
                "missing: which group is non-compliant?",
            )
        })?;
    super::cloudtrail::check_ids(
        &group_id,
        d.aws_region.as_deref(),
        "detail.resourceId",
        "detail.awsRegion",
    )?;
    let mut s = signal(
        env,
        trigger,
        SignalKind::GroupNonCompliant {
            group_id,
            rule_name: d.config_rule_name,
        },
    );
    s.region = d.aws_region.or(s.region);
    s.account = d.aws_account_id.or(s.account);
    Ok(Parsed::Signal(Box::new(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_rule_names_match_with_and_without_suffixes() {
        assert_eq!(managed_rule("restricted-ssh"), Some("restricted-ssh"));
        assert_eq!(
            managed_rule("securityhub-restricted-ssh-1a2b3c4d"),
            Some("restricted-ssh")
        );
        assert_eq!(
            managed_rule("securityhub-vpc-sg-open-only-to-authorized-ports-9f8e7d"),
            Some("vpc-sg-open-only-to-authorized-ports")
        );
        assert_eq!(
            managed_rule("restricted-common-ports-conformance-pack-x1"),
            Some("restricted-common-ports")
        );
        assert_eq!(managed_rule("restricted-sshd"), None);
        assert_eq!(managed_rule("s3-bucket-versioning-enabled"), None);
    }
}
