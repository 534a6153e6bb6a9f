//! CloudTrail security events through EventBridge: root use, console sign-in
//! failures, access-denied bursts, security-group / NACL / IAM policy changes, and
//! CloudTrail itself being stopped.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use reflex_core::ids::aws_console;
use reflex_core::notice::url_encode;
use reflex_core::{Level, Link, Notice, NoticeKind, NoticeState, Noticed, ParseError};
use serde_json::Value;

use super::{scalar_lines, text_of};
use crate::events::cloudtrail::{Detail, UserIdentity};
use crate::events::typed;

/// Error codes CloudTrail records for a denied call (EC2 prefixes `Client.`).
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "Client.UnauthorizedOperation",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
];

const TRAIL_STOPPED: &[&str] = &["StopLogging", "DeleteTrail"];
const TRAIL_CHANGED: &[&str] = &["UpdateTrail", "PutEventSelectors"];
const SECURITY_GROUP: &[&str] = &[
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "ModifySecurityGroupRules",
];
const NACL: &[&str] = &[
    "CreateNetworkAcl",
    "CreateNetworkAclEntry",
    "DeleteNetworkAcl",
    "DeleteNetworkAclEntry",
    "ReplaceNetworkAclEntry",
    "ReplaceNetworkAclAssociation",
];
/// The CIS benchmark's IAM policy changes.
const IAM_POLICY: &[&str] = &[
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "DeleteUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "PutUserPolicy",
    "CreatePolicy",
    "DeletePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
];

/// The request parameters that name what a call touched.
const RESOURCE_KEYS: &[&str] = &[
    "groupId",
    "groupName",
    "networkAclId",
    "roleName",
    "userName",
    "policyArn",
    "policyName",
    "name",
    "trailName",
];

fn who(id: &UserIdentity) -> String {
    id.arn
        .clone()
        .or_else(|| id.user_name.clone())
        .or_else(|| id.principal_id.clone())
        .unwrap_or_else(|| "an unknown principal".into())
}

fn resource(params: Option<&Value>) -> Option<String> {
    let p = params?;
    RESOURCE_KEYS
        .iter()
        .find_map(|k| text_of(p.get(*k)?).map(|v| format!("{k}={v}")))
}

/// A successful security-group or network-ACL change made by a session of one of
/// `roles` (IAM role ARNs, compared with CloudTrail's `sessionIssuer.arn`): Reflex's own
/// remediation, which the function that made it has reported already. Returns the
/// role and the call. Denied calls, root use and IAM or CloudTrail changes are never
/// matched: those stay reported whoever made them.
pub fn own_change<'a>(event: &Value, roles: &'a [String]) -> Option<(&'a str, String)> {
    if roles.is_empty() || event.get("detail-type")?.as_str()? != "AWS API Call via CloudTrail" {
        return None;
    }
    let d = event.get("detail")?;
    let name = d.get("eventName")?.as_str()?;
    let changed = SECURITY_GROUP.contains(&name) || NACL.contains(&name);
    let failed = d.get("errorCode").is_some_and(|c| !c.is_null());
    let id = d.get("userIdentity")?;
    if !changed || failed || id.get("type")?.as_str()? != "AssumedRole" {
        return None;
    }
    let issuer = id.pointer("/sessionContext/sessionIssuer/arn")?.as_str()?;
    let role = roles.iter().find(|r| r.as_str() == issuer)?;
    Some((role.as_str(), name.to_string()))
}

/// Reads a CloudTrail event for a security notice, or ignores it with the reason.
pub fn parse(env: &EventBridgeEvent<Value>) -> Result<Noticed, ParseError> {
    let mut d: Detail = typed(env.detail.clone(), "detail")?;
    let identity = d.user_identity.take().unwrap_or_default();
    let name = d.event_name.as_str();
    let trigger = format!("aws.cloudtrail/{name}");
    let ignore = |reason: String| {
        Ok(Noticed::Ignored {
            trigger: trigger.clone(),
            reason,
        })
    };
    let is_root = identity.kind.as_deref() == Some("Root");
    let actor = who(&identity);
    let denied = d.error_code.as_deref().is_some_and(|c| DENIED.contains(&c));
    let login_result = d
        .response_elements
        .as_ref()
        .and_then(|r| r.get("ConsoleLogin"))
        .and_then(text_of);
    let (level, title) = if name == "ConsoleLogin" {
        match (login_result.as_deref(), is_root) {
            (Some("Failure"), true) => (Level::Error, "Root console sign-in failed".to_string()),
            (Some("Failure"), false) => (
                Level::Warning,
                format!("Console sign-in failed for {actor}"),
            ),
            (_, true) => (
                Level::Critical,
                "Root account signed in to the console".to_string(),
            ),
            _ => return ignore("a successful console sign-in by a non-root user".into()),
        }
    } else if denied {
        (Level::Error, format!("Access denied bursts: {actor}"))
    } else if is_root && identity.invoked_by.is_none() {
        (Level::Critical, format!("Root account used: {name}"))
    } else if let Some(code) = &d.error_code {
        return ignore(format!("{name} failed ({code}): nothing changed"));
    } else if TRAIL_STOPPED.contains(&name) {
        (Level::Critical, format!("CloudTrail stopped: {name}"))
    } else if TRAIL_CHANGED.contains(&name) {
        (Level::Error, format!("CloudTrail changed: {name}"))
    } else if SECURITY_GROUP.contains(&name) {
        (Level::Warning, format!("Security group changed: {name}"))
    } else if NACL.contains(&name) {
        (Level::Warning, format!("Network ACL changed: {name}"))
    } else if IAM_POLICY.contains(&name) {
        let admin = d
            .request_parameters
            .as_ref()
            .and_then(|p| p.get("policyArn"))
            .and_then(text_of)
            .is_some_and(|a| a.ends_with("/AdministratorAccess"));
        let level = if admin { Level::Error } else { Level::Warning };
        (level, format!("IAM policy changed: {name}"))
    } else {
        (Level::Info, format!("API call: {name}"))
    };
    let account = d
        .recipient_account_id
        .clone()
        .or_else(|| identity.account_id.clone())
        .or_else(|| env.account.clone());
    let region = d.aws_region.clone().or_else(|| env.region.clone());
    let delivery = d
        .event_id
        .clone()
        .map(|id| format!("cloudtrail:{id}"))
        .or_else(|| env.id.clone().map(|id| format!("eventbridge:{id}")))
        .unwrap_or_else(|| {
            format!(
                "cloudtrail:{name}:{}",
                d.event_time.clone().unwrap_or_default()
            )
        });
    let mut n = Notice::new(
        NoticeKind::Cloudtrail,
        trigger,
        level,
        NoticeState::Event,
        title,
        delivery,
    );
    let res = resource(d.request_parameters.as_ref());
    n.place = match (&res, &region) {
        (Some(r), Some(g)) => Some(format!("{r} in {g}")),
        (r, g) => r.clone().or(g.clone()),
    };
    n.account.clone_from(&account);
    n.region.clone_from(&region);
    n.resource.clone_from(&res);
    n.field("Who", Some(actor.clone()));
    n.field("Identity type", identity.kind.clone());
    n.field("Source IP", d.source_ip_address.clone());
    n.field("Account", account);
    n.field("Region", region.clone());
    n.field(
        "Call",
        Some(
            format!("{} {name}", d.event_source.as_deref().unwrap_or_default())
                .trim()
                .to_string(),
        ),
    );
    n.field("Resource", res);
    n.field("Invoked by", identity.invoked_by);
    n.field("User agent", d.user_agent.clone());
    if name == "ConsoleLogin" {
        n.field(
            "MFA used",
            d.additional_event_data
                .as_ref()
                .and_then(|a| a.get("MFAUsed"))
                .and_then(text_of),
        );
    }
    n.field(
        "Error",
        d.error_code.as_ref().map(|c| match &d.error_message {
            Some(m) => format!("{c}: {m}"),
            None => c.clone(),
        }),
    );
    n.field("When", d.event_time.clone());
    let params = d
        .request_parameters
        .as_ref()
        .map(scalar_lines)
        .unwrap_or_default();
    if !params.is_empty() {
        n.reason = Some(format!("Request parameters:\n{}", params.join("\n")));
    }
    if let (Some(id), Some(r)) = (&d.event_id, &region)
        && let Some(url) = aws_console(
            r,
            "cloudtrailv2/home",
            &format!("/events/{}", url_encode(id)),
        )
    {
        n.links.push(Link::new("CloudTrail event", url));
    }
    if denied {
        n.burst_key = Some(format!("denied:{actor}"));
    }
    n.at = d.event_time;
    Ok(Noticed::Notice(Box::new(n)))
}
