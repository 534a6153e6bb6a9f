//! The pure decision: `(signal, policy, re-read state) -> plan`. No I/O.

use reflex_core::{
    Access, Action, Direction, ExposurePolicy, GroupState, NsgRule, NsgState, OpenedRule, Plan,
    RuleSpec, SgRule, Signal, SignalKind,
};

/// Skip reason for rules that no longer exist.
pub const ALREADY_GONE: &str = "already gone";

/// Decides what to revoke (and, optionally, re-authorise).
///
/// - CloudTrail: only the rules the call opened, judged on their current state.
/// - Config non-compliance: every rule of the group.
/// - Sweep: every rule of every group.
///
/// Exempt groups get `skipped` steps; rules the call opened that are gone now get
/// `skipped: already gone` (when they would have offended).
pub fn decide(signal: &Signal, policy: &ExposurePolicy, observed: &[GroupState]) -> Plan {
    let mut plan = Plan::default();
    match &signal.kind {
        SignalKind::IngressOpened { group_id, opened } => {
            let group = observed.iter().find(|g| &g.id == group_id);
            for o in opened {
                opened_rule(&mut plan, policy, group_id, group, o);
            }
        }
        SignalKind::GroupNonCompliant { group_id, .. } => {
            if let Some(g) = observed.iter().find(|g| &g.id == group_id) {
                for rule in &g.ingress {
                    judge(&mut plan, policy, g, rule);
                }
            }
        }
        SignalKind::Sweep => {
            for g in observed {
                for rule in &g.ingress {
                    judge(&mut plan, policy, g, rule);
                }
            }
        }
        // Azure signals are decided by `decide_nsg`.
        SignalKind::NsgWritten { .. } => {}
    }
    plan
}

/// Decides which Azure NSG rules to delete, on the NSG as re-read through ARM.
///
/// - A rule write: that rule only. If it is gone now, `skipped: already gone` (the
///   alert carries no rule body, so what it opened cannot be judged any more).
/// - An NSG write: every custom rule of the NSG.
///
/// Only the offending rule is deleted; no Deny rule is added on top.
pub fn decide_nsg(signal: &Signal, policy: &ExposurePolicy, nsg: Option<&NsgState>) -> Plan {
    let mut plan = Plan::default();
    let SignalKind::NsgWritten { nsg_id, rule_name } = &signal.kind else {
        return plan;
    };
    let Some(nsg) = nsg else {
        if let Some(name) = rule_name {
            plan.skip(gone_rule(nsg_id, name), "written by the call", ALREADY_GONE);
        }
        return plan;
    };
    match rule_name {
        Some(name) => match nsg.rules.iter().find(|r| r.name.eq_ignore_ascii_case(name)) {
            Some(rule) => judge_nsg(&mut plan, policy, nsg, rule),
            None => plan.skip(
                gone_rule(&nsg.id, name),
                "written by the call",
                ALREADY_GONE,
            ),
        },
        None => {
            for rule in &nsg.rules {
                judge_nsg(&mut plan, policy, nsg, rule);
            }
        }
    }
    plan
}

fn gone_rule(nsg_id: &str, name: &str) -> Action {
    Action::DeleteSecurityRule {
        nsg_id: nsg_id.to_string(),
        rule: NsgRule {
            id: format!("{nsg_id}/securityRules/{name}"),
            name: name.to_string(),
            protocol: reflex_core::Protocol::All,
            ports: Vec::new(),
            sources: Vec::new(),
            access: Access::Allow,
            direction: Direction::Inbound,
            priority: None,
            description: None,
        },
    }
}

fn judge_nsg(plan: &mut Plan, policy: &ExposurePolicy, nsg: &NsgState, rule: &NsgRule) {
    let Some(offence) = policy.evaluate_nsg(rule) else {
        return;
    };
    let action = Action::DeleteSecurityRule {
        nsg_id: nsg.id.clone(),
        rule: rule.clone(),
    };
    if nsg.has_tag(&policy.exempt_tag) {
        plan.skip(
            action,
            offence.reason,
            format!("NSG is exempt ({})", policy.exempt_tag),
        );
    } else {
        plan.push(action, offence.reason);
    }
}

fn opened_rule(
    plan: &mut Plan,
    policy: &ExposurePolicy,
    group_id: &str,
    group: Option<&GroupState>,
    o: &OpenedRule,
) {
    let current: Vec<&SgRule> = match (group, &o.rule_id, &o.spec) {
        (None, _, _) => Vec::new(),
        (Some(g), Some(id), _) => g.ingress.iter().filter(|r| &r.id == id).collect(),
        (Some(g), None, Some(spec)) => g.ingress.iter().filter(|r| &r.spec == spec).collect(),
        (Some(_), None, None) => return,
    };
    if current.is_empty() {
        // Gone since the call. Record it only if it would have offended (or we cannot
        // tell), so a duplicate delivery reads as "already gone" and changes nothing.
        let lists = group.map(|g| g.prefix_lists.clone()).unwrap_or_default();
        let offence = o.spec.as_ref().map(|s| policy.evaluate_in(s, &lists));
        if matches!(offence, Some(None)) {
            return;
        }
        let reason = offence
            .flatten()
            .map_or_else(|| "opened by the call".to_string(), |off| off.reason);
        let rule = SgRule {
            id: o.rule_id.clone().unwrap_or_default(),
            spec: o.spec.clone().unwrap_or_else(unknown_spec),
            description: None,
        };
        plan.skip(
            Action::RevokeIngress {
                group_id: group_id.to_string(),
                rule,
            },
            reason,
            ALREADY_GONE,
        );
        return;
    }
    if let Some(g) = group {
        for rule in current {
            judge(plan, policy, g, rule);
        }
    }
}

fn unknown_spec() -> RuleSpec {
    RuleSpec::new(
        reflex_core::Protocol::All,
        reflex_core::PortSpan::All,
        reflex_core::Source::Group("unknown".into()),
    )
}

fn judge(plan: &mut Plan, policy: &ExposurePolicy, group: &GroupState, rule: &SgRule) {
    let Some(offence) = policy.evaluate_in(&rule.spec, &group.prefix_lists) else {
        return;
    };
    let exempt = group
        .has_tag(&policy.exempt_tag)
        .then(|| format!("group is exempt ({})", policy.exempt_tag));
    for part in policy.remainder(&rule.spec) {
        let action = Action::AuthorizeIngress {
            group_id: group.id.clone(),
            description: format!(
                "reflex: allowed part of {} (revoked {})",
                rule.spec.describe(),
                rule.id
            ),
            rule: part,
        };
        let reason = format!("keep the allowed ports of {} open", rule.id);
        match &exempt {
            Some(why) => plan.skip(action, reason, why.clone()),
            None => plan.push(action, reason),
        }
    }
    let action = Action::RevokeIngress {
        group_id: group.id.clone(),
        rule: rule.clone(),
    };
    match exempt {
        Some(why) => plan.skip(action, offence.reason, why),
        None => plan.push(action, offence.reason),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use reflex_aws::events::parse_ports_event;
    use reflex_core::{Parsed, PortSpan, Protocol, Source, Tag};

    use super::*;

    fn events_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
    }

    fn load(case: &str) -> Parsed {
        let path = events_dir().join(case);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        parse_ports_event(&raw).unwrap_or_else(|e| panic!("{case}: {e}"))
    }

    fn signal(case: &str) -> Signal {
        match load(case) {
            Parsed::Signal(s) => *s,
            Parsed::Ignored { reason, .. } => panic!("{case} was ignored: {reason}"),
        }
    }

    fn rule(id: &str, p: Protocol, ports: PortSpan, cidr: &str) -> SgRule {
        SgRule {
            id: id.into(),
            spec: RuleSpec::new(
                p,
                ports,
                Source::parse_cidr(cidr).unwrap_or(Source::Group("?".into())),
            ),
            description: None,
        }
    }

    /// The group as the cloud would report it right after the call: the rules the
    /// event opened, plus one unrelated legitimate rule.
    fn state_after(s: &Signal) -> Vec<GroupState> {
        let SignalKind::IngressOpened { group_id, opened } = &s.kind else {
            return vec![
                mixed_group("sg-0123456789abcdef0"),
                mixed_group("sg-0fedcba9876543210"),
            ];
        };
        let mut ingress: Vec<SgRule> = opened
            .iter()
            .filter_map(|o| {
                Some(SgRule {
                    id: o.rule_id.clone()?,
                    spec: o.spec.clone()?,
                    description: None,
                })
            })
            .collect();
        ingress.push(rule(
            "sgr-legit",
            Protocol::Tcp,
            PortSpan::Range(8443, 8443),
            "0.0.0.0/0",
        ));
        vec![GroupState {
            id: group_id.clone(),
            name: "web".into(),
            ingress,
            ..GroupState::default()
        }]
    }

    fn mixed_group(id: &str) -> GroupState {
        GroupState {
            id: id.into(),
            name: "mixed".into(),
            ingress: vec![
                rule(
                    "sgr-ssh-world",
                    Protocol::Tcp,
                    PortSpan::Range(22, 22),
                    "0.0.0.0/0",
                ),
                rule(
                    "sgr-rdp-world6",
                    Protocol::Tcp,
                    PortSpan::Range(3389, 3389),
                    "::/0",
                ),
                rule(
                    "sgr-ssh-private",
                    Protocol::Tcp,
                    PortSpan::Range(22, 22),
                    "10.0.0.0/8",
                ),
                rule(
                    "sgr-https-world",
                    Protocol::Tcp,
                    PortSpan::Range(443, 443),
                    "0.0.0.0/0",
                ),
            ],
            ..GroupState::default()
        }
    }

    /// The plan as `(action, rule id or target, skip reason)` triples.
    fn summary(plan: &Plan) -> Vec<(String, String, Option<String>)> {
        plan.steps
            .iter()
            .map(|s| {
                let id = match &s.action {
                    Action::RevokeIngress { rule, .. } => rule.id.clone(),
                    Action::AuthorizeIngress { rule, .. } => rule.describe(),
                    Action::DeleteSecurityRule { rule, .. } => rule.name.clone(),
                };
                (s.action.name().to_string(), id, s.skip.clone())
            })
            .collect()
    }

    fn revokes(ids: &[&str]) -> Vec<(String, String, Option<String>)> {
        ids.iter()
            .map(|id| ("revoke_ingress".to_string(), (*id).to_string(), None))
            .collect()
    }

    fn plan_for(case: &str) -> Vec<(String, String, Option<String>)> {
        let s = signal(case);
        summary(&decide(&s, &ExposurePolicy::default(), &state_after(&s)))
    }

    #[test]
    fn every_fixture_has_the_expected_plan() {
        let cases: &[(&str, &[&str])] = &[
            (
                "aws/cloudtrail/authorize-ssh-world-open.json",
                &["sgr-0a1b2c3d4e5f60001"],
            ),
            (
                "aws/cloudtrail/authorize-mixed-rules.json",
                &["sgr-0a1b2c3d4e5f60001", "sgr-0a1b2c3d4e5f60002"],
            ),
            (
                "aws/cloudtrail/authorize-rdp-ipv6.json",
                &["sgr-0a1b2c3d4e5f60005"],
            ),
            (
                "aws/cloudtrail/authorize-all-traffic.json",
                &["sgr-0a1b2c3d4e5f60006"],
            ),
            (
                "aws/cloudtrail/authorize-wide-range.json",
                &["sgr-0a1b2c3d4e5f60007"],
            ),
            (
                "aws/cloudtrail/authorize-via-cloudformation.json",
                &["sgr-0a1b2c3d4e5f60008"],
            ),
            ("aws/cloudtrail/authorize-prefix-list-only.json", &[]),
            ("aws/cloudtrail/authorize-https-world-open.json", &[]),
            (
                "aws/cloudtrail/modify-rule-to-ssh-world.json",
                &["sgr-0a1b2c3d4e5f60011"],
            ),
            (
                "aws/config/restricted-ssh-noncompliant.json",
                &["sgr-ssh-world", "sgr-rdp-world6"],
            ),
            (
                "aws/config/securityhub-restricted-ssh-noncompliant.json",
                &["sgr-ssh-world", "sgr-rdp-world6"],
            ),
            (
                "aws/config/restricted-common-ports-noncompliant.json",
                &["sgr-ssh-world", "sgr-rdp-world6"],
            ),
            (
                "aws/config/vpc-sg-open-only-to-authorized-ports-noncompliant.json",
                &["sgr-ssh-world", "sgr-rdp-world6"],
            ),
            (
                "aws/scheduled/daily-sweep.json",
                &[
                    "sgr-ssh-world",
                    "sgr-rdp-world6",
                    "sgr-ssh-world",
                    "sgr-rdp-world6",
                ],
            ),
        ];
        for (case, expected) in cases {
            assert_eq!(plan_for(case), revokes(expected), "{case}");
        }
    }

    #[test]
    fn events_that_need_nothing_are_ignored_with_a_reason() {
        for case in [
            "aws/cloudtrail/authorize-failed-duplicate.json",
            "aws/config/restricted-ssh-compliant.json",
            "aws/config/restricted-ssh-not-applicable.json",
            "aws/config/s3-versioning-noncompliant.json",
            "aws/eventbridge/ec2-instance-state-change.json",
        ] {
            match load(case) {
                Parsed::Ignored { reason, .. } => assert!(!reason.is_empty(), "{case}"),
                Parsed::Signal(s) => panic!("{case} should be ignored, got {s:?}"),
            }
        }
    }

    #[test]
    fn every_file_under_events_parses_without_error() {
        let files = reflex_testkit::json_files(&events_dir());
        assert!(files.len() >= 19, "found only {} fixtures", files.len());
        for f in files {
            let raw = std::fs::read(&f).unwrap_or_default();
            let parsed = crate::parse(&raw);
            // The one fixture that exists to be rejected (by the Azure parser), and the
            // Event Grid batches, which are not for this function.
            if (cfg!(feature = "azure")
                && f.ends_with("azure/common-alert-schema/unknown-schema-id.json"))
                || reflex_testkit::is_event_grid_batch(&f, &raw)
            {
                assert!(parsed.is_err(), "{} should be rejected", f.display());
            } else {
                assert!(
                    parsed.is_ok(),
                    "{} did not parse: {:?}",
                    f.display(),
                    parsed.err()
                );
            }
        }
    }

    #[test]
    fn the_cloudformation_event_finds_its_group_in_the_response() {
        let s = signal("aws/cloudtrail/authorize-via-cloudformation.json");
        let actor = s.actor.clone().unwrap_or_default();
        assert_eq!(
            actor.invoked_by.as_deref(),
            Some("cloudformation.amazonaws.com")
        );
        assert!(
            matches!(s.kind, SignalKind::IngressOpened { ref group_id, .. } if group_id.starts_with("sg-"))
        );
    }

    #[test]
    fn exempt_groups_are_skipped_with_the_reason() {
        let s = signal("aws/cloudtrail/authorize-ssh-world-open.json");
        let mut groups = state_after(&s);
        groups[0].tags.insert("reflex:exempt".into(), "true".into());
        let plan = summary(&decide(&s, &ExposurePolicy::default(), &groups));
        assert_eq!(
            plan,
            vec![(
                "revoke_ingress".to_string(),
                "sgr-0a1b2c3d4e5f60001".to_string(),
                Some("group is exempt (reflex:exempt=true)".to_string())
            )]
        );
    }

    #[test]
    fn a_custom_exemption_tag_is_honoured() {
        let s = signal("aws/cloudtrail/authorize-ssh-world-open.json");
        let mut groups = state_after(&s);
        groups[0].tags.insert("owner".into(), "netops".into());
        let policy = ExposurePolicy {
            exempt_tag: Tag {
                key: "owner".into(),
                value: "netops".into(),
            },
            ..ExposurePolicy::default()
        };
        assert!(
            decide(&s, &policy, &groups)
                .steps
                .iter()
                .all(|st| st.skip.is_some())
        );
    }

    #[test]
    fn rules_already_gone_are_skipped_and_harmless_ones_are_not_mentioned() {
        let s = signal("aws/cloudtrail/authorize-mixed-rules.json");
        let mut groups = state_after(&s);
        groups[0].ingress.clear();
        let plan = summary(&decide(&s, &ExposurePolicy::default(), &groups));
        let gone = Some(ALREADY_GONE.to_string());
        assert_eq!(
            plan,
            vec![
                (
                    "revoke_ingress".into(),
                    "sgr-0a1b2c3d4e5f60001".into(),
                    gone.clone()
                ),
                (
                    "revoke_ingress".into(),
                    "sgr-0a1b2c3d4e5f60002".into(),
                    gone
                ),
            ]
        );
    }

    #[test]
    fn current_state_wins_over_the_event() {
        // The rule was narrowed to a private range after the call: leave it.
        let s = signal("aws/cloudtrail/authorize-ssh-world-open.json");
        let mut groups = state_after(&s);
        groups[0].ingress[0] = rule(
            "sgr-0a1b2c3d4e5f60001",
            Protocol::Tcp,
            PortSpan::Range(22, 22),
            "10.1.0.0/16",
        );
        assert!(decide(&s, &ExposurePolicy::default(), &groups).is_empty());
    }

    #[test]
    fn only_the_rules_the_call_opened_are_touched() {
        // Another world-open SSH rule predates the call: the sweep handles it, not this event.
        let s = signal("aws/cloudtrail/authorize-rdp-ipv6.json");
        let mut groups = state_after(&s);
        groups[0].ingress.push(rule(
            "sgr-old",
            Protocol::Tcp,
            PortSpan::Range(22, 22),
            "0.0.0.0/0",
        ));
        assert_eq!(
            summary(&decide(&s, &ExposurePolicy::default(), &groups)),
            revokes(&["sgr-0a1b2c3d4e5f60005"])
        );
    }

    #[test]
    fn wide_ranges_are_split_when_reauthorising_is_on() {
        let s = signal("aws/cloudtrail/authorize-wide-range.json");
        let policy = ExposurePolicy {
            reauthorize_remainder: true,
            ..ExposurePolicy::default()
        };
        let plan = summary(&decide(&s, &policy, &state_after(&s)));
        let names: Vec<(&str, &str)> = plan
            .iter()
            .map(|(a, id, _)| (a.as_str(), id.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("authorize_ingress", "tcp/0-21 from 0.0.0.0/0"),
                ("authorize_ingress", "tcp/23-3388 from 0.0.0.0/0"),
                ("authorize_ingress", "tcp/3390-65535 from 0.0.0.0/0"),
                ("revoke_ingress", "sgr-0a1b2c3d4e5f60007"),
            ]
        );
    }

    #[test]
    fn custom_forbidden_ports_change_the_plan() {
        let s = signal("aws/cloudtrail/authorize-https-world-open.json");
        let policy = ExposurePolicy {
            forbidden_ports: reflex_core::PortSet::from_ranges(vec![(443, 443)]),
            ..ExposurePolicy::default()
        };
        assert_eq!(
            summary(&decide(&s, &policy, &state_after(&s))),
            revokes(&["sgr-0a1b2c3d4e5f60010"])
        );
    }

    /// Azure: NSG rule writes (needs the `azure` feature, which the workspace turns on).
    #[cfg(feature = "azure")]
    mod azure {
        use reflex_core::{Access, Direction, NsgRule, NsgState};

        use super::*;
        use crate::decide_nsg;

        fn azure(case: &str) -> Parsed {
            let path = events_dir().join("azure").join(case);
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            crate::parse(&raw).unwrap_or_else(|e| panic!("{case}: {e}"))
        }

        const NSG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web";

        fn nsg_rule(name: &str, ports: &[&str], sources: &[&str]) -> NsgRule {
            NsgRule {
                id: format!("{NSG}/securityRules/{name}"),
                name: name.into(),
                protocol: Protocol::Tcp,
                ports: ports
                    .iter()
                    .filter_map(|p| PortSpan::parse_range(p))
                    .collect(),
                sources: sources
                    .iter()
                    .map(|s| Source::parse_cidr(s).unwrap_or(Source::ServiceTag((*s).into())))
                    .collect(),
                access: Access::Allow,
                direction: Direction::Inbound,
                priority: Some(100),
                description: None,
            }
        }

        fn nsg_web(tags: &[(&str, &str)]) -> NsgState {
            NsgState {
                id: NSG.into(),
                name: "nsg-web".into(),
                location: Some("westeurope".into()),
                tags: tags
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                rules: vec![
                    nsg_rule("allow-ssh-any", &["22"], &["*"]),
                    nsg_rule("allow-https", &["443"], &["Internet"]),
                    nsg_rule("allow-ssh-corp", &["22"], &["10.0.0.0/8"]),
                    nsg_rule("allow-rdp-any", &["3389"], &["0.0.0.0/0"]),
                ],
            }
        }

        fn azure_signal(case: &str) -> Signal {
            match azure(case) {
                Parsed::Signal(s) => *s,
                Parsed::Ignored { reason, .. } => panic!("{case} was ignored: {reason}"),
            }
        }

        #[test]
        fn an_nsg_rule_write_alert_becomes_a_signal_for_that_rule() {
            let s = azure_signal("common-alert-schema/activity-log-administrative.json");
            assert_eq!(
                s.kind,
                SignalKind::NsgWritten {
                    nsg_id: NSG.into(),
                    rule_name: Some("allow-ssh-any".into())
                }
            );
            assert_eq!(
                s.trigger,
                "azure.activitylog/Microsoft.Network/networkSecurityGroups/securityRules/write"
            );
            let actor = s.actor.clone().unwrap_or_default();
            assert_eq!(actor.arn.as_deref(), Some("alice@contoso.com"));
            assert_eq!(actor.source_ip.as_deref(), Some("203.0.113.24"));
            assert_eq!(
                s.account.as_deref(),
                Some("00000000-0000-0000-0000-000000000000")
            );
            let legacy = azure_signal("legacy/activity-log-microsoft-insights.json");
            assert!(
                matches!(legacy.kind, SignalKind::NsgWritten { rule_name: Some(ref r), .. } if r == "allow-rdp-any")
            );
            let whole = azure_signal("common-alert-schema/activity-log-nsg-write.json");
            assert!(matches!(
                whole.kind,
                SignalKind::NsgWritten {
                    rule_name: None,
                    ..
                }
            ));
        }

        #[test]
        fn azure_alerts_that_need_nothing_are_ignored_with_a_reason() {
            for case in [
                "common-alert-schema/activity-log-nsg-rule-write-failed.json",
                "common-alert-schema/activity-log-nsg-rule-delete.json",
                "common-alert-schema/metric-static.json",
                "common-alert-schema/service-health.json",
                "common-alert-schema/activity-log-policy.json",
                "legacy/log-alert-v1-no-schema-id.json",
            ] {
                match azure(case) {
                    Parsed::Ignored { reason, .. } => assert!(!reason.is_empty(), "{case}"),
                    Parsed::Signal(s) => panic!("{case} should be ignored, got {s:?}"),
                }
            }
        }

        fn deletes(plan: &Plan) -> Vec<(String, Option<String>)> {
            plan.steps
                .iter()
                .map(|s| match &s.action {
                    Action::DeleteSecurityRule { rule, .. } => (rule.name.clone(), s.skip.clone()),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        }

        #[test]
        fn only_the_written_rule_is_deleted_and_only_if_it_offends() {
            let p = ExposurePolicy::default();
            let s = azure_signal("common-alert-schema/activity-log-administrative.json");
            let plan = decide_nsg(&s, &p, Some(&nsg_web(&[])));
            assert_eq!(deletes(&plan), vec![("allow-ssh-any".into(), None)]);
            assert_eq!(plan.steps[0].reason, "tcp/22 open to * is forbidden");
        }

        #[test]
        fn an_nsg_write_checks_every_rule() {
            let p = ExposurePolicy::default();
            let s = azure_signal("common-alert-schema/activity-log-nsg-write.json");
            let plan = decide_nsg(&s, &p, Some(&nsg_web(&[])));
            assert_eq!(
                deletes(&plan),
                vec![
                    ("allow-ssh-any".into(), None),
                    ("allow-rdp-any".into(), None)
                ]
            );
        }

        #[test]
        fn an_exempt_nsg_is_skipped_with_the_reason() {
            let p = ExposurePolicy::default();
            let s = azure_signal("common-alert-schema/activity-log-administrative.json");
            let plan = decide_nsg(&s, &p, Some(&nsg_web(&[("reflex:exempt", "true")])));
            assert_eq!(
                deletes(&plan),
                vec![(
                    "allow-ssh-any".into(),
                    Some("NSG is exempt (reflex:exempt=true)".into())
                )]
            );
        }

        #[test]
        fn a_written_rule_that_is_gone_is_already_gone() {
            let p = ExposurePolicy::default();
            let s = azure_signal("common-alert-schema/activity-log-administrative.json");
            let mut nsg = nsg_web(&[]);
            nsg.rules.retain(|r| r.name != "allow-ssh-any");
            assert_eq!(
                deletes(&decide_nsg(&s, &p, Some(&nsg))),
                vec![("allow-ssh-any".into(), Some(ALREADY_GONE.into()))]
            );
            assert_eq!(
                deletes(&decide_nsg(&s, &p, None)),
                vec![("allow-ssh-any".into(), Some(ALREADY_GONE.into()))]
            );
        }
    }
}
