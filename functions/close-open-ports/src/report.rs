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

pub(crate) fn rule_text(detail: &Value) -> String {
    if let Some(ports) = detail["destination_ports"].as_array() {
        return nsg_rule_text(detail, ports);
    }
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

/// `rule allow-ssh-any (tcp/22 from *, priority 100)`.
fn nsg_rule_text(detail: &Value, ports: &[Value]) -> String {
    let list = |v: &[Value]| {
        v.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    let name = detail["name"].as_str().unwrap_or("?");
    let proto = detail["protocol"].as_str().unwrap_or("?");
    let sources = detail["sources"]
        .as_array()
        .map(|s| list(s))
        .unwrap_or_default();
    if ports.is_empty() && sources.is_empty() {
        return format!("rule {name}");
    }
    let priority = detail["priority"]
        .as_u64()
        .map(|p| format!(", priority {p}"))
        .unwrap_or_default();
    format!(
        "rule {name} ({proto}/{} from {sources}{priority})",
        list(ports)
    )
}

fn action_line(a: &ActionRecord, place: &Place) -> String {
    let verbs = match a.action.as_str() {
        "revoke_ingress" => ["Revoked", "Would revoke", "Failed to revoke", "Left"],
        "delete_security_rule" => ["Deleted", "Would delete", "Failed to delete", "Left"],
        _ => [
            "Re-authorised",
            "Would re-authorise",
            "Failed to re-authorise",
            "Did not re-authorise",
        ],
    };
    let (icon, verb) = match a.status {
        ActionStatus::Done => (":white_check_mark:", verbs[0]),
        ActionStatus::Planned => (":large_blue_circle:", verbs[1]),
        ActionStatus::Failed => (":x:", verbs[2]),
        ActionStatus::Skipped => (":fast_forward:", verbs[3]),
    };
    let tail = match (a.status, &a.error) {
        (ActionStatus::Failed, Some(e)) => format!(": {e}"),
        (ActionStatus::Skipped, _) => format!(" ({})", a.reason),
        _ => format!(": {}", a.reason),
    };
    format!(
        "{icon} {verb} {} on {}{tail}",
        rule_text(&a.detail),
        place.label(&a.target)
    )
}

/// Where the outcome happened, for the report: built per cloud by the caller.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// `(resource id, label)` for the groups / NSGs involved.
    pub labels: Vec<(String, String)>,
    pub region: Option<String>,
    /// `Account` or `Subscription`.
    pub account_field: &'static str,
    /// `Security group` or `NSG`.
    pub resource_field: &'static str,
    /// `security groups` or `NSGs`, for several.
    pub resources: &'static str,
    /// The console / portal page of the one resource.
    pub link: Option<String>,
    /// One sentence: what happened and who did it.
    pub summary: String,
}

impl Place {
    fn label(&self, id: &str) -> String {
        self.labels
            .iter()
            .find(|(i, _)| i.eq_ignore_ascii_case(id))
            .map_or_else(|| id.to_string(), |(_, l)| l.clone())
    }
}

/// The AWS place: groups as re-read, the console link, and what the event said.
pub fn aws_place(signal: &Signal, observed: &[GroupState]) -> Place {
    let region = signal.region.clone();
    let labels = observed
        .iter()
        .map(|g| (g.id.clone(), group_label(&g.id, observed)))
        .collect();
    Place {
        labels,
        link: None,
        account_field: "Account",
        resource_field: "Security group",
        resources: "security groups",
        summary: aws_summary(signal, observed),
        region,
    }
}

fn aws_summary(signal: &Signal, observed: &[GroupState]) -> String {
    let who = actor_name(signal);
    match &signal.kind {
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
            "The scheduled sweep checked {} security group(s) in {}.",
            observed.len(),
            signal.region.as_deref().unwrap_or("the region")
        ),
        SignalKind::NsgWritten { nsg_id, .. } => format!("{who} wrote {nsg_id}."),
    }
}

pub(crate) fn actor_name(signal: &Signal) -> String {
    signal
        .actor
        .as_ref()
        .and_then(|a| a.arn.clone())
        .unwrap_or_else(|| "unknown principal".into())
}

/// Builds the report for a noteworthy outcome.
pub fn message(signal: &Signal, place: &Place, outcome: &Outcome) -> Message {
    let count = |s: ActionStatus| {
        outcome
            .actions
            .iter()
            .filter(|a| a.action != "authorize_ingress" && a.status == s)
            .count()
    };
    let (done, planned, failed) = (
        count(ActionStatus::Done),
        count(ActionStatus::Planned),
        count(ActionStatus::Failed),
    );
    let mut targets: Vec<&str> = outcome.actions.iter().map(|a| a.target.as_str()).collect();
    targets.dedup();
    let place_text = match targets.as_slice() {
        [one] => place.label(one),
        many => format!("{} {}", many.len(), place.resources),
    };
    let region = place
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
            format!(
                "Could not close {} on {place_text} ({region})",
                rules(failed)
            ),
        )
    } else if outcome.dry_run {
        (
            Severity::Planned,
            format!("Would close {} on {place_text} ({region})", rules(planned)),
        )
    } else {
        (
            Severity::Remediated,
            format!("Closed {} on {place_text} ({region})", rules(done)),
        )
    };

    let actor = signal.actor.clone().unwrap_or_default();
    let mut fields = Vec::new();
    if signal.actor.is_some() {
        fields.push(("Who".to_string(), actor_name(signal)));
        if let Some(ip) = actor.source_ip {
            fields.push(("Source IP".into(), ip));
        }
        if let Some(by) = actor.invoked_by {
            fields.push(("Invoked by".into(), by));
        }
    }
    fields.push((
        place.account_field.into(),
        signal.account.clone().unwrap_or_else(|| "unknown".into()),
    ));
    fields.push(("Region".into(), region));
    if let [one] = targets.as_slice() {
        fields.push((place.resource_field.into(), place.label(one)));
    }
    fields.push(("Trigger".into(), signal.trigger.clone()));

    let lines: Vec<String> = outcome
        .actions
        .iter()
        .map(|a| action_line(a, place))
        .collect();
    let mut footer = vec![format!("reflex {}", outcome.function)];
    let mut links = Vec::new();
    if let Some(id) = &signal.event_id {
        footer.push(format!("event {id}"));
    }
    if let [one] = targets.as_slice() {
        let aws_link = signal.region.as_ref().and_then(|r| {
            reflex_core::ids::aws_console(
                r,
                "ec2/home",
                &format!(
                    "SecurityGroup:groupId={}",
                    reflex_core::notice::url_encode(one)
                ),
            )
        });
        if let Some(link) = place.link.clone().or(aws_link) {
            links.push(reflex_core::Link::new(
                if place.link.is_some() {
                    "Open in the portal"
                } else {
                    "Open in the console"
                },
                link,
            ));
        }
    }
    Message {
        severity,
        title,
        banner: outcome
            .dry_run
            .then(|| "DRY RUN: nothing was changed. These actions are planned only.".to_string()),
        summary: place.summary.clone(),
        fields,
        sections: vec![("What Reflex did".into(), lines)],
        footer,
        links,
    }
}
