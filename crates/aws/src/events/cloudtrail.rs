//! CloudTrail "AWS API Call via CloudTrail" events for security-group ingress changes.
//!
//! Real events have quirks this module handles:
//! - EC2 wraps lists as `{"items": [...]}`, and empty lists arrive as `{}`.
//! - Calls made through CloudFormation carry no `requestParameters.groupId`; the group
//!   and rule ids are only in `responseElements.securityGroupRuleSet.items[]`.
//! - IPv6 ranges are `ipv6Ranges.items[].cidrIpv6`; `ipProtocol` may be `"-1"`.
//! - Failed calls carry `errorCode` and changed nothing.
//! - `ModifySecurityGroupRules` uses the PascalCase request shape of the newer API.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::{
    Actor, OpenedRule, ParseError, Parsed, PortSpan, Protocol, RuleSpec, SignalKind, Source,
};
use serde::Deserialize;
use serde_json::Value;

use super::{signal, typed};

const AUTHORIZE: &str = "AuthorizeSecurityGroupIngress";
const MODIFY: &str = "ModifySecurityGroupRules";

/// A CloudTrail record (`detail` of "AWS API Call via CloudTrail" and "AWS Console
/// Sign In via CloudTrail"): the fields Reflex reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Detail {
    pub event_name: String,
    #[serde(default)]
    pub event_time: Option<String>,
    #[serde(default)]
    pub additional_event_data: Option<Value>,
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default)]
    pub recipient_account_id: Option<String>,
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub user_identity: Option<UserIdentity>,
    #[serde(default)]
    pub request_parameters: Option<Value>,
    #[serde(default)]
    pub response_elements: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserIdentity {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub invoked_by: Option<String>,
}

/// EC2's list wrapper. `{}` and `null` are an empty list.
#[derive(Debug, Deserialize)]
struct Items<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Items<T>>::deserialize(d)?
        .unwrap_or_default()
        .items)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeRequest {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default, deserialize_with = "items")]
    ip_permissions: Vec<IpPermission>,
    // The legacy single-rule form: ipProtocol/fromPort/toPort/cidrIp at the top.
    #[serde(default)]
    ip_protocol: Option<String>,
    #[serde(default)]
    from_port: Option<i64>,
    #[serde(default)]
    to_port: Option<i64>,
    #[serde(default)]
    cidr_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpPermission {
    ip_protocol: String,
    #[serde(default)]
    from_port: Option<i64>,
    #[serde(default)]
    to_port: Option<i64>,
    #[serde(default, deserialize_with = "items")]
    ip_ranges: Vec<IpRange>,
    #[serde(default, deserialize_with = "items")]
    ipv6_ranges: Vec<Ipv6Range>,
    #[serde(default, deserialize_with = "items")]
    prefix_list_ids: Vec<PrefixListId>,
    #[serde(default, deserialize_with = "items")]
    groups: Vec<GroupPair>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpRange {
    cidr_ip: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ipv6Range {
    cidr_ipv6: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrefixListId {
    prefix_list_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupPair {
    #[serde(default)]
    group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeResponse {
    #[serde(default, deserialize_with = "items")]
    security_group_rule_set: Vec<ResponseRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseRule {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    security_group_rule_id: Option<String>,
    #[serde(default)]
    is_egress: Option<bool>,
    #[serde(flatten)]
    rule: FlatRule,
}

/// A rule's body as the newer EC2 API spells it: camelCase in responses, PascalCase
/// in `ModifySecurityGroupRules` requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlatRule {
    #[serde(default, alias = "IpProtocol")]
    ip_protocol: Option<String>,
    #[serde(default, alias = "FromPort")]
    from_port: Option<i64>,
    #[serde(default, alias = "ToPort")]
    to_port: Option<i64>,
    #[serde(default, alias = "CidrIpv4")]
    cidr_ipv4: Option<String>,
    #[serde(default, alias = "CidrIpv6")]
    cidr_ipv6: Option<String>,
    #[serde(default, alias = "PrefixListId")]
    prefix_list_id: Option<String>,
    #[serde(default, alias = "ReferencedGroupId")]
    referenced_group_id: Option<String>,
}

impl FlatRule {
    /// What the rule opens, when the body says; `None` when it names no protocol or
    /// source.
    fn spec(&self, path: &str) -> Result<Option<RuleSpec>, ParseError> {
        let Some(proto) = &self.ip_protocol else {
            return Ok(None);
        };
        let protocol = parse_protocol(proto, &format!("{path}.ipProtocol"))?;
        let ports = PortSpan::from_ec2(protocol, self.from_port, self.to_port);
        let source = if let Some(c) = self.cidr_ipv4.as_ref().or(self.cidr_ipv6.as_ref()) {
            Source::parse_cidr(c).ok_or_else(|| {
                ParseError::at(format!("{path}.cidrIpv4"), format!("'{c}' is not a CIDR"))
            })?
        } else if let Some(pl) = &self.prefix_list_id {
            Source::PrefixList(pl.clone())
        } else if let Some(g) = &self.referenced_group_id {
            Source::Group(g.clone())
        } else {
            return Ok(None);
        };
        Ok(Some(RuleSpec::new(protocol, ports, source)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModifyEnvelope {
    modify_security_group_rules_request: ModifyRequest,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModifyRequest {
    group_id: String,
    security_group_rule: OneOrMany<ModifyRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModifyRule {
    security_group_rule_id: String,
    #[serde(default)]
    security_group_rule: Option<FlatRule>,
}

/// Parses a CloudTrail EventBridge event into an `IngressOpened` signal.
pub fn parse(env: &EventBridgeEvent<Value>) -> Result<Parsed, ParseError> {
    let d: Detail = typed(env.detail.clone(), "detail")?;
    let trigger = format!("aws.cloudtrail/{}", d.event_name);
    if d.event_source
        .as_deref()
        .is_some_and(|s| s != "ec2.amazonaws.com")
    {
        return Ok(ignored(trigger, "not an EC2 API call"));
    }
    if let Some(code) = &d.error_code {
        let msg = d.error_message.as_deref().unwrap_or("");
        return Ok(ignored(
            trigger,
            &format!(
                "the call failed ({code}{}{msg}): nothing was opened",
                if msg.is_empty() { "" } else { ": " }
            ),
        ));
    }
    let request = d.request_parameters.clone().unwrap_or(Value::Null);
    let (group_id, opened) = match d.event_name.as_str() {
        AUTHORIZE => authorize(request, d.response_elements.clone())?,
        MODIFY => modify(request)?,
        other => {
            return Ok(ignored(
                trigger,
                &format!(
                    "{other} does not open ingress; close-open-ports handles {AUTHORIZE} and {MODIFY}"
                ),
            ));
        }
    };
    check_ids(
        &group_id,
        d.aws_region.as_deref(),
        "detail.requestParameters.groupId",
        "detail.awsRegion",
    )?;
    let mut s = signal(env, trigger, SignalKind::IngressOpened { group_id, opened });
    s.event_id = d.event_id.or(s.event_id);
    s.region = d.aws_region.or(s.region);
    s.account = d.recipient_account_id.or(s.account);
    let identity = d.user_identity;
    s.actor = Some(Actor {
        arn: identity.as_ref().and_then(|i| i.arn.clone()),
        identity_type: identity.as_ref().and_then(|i| i.kind.clone()),
        source_ip: d.source_ip_address,
        invoked_by: identity.and_then(|i| i.invoked_by),
        user_agent: d.user_agent,
    });
    Ok(Parsed::Signal(Box::new(s)))
}

fn ignored(trigger: String, reason: &str) -> Parsed {
    Parsed::Ignored {
        trigger,
        reason: reason.to_string(),
    }
}

type Opened = (String, Vec<OpenedRule>);

/// The group id and region go into API calls and console links: they must match their
/// formats exactly, or the event is bad input.
pub(crate) fn check_ids(
    group_id: &str,
    region: Option<&str>,
    group_at: &str,
    region_at: &str,
) -> Result<(), ParseError> {
    if !reflex_core::ids::is_security_group_id(group_id) {
        return Err(ParseError::at(
            group_at,
            format!(
                "`{}` is not a security-group id (sg-…)",
                group_id.escape_debug()
            ),
        ));
    }
    if let Some(r) = region.filter(|r| !reflex_core::ids::is_region(r)) {
        return Err(ParseError::at(
            region_at,
            format!("`{}` is not an AWS region", r.escape_debug()),
        ));
    }
    Ok(())
}

fn authorize(request: Value, response: Option<Value>) -> Result<Opened, ParseError> {
    const REQ: &str = "detail.requestParameters";
    const RESP: &str = "detail.responseElements";
    let req: AuthorizeRequest = typed(request, REQ)?;
    let resp: Option<AuthorizeResponse> = match response {
        Some(v @ Value::Object(_)) => Some(typed(v, RESP)?),
        _ => None,
    };
    let rule_set = resp.map(|r| r.security_group_rule_set).unwrap_or_default();
    let ingress: Vec<&ResponseRule> = rule_set
        .iter()
        .filter(|r| r.is_egress != Some(true))
        .collect();

    let group_id = req
        .group_id
        .clone()
        .or_else(|| ingress.iter().find_map(|r| r.group_id.clone()))
        .ok_or_else(|| {
            ParseError::at(
                format!("{REQ}.groupId"),
                "missing, and responseElements.securityGroupRuleSet names no group",
            )
        })?;
    let mut opened = Vec::new();
    for (i, r) in ingress.iter().enumerate() {
        if r.group_id.as_deref().is_some_and(|g| g != group_id) {
            continue;
        }
        let path = format!("{RESP}.securityGroupRuleSet.items[{i}]");
        opened.push(OpenedRule {
            rule_id: r.security_group_rule_id.clone(),
            spec: r.rule.spec(&path)?,
        });
    }

    let mut reported = Vec::new();
    for (i, p) in req.ip_permissions.iter().enumerate() {
        let path = format!("{REQ}.ipPermissions.items[{i}].ipProtocol");
        let protocol = parse_protocol(&p.ip_protocol, &path)?;
        let ports = PortSpan::from_ec2(protocol, p.from_port, p.to_port);
        let sources = p
            .ip_ranges
            .iter()
            .map(|r| (r.cidr_ip.as_str(), "ipRanges"))
            .chain(
                p.ipv6_ranges
                    .iter()
                    .map(|r| (r.cidr_ipv6.as_str(), "ipv6Ranges")),
            );
        for (j, (cidr, field)) in sources.enumerate() {
            let source = Source::parse_cidr(cidr).ok_or_else(|| {
                ParseError::at(
                    format!("{REQ}.ipPermissions.items[{i}].{field}"),
                    format!("'{cidr}' (source #{j}) is not a CIDR"),
                )
            })?;
            reported.push(RuleSpec::new(protocol, ports, source));
        }
        for pl in &p.prefix_list_ids {
            reported.push(RuleSpec::new(
                protocol,
                ports,
                Source::PrefixList(pl.prefix_list_id.clone()),
            ));
        }
        for g in p.groups.iter().filter_map(|g| g.group_id.clone()) {
            reported.push(RuleSpec::new(protocol, ports, Source::Group(g)));
        }
    }
    if let (Some(proto), Some(cidr)) = (&req.ip_protocol, &req.cidr_ip) {
        let protocol = parse_protocol(proto, &format!("{REQ}.ipProtocol"))?;
        let source = Source::parse_cidr(cidr).ok_or_else(|| {
            ParseError::at(format!("{REQ}.cidrIp"), format!("'{cidr}' is not a CIDR"))
        })?;
        reported.push(RuleSpec::new(
            protocol,
            PortSpan::from_ec2(protocol, req.from_port, req.to_port),
            source,
        ));
    }
    // The response names each rule with its id; the request is the fallback for
    // events recorded without a rule set.
    if opened.is_empty() {
        opened = reported
            .into_iter()
            .map(|spec| OpenedRule {
                rule_id: None,
                spec: Some(spec),
            })
            .collect();
    }
    Ok((group_id, opened))
}

fn modify(request: Value) -> Result<Opened, ParseError> {
    const REQ: &str = "detail.requestParameters";
    let env: ModifyEnvelope = typed(request, REQ)?;
    let req = env.modify_security_group_rules_request;
    let mut opened = Vec::new();
    for (i, r) in req.security_group_rule.into_vec().into_iter().enumerate() {
        let path = format!(
            "{REQ}.ModifySecurityGroupRulesRequest.SecurityGroupRule[{i}].SecurityGroupRule"
        );
        let spec = match &r.security_group_rule {
            Some(body) => body.spec(&path)?,
            None => None,
        };
        opened.push(OpenedRule {
            rule_id: Some(r.security_group_rule_id),
            spec,
        });
    }
    Ok((req.group_id, opened))
}

fn parse_protocol(raw: &str, path: &str) -> Result<Protocol, ParseError> {
    Protocol::parse(raw).ok_or_else(|| {
        ParseError::at(
            path,
            format!("'{raw}' is not an IP protocol (tcp, udp, icmp, -1 or a number)"),
        )
    })
}
