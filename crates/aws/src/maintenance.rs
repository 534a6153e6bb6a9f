//! AWS maintenance notices through EventBridge, as a core [`Maintenance`]:
//! Health EC2 scheduled changes, spot interruption warnings, rebalance
//! recommendations, and Auto Scaling terminate lifecycle actions.

use reflex_core::ParseError;
use reflex_core::json::typed;
use reflex_core::maintenance::{Announced, Lifecycle, Maintenance, MaintenanceKind, Phase};
use serde::Deserialize;
use serde_json::Value;

/// The two-minute spot notice, counted from the event's `time`.
const SPOT_NOTICE_SECS: i64 = 120;

#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    event_arn: String,
    service: String,
    event_type_code: String,
    event_type_category: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    status_code: Option<String>,
    #[serde(default)]
    affected_entities: Vec<Entity>,
    #[serde(default)]
    event_description: Vec<Description>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entity {
    entity_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    latest_description: String,
}

#[derive(Debug, Deserialize)]
struct Spot {
    #[serde(rename = "instance-id")]
    instance_id: String,
    #[serde(rename = "instance-action", default)]
    instance_action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LifecycleAction {
    #[serde(default)]
    lifecycle_action_token: Option<String>,
    auto_scaling_group_name: String,
    lifecycle_hook_name: String,
    #[serde(rename = "EC2InstanceId")]
    ec2_instance_id: String,
    lifecycle_transition: String,
}

/// `i-…` from a plain instance id or an instance ARN.
fn instance_id(entity: &str) -> Option<String> {
    let id = entity.rsplit_once("instance/").map_or(entity, |(_, id)| id);
    id.starts_with("i-").then(|| id.to_string())
}

/// `Tue, 24 Nov 2026 02:00:00 GMT` (Health) or RFC 3339 (EventBridge `time`).
fn epoch(text: &str) -> Option<i64> {
    let t = text.trim();
    chrono::DateTime::parse_from_rfc2822(t)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(t))
        .ok()
        .map(|d| d.timestamp())
}

fn ignored(trigger: String, reason: impl Into<String>) -> Announced {
    Announced::Ignored {
        trigger,
        reason: reason.into(),
    }
}

fn maintenance(
    env: &Envelope,
    trigger: String,
    kind: MaintenanceKind,
    targets: Vec<String>,
) -> Maintenance {
    Maintenance {
        cloud: "aws".into(),
        id: env.id.clone(),
        kind,
        phase: Phase::Scheduled,
        targets,
        not_before: None,
        duration_secs: None,
        description: None,
        lifecycle: None,
        trigger,
        scope: env.region.clone(),
    }
}

/// `None` when the payload is not one of the EventBridge notices above.
pub fn parse(v: &Value) -> Option<Result<Announced, ParseError>> {
    let env: Envelope = serde_json::from_value(v.clone()).ok()?;
    let trigger = format!("{}/{}", env.source, env.detail_type);
    let detail = v.get("detail").cloned().unwrap_or(Value::Null);
    let parsed = match (env.source.as_str(), env.detail_type.as_str()) {
        ("aws.health", "AWS Health Event") => {
            typed::<Health>(detail, "detail").map(|h| health(&env, trigger, h))
        }
        ("aws.ec2", "EC2 Spot Instance Interruption Warning") => typed::<Spot>(detail, "detail")
            .map(|s| {
                let mut m = maintenance(
                    &env,
                    trigger,
                    MaintenanceKind::SpotInterruption,
                    vec![s.instance_id],
                );
                m.not_before = env
                    .time
                    .as_deref()
                    .and_then(epoch)
                    .map(|t| t + SPOT_NOTICE_SECS);
                m.description = s
                    .instance_action
                    .map(|a| format!("spot interruption: the instance will {a}"));
                Announced::Maintenance(Box::new(m))
            }),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation") => typed::<Spot>(detail, "detail")
            .map(|s| {
                let m = maintenance(
                    &env,
                    trigger,
                    MaintenanceKind::Rebalance,
                    vec![s.instance_id],
                );
                Announced::Maintenance(Box::new(m))
            }),
        ("aws.autoscaling", "EC2 Instance-terminate Lifecycle Action") => {
            typed::<LifecycleAction>(detail, "detail").map(|l| lifecycle(&env, trigger, l))
        }
        ("aws.autoscaling", "EC2 Instance-launch Lifecycle Action") => Ok(ignored(
            trigger,
            "a launch lifecycle action: nothing to drain",
        )),
        _ => return None,
    };
    Some(parsed)
}

fn health(env: &Envelope, trigger: String, h: Health) -> Announced {
    if h.service != "EC2" || h.event_type_category != "scheduledChange" {
        return ignored(
            trigger,
            format!(
                "{} {}: not an EC2 scheduled change",
                h.service, h.event_type_category
            ),
        );
    }
    let phase = match h.status_code.as_deref() {
        Some("closed") => Phase::Completed,
        Some("open") => Phase::Started,
        _ => Phase::Scheduled,
    };
    let targets: Vec<String> = h
        .affected_entities
        .iter()
        .filter_map(|e| instance_id(&e.entity_value))
        .collect();
    if targets.is_empty() {
        return ignored(
            trigger,
            format!(
                "{}: no EC2 instance among the affected entities",
                h.event_type_code
            ),
        );
    }
    let kind = if h.event_type_code.contains("RETIREMENT") {
        MaintenanceKind::Retirement
    } else {
        MaintenanceKind::Maintenance
    };
    let mut m = maintenance(env, trigger, kind, targets);
    m.id = h.event_arn;
    m.phase = phase;
    m.not_before = h.start_time.as_deref().and_then(epoch);
    m.description = h
        .event_description
        .into_iter()
        .next()
        .map(|d| d.latest_description);
    Announced::Maintenance(Box::new(m))
}

fn lifecycle(env: &Envelope, trigger: String, l: LifecycleAction) -> Announced {
    if l.lifecycle_transition != "autoscaling:EC2_INSTANCE_TERMINATING" {
        return ignored(
            trigger,
            format!(
                "lifecycle transition {}: nothing to drain",
                l.lifecycle_transition
            ),
        );
    }
    let mut m = maintenance(
        env,
        trigger,
        MaintenanceKind::LifecycleTerminate,
        vec![l.ec2_instance_id],
    );
    m.lifecycle = Some(Lifecycle {
        group: l.auto_scaling_group_name,
        hook: l.lifecycle_hook_name,
        token: l.lifecycle_action_token,
    });
    Announced::Maintenance(Box::new(m))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/aws")
            .join(rel);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn one(rel: &str) -> Maintenance {
        match parse(&fixture(rel)).unwrap().unwrap() {
            Announced::Maintenance(m) => *m,
            other => panic!("{rel}: {other:?}"),
        }
    }

    #[test]
    fn health_scheduled_changes_name_their_instances_by_id_or_arn() {
        let m = one("health/ec2-maintenance-entity-arn.json");
        assert_eq!(m.kind, MaintenanceKind::Maintenance);
        assert_eq!(m.phase, Phase::Scheduled);
        assert_eq!(m.targets, ["i-0abc1234def567890", "i-0def5678abc123456"]);
        assert_eq!(m.not_before, epoch("2026-11-24T02:00:00Z"));
        assert!(m.id.starts_with("arn:aws:health:"));
        let r = one("health/ec2-instance-retirement-scheduled.json");
        assert_eq!(r.kind, MaintenanceKind::Retirement);
        assert_eq!(
            one("health/ec2-maintenance-closed.json").phase,
            Phase::Completed
        );
        assert!(matches!(
            parse(&fixture("health/service-issue-open.json"))
                .unwrap()
                .unwrap(),
            Announced::Ignored { .. }
        ));
    }

    #[test]
    fn spot_rebalance_and_lifecycle_notices_read_as_maintenance() {
        let s = one("ec2/spot-interruption-warning.json");
        assert_eq!(s.kind, MaintenanceKind::SpotInterruption);
        assert_eq!(s.targets, ["i-0abc1234def567890"]);
        assert_eq!(
            s.not_before,
            epoch("2026-11-18T14:04:11Z"),
            "two minutes after the warning"
        );
        assert_eq!(
            one("ec2/rebalance-recommendation.json").kind,
            MaintenanceKind::Rebalance
        );
        let l = one("autoscaling/terminate-lifecycle-action.json");
        assert_eq!(l.kind, MaintenanceKind::LifecycleTerminate);
        let hook = l.lifecycle.unwrap();
        assert_eq!(
            (hook.group.as_str(), hook.hook.as_str()),
            ("asg-web", "reflex-drain-before-terminate")
        );
        assert!(hook.token.is_some());
        assert!(matches!(
            parse(&fixture("autoscaling/launch-lifecycle-action.json"))
                .unwrap()
                .unwrap(),
            Announced::Ignored { .. }
        ));
    }

    #[test]
    fn wrong_types_name_the_field_and_other_events_are_not_ours() {
        let mut v = fixture("ec2/spot-interruption-warning.json");
        v["detail"]["instance-id"] = serde_json::json!(7);
        let e = parse(&v).unwrap().unwrap_err();
        assert!(e.to_string().starts_with("detail.instance-id"), "{e}");
        assert!(parse(&fixture("cloudtrail/authorize-mixed-rules.json")).is_none());
        assert!(parse(&serde_json::json!({"hello": 1})).is_none());
    }
}
