//! The human report: one clear message per outcome.

use reflex_core::{ActionRecord, ActionStatus, GroupState, Outcome, Signal, SignalKind};
use reflex_notify::{Message, Severity};
use serde_json::{Value, json};

/// What was re-read, for the outcome: each group with its id, name, tags and rule count.
pub fn observed_summary(signal: &Signal, observed: &[GroupState]) -> Value {
    let groups: Vec<Value> = match &signal.kind {
        // A sweep reads every group; list only counts to keep the outcome small.
        SignalKind::Sweep => return json!({"groups": observed.len(), "rules": observed.iter().map(|g| g.ingress.len()).sum::<usize>()}),
        _ => observed.iter().map(|g| json!({"id": g.id, "name": g.name, "vpc_id": g.vpc_id, "tags": g.tags, "ingress": g.ingress})).collect(),
    };
    json!({"groups": groups})
}

/// The `ignored` reason when the plan is empty.
pub fn nothing_to_do(signal: &Signal, observed: &[GroupState]) -> String {
    match &signal.kind {
        SignalKind::IngressOpened { group_id, .. }
        | SignalKind::GroupNonCompliant { group_id, .. }
            if !observed.iter().any(|g| &g.id == group_id) =>
        {
            format!("{group_id} no longer exists")
        }
        SignalKind::Sweep => format!(
            "no rule opens a forbidden port to the world in {} group(s)",
            observed.len()
        ),
        _ => "no rule opens a forbidden port to the world".into(),
    }
}

fn group_label(id: &str, observed: &[GroupState]) -> String {
    match observed.iter().find(|g| g.id == id) {
        Some(g) if !g.name.is_empty() => format!("{id} ({})", g.name),
        _ => id.to_string(),
    }
}

fn rule_text(detail: &Value) -> String {
    let proto = detail["protocol"].as_str().unwrap_or("?");
    let from = detail["from_port"].as_i64().unwrap_or(-1);
    let to = detail["to_port"].as_i64().unwrap_or(-1);
    let src = ["cidr", "prefix_list_id", "source_group_id"]
        .iter()
        .find_map(|k| detail[*k].as_str())
        .unwrap_or("?");
    let what = match (proto, from, to) {
        ("-1", _, _) => "all traffic".to_string(),
        (p, -1, _) => format!("{p}/all ports"),
        (p, a, b) if a == b => format!("{p}/{a}"),
        (p, a, b) => format!("{p}/{a}-{b}"),
    };
    let id = detail["rule_id"]
        .as_str()
        .map(|i| format!(" [{i}]"))
        .unwrap_or_default();
    format!("{what} from {src}{id}")
}

fn action_line(a: &ActionRecord) -> String {
    let verb = match (a.action.as_str(), a.status) {
        ("revoke_ingress", ActionStatus::Done) => ":white_check_mark: Revoked",
        ("revoke_ingress", ActionStatus::Planned) => ":large_blue_circle: Would revoke",
        ("revoke_ingress", ActionStatus::Failed) => ":x: Failed to revoke",
        ("revoke_ingress", ActionStatus::Skipped) => ":fast_forward: Left",
        (_, ActionStatus::Done) => ":white_check_mark: Re-authorised",
        (_, ActionStatus::Planned) => ":large_blue_circle: Would re-authorise",
        (_, ActionStatus::Failed) => ":x: Failed to re-authorise",
        (_, ActionStatus::Skipped) => ":fast_forward: Did not re-authorise",
    };
    let tail = match (a.status, &a.error) {
        (ActionStatus::Failed, Some(e)) => format!(": {e}"),
        (ActionStatus::Skipped, _) => format!(" ({})", a.reason),
        _ => format!(": {}", a.reason),
    };
    format!("{verb} {} on {}{tail}", rule_text(&a.detail), a.target)
}

/// Builds the report for a noteworthy outcome.
pub fn message(signal: &Signal, observed: &[GroupState], outcome: &Outcome) -> Message {
    let count = |s: ActionStatus| {
        outcome
            .actions
            .iter()
            .filter(|a| a.action == "revoke_ingress" && a.status == s)
            .count()
    };
    let (done, planned, failed) = (
        count(ActionStatus::Done),
        count(ActionStatus::Planned),
        count(ActionStatus::Failed),
    );
    let mut targets: Vec<&str> = outcome.actions.iter().map(|a| a.target.as_str()).collect();
    targets.dedup();
    let place = match targets.as_slice() {
        [one] => group_label(one, observed),
        many => format!("{} security groups", many.len()),
    };
    let region = signal
        .region
        .clone()
        .unwrap_or_else(|| "unknown region".into());
    let rules = |n: usize| {
        if n == 1 {
            "1 world-open rule".to_string()
        } else {
            format!("{n} world-open rules")
        }
    };
    let (severity, title) = if failed > 0 {
        (
            Severity::Failed,
            format!("Could not close {} on {place} ({region})", rules(failed)),
        )
    } else if outcome.dry_run {
        (
            Severity::Planned,
            format!("Would close {} on {place} ({region})", rules(planned)),
        )
    } else {
        (
            Severity::Remediated,
            format!("Closed {} on {place} ({region})", rules(done)),
        )
    };

    let actor = signal.actor.clone().unwrap_or_default();
    let who = actor
        .arn
        .clone()
        .unwrap_or_else(|| "unknown principal".into());
    let summary = match &signal.kind {
        SignalKind::IngressOpened { group_id, opened } => {
            let what: Vec<String> = opened
                .iter()
                .filter_map(|o| o.spec.as_ref().map(|s| s.describe()))
                .collect();
            let api = signal.trigger.rsplit('/').next().unwrap_or("an API call");
            format!(
                "{who} called {api} on {}, opening: {}.",
                group_label(group_id, observed),
                if what.is_empty() {
                    "rules not listed in the event".to_string()
                } else {
                    what.join(", ")
                }
            )
        }
        SignalKind::GroupNonCompliant {
            group_id,
            rule_name,
        } => format!(
            "AWS Config rule {rule_name} reported {} as NON_COMPLIANT.",
            group_label(group_id, observed)
        ),
        SignalKind::Sweep => format!(
            "The scheduled sweep checked {} security group(s) in {region}.",
            observed.len()
        ),
    };

    let mut fields = Vec::new();
    if signal.actor.is_some() {
        fields.push(("Who".to_string(), who));
        if let Some(ip) = actor.source_ip {
            fields.push(("Source IP".into(), ip));
        }
        if let Some(by) = actor.invoked_by {
            fields.push(("Invoked by".into(), by));
        }
    }
    fields.push((
        "Account".into(),
        signal.account.clone().unwrap_or_else(|| "unknown".into()),
    ));
    fields.push(("Region".into(), region));
    if let [one] = targets.as_slice() {
        fields.push(("Security group".into(), group_label(one, observed)));
    }
    fields.push(("Trigger".into(), signal.trigger.clone()));

    let lines: Vec<String> = outcome.actions.iter().map(action_line).collect();
    let mut footer = vec![format!("reflex {}", outcome.function)];
    if let Some(id) = &signal.event_id {
        footer.push(format!("event {id}"));
    }
    if let (Some(r), [one]) = (&signal.region, targets.as_slice()) {
        footer.push(format!(
            "https://{r}.console.aws.amazon.com/ec2/home?region={r}#SecurityGroup:groupId={one}"
        ));
    }
    Message {
        severity,
        title,
        banner: outcome
            .dry_run
            .then(|| "DRY RUN: nothing was changed. These actions are planned only.".to_string()),
        summary,
        fields,
        sections: vec![("What Reflex did".into(), lines)],
        footer,
    }
}
