//! The function in process: every fixture parses and renders within Slack's limits;
//! the thread / update flow, dedup, routing, bursts and failures against the Slack
//! stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use reflex_core::settings::from_pairs;
use reflex_core::{ActionStatus, NoticeKind, NoticeState};
use reflex_notify::blockkit;
use reflex_testkit::{BOT_TOKEN, Reply, SlackSink, json_files};
use serde_json::Value;

use super::*;

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn inv() -> Invocation {
    Invocation::with_budget(Duration::from_secs(20))
}

async fn bot(sink: &SlackSink, extra: &[(&str, &str)]) -> Deps {
    let api = sink.api_url();
    let mut pairs = vec![
        ("REFLEX_SLACK_BOT_TOKEN", BOT_TOKEN),
        ("REFLEX_SLACK_API_URL", api.as_str()),
        ("REFLEX_SLACK_CHANNEL", "#alerts"),
    ];
    pairs.extend_from_slice(extra);
    Deps::from_lookup(&from_pairs(&pairs)).await.unwrap()
}

fn assert_within_limits(v: &Value) {
    assert_eq!(blockkit::limit_violations(v), Vec::<String>::new());
}

#[test]
fn every_fixture_reads_as_a_notice_or_a_reason_and_renders_within_limits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut notices = 0;
    for f in json_files(&root) {
        let raw = std::fs::read(&f).unwrap();
        let parsed = parse(&raw, &[]);
        let name = f.display().to_string();
        if name.contains("unknown-schema-id") {
            // Without the `azure` feature an Azure payload is just not recognised.
            assert_eq!(parsed.is_err(), cfg!(feature = "azure"), "{name}");
            continue;
        }
        if reflex_testkit::is_event_grid_batch(&f, &raw) {
            // Event Grid batches are for drain-before-maintenance: a clear error here.
            let e = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                e.contains("expected a JSON object, found an array"),
                "{name}: {e}"
            );
            continue;
        }
        let parsed = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        for n in parsed {
            if let Noticed::Notice(n) = n {
                notices += 1;
                assert!(!n.title.is_empty(), "{name}");
                assert!(!n.delivery_key.is_empty(), "{name}");
                let text =
                    serde_json::to_string(&blockkit::render(&parent(&n, None, false))).unwrap();
                assert!(
                    !text.contains("\\\"AlarmName\\\""),
                    "{name}: raw JSON in the message"
                );
                assert!(
                    !text.contains("• \\n") && !text.contains("• \""),
                    "{name}: an empty bullet in the message"
                );
                assert_within_limits(&blockkit::render(&parent(&n, None, false)));
                assert_within_limits(&blockkit::render(&reply(&n)));
            }
        }
    }
    let want = if cfg!(feature = "azure") { 50 } else { 35 };
    assert!(notices >= want, "only {notices} notices from the fixtures");
}

fn one(rel: &str) -> Notice {
    match parse(&fixture(rel), &[]).unwrap().remove(0) {
        Noticed::Notice(n) => *n,
        Noticed::Ignored { reason, .. } => panic!("{rel} ignored: {reason}"),
    }
}

#[test]
fn each_kind_reads_its_key_facts() {
    let n = one("aws/sns/cloudwatch-alarm-static-threshold.json");
    assert_eq!(
        (n.kind, n.state),
        (NoticeKind::CloudwatchAlarm, NoticeState::Firing)
    );
    assert_eq!(
        n.region.as_deref(),
        Some("ap-northeast-1"),
        "display name mapped to its code"
    );
    let f = |n: &Notice, k: &str| {
        n.fields
            .iter()
            .find(|(l, _)| l == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(f(&n, "Threshold").as_deref(), Some("> 80"));
    assert_eq!(f(&n, "Value").as_deref(), Some("91.5"));
    assert_eq!(
        f(&n, "Changed at").as_deref(),
        Some("2026-11-24T10:20:15.123Z")
    );
    let ok = one("aws/sns/cloudwatch-alarm-ok.json");
    assert_eq!(ok.state, NoticeState::Resolved);
    assert_eq!(
        ok.thread_key, n.thread_key,
        "fire and resolve share a thread"
    );
    assert_ne!(ok.delivery_key, n.delivery_key);

    let eb = one("aws/cloudwatch/alarm-state-change-alarm.json");
    assert!(f(&eb, "Threshold").is_some(), "threshold from reasonData");
    assert!(
        f(&eb, "Resource").unwrap().contains("InstanceId="),
        "dimension map"
    );
    let math = one("aws/sns/cloudwatch-alarm-metric-math.json");
    assert!(
        f(&math, "Metric").unwrap().contains(" where m"),
        "{:?}",
        f(&math, "Metric")
    );

    assert_eq!(
        one("aws/cloudtrail-security/cloudtrail-stop-logging.json").level,
        reflex_core::Level::Critical
    );
    assert!(
        one("aws/cloudtrail-security/access-denied-ec2.json")
            .burst_key
            .is_some()
    );
    assert_eq!(
        one("aws/guardduty/crypto-mining-critical.json").level,
        reflex_core::Level::Critical
    );
    assert_eq!(
        one("aws/guardduty/iam-anomalous-behavior-medium.json").level,
        reflex_core::Level::Warning
    );
    let closed = one("aws/health/service-issue-closed.json");
    assert_eq!(closed.state, NoticeState::Resolved);
    assert_eq!(
        closed.thread_key,
        one("aws/health/service-issue-open.json").thread_key
    );
    let generic = one("aws/sns/generic-message-json.json");
    assert_eq!(generic.kind, NoticeKind::Event);
    assert!(
        !generic.reason.unwrap().trim_start().starts_with('{'),
        "flattened, not raw JSON"
    );
    #[cfg(feature = "azure")]
    assert_eq!(
        one("azure/common-alert-schema/metric-static.json").kind,
        NoticeKind::AzureAlert
    );
}

#[tokio::test]
async fn an_alarm_fires_repeats_and_resolves_as_one_thread() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[]).await;
    let fire = handle(
        &deps,
        &fixture("aws/sns/cloudwatch-alarm-static-threshold.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(fire.actions[0].action, "post_message");
    assert_eq!(fire.actions[0].status, ActionStatus::Done);
    let ok = handle(&deps, &fixture("aws/sns/cloudwatch-alarm-ok.json"), &inv())
        .await
        .unwrap();
    let acts: Vec<(&str, ActionStatus)> = ok
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.status))
        .collect();
    assert_eq!(
        acts,
        [
            ("reply_in_thread", ActionStatus::Done),
            ("update_message", ActionStatus::Done)
        ]
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2, "one parent, one reply");
    let (p, r) = (&msgs[0], &msgs[1]);
    assert_eq!(p.channel, "CALERTS");
    assert_eq!(r.thread_ts.as_deref(), Some(p.ts.as_str()));
    assert_eq!(p.updates, 1);
    let parent_text = serde_json::to_string(&p.payload).unwrap();
    assert!(parent_text.contains("*Resolved*"), "{parent_text}");
    assert_eq!(p.payload["attachments"][0]["color"], "#2EB67D");
    assert!(
        r.payload["text"]
            .as_str()
            .unwrap()
            .starts_with("Resolved: web-cpu-high")
    );
    // The stand-in's rendering (what `make demo` prints): the parent as last edited,
    // the reply under it, Slack's escapes shown as characters.
    let shown = sink.conversations();
    assert!(
        shown.starts_with(&format!("#CALERTS ts={} (edited 1 time(s))\n", p.ts)),
        "{shown}"
    );
    assert!(shown.contains("│ *Threshold* > 80\n"), "{shown}");
    assert!(
        shown.ends_with(&format!(
            "    ↳ reply ts={}: Resolved: web-cpu-high is OK\n",
            r.ts
        )),
        "{shown}"
    );
    // The same alarm firing again later is a new incident: a new parent.
    let mut again: Value =
        serde_json::from_slice(&fixture("aws/sns/cloudwatch-alarm-static-threshold.json")).unwrap();
    let msg = again["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .replace("10:20:15.123", "11:20:15.123");
    again["Records"][0]["Sns"]["Message"] = Value::String(msg);
    handle(&deps, again.to_string().as_bytes(), &inv())
        .await
        .unwrap();
    let parents = sink
        .messages()
        .iter()
        .filter(|m| m.thread_ts.is_none())
        .count();
    assert_eq!(parents, 2);
}

#[tokio::test]
async fn a_duplicate_delivery_posts_nothing() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[]).await;
    let raw = fixture("aws/cloudwatch/alarm-state-change-alarm.json");
    handle(&deps, &raw, &inv()).await.unwrap();
    let dup = handle(&deps, &raw, &inv()).await.unwrap();
    assert!(dup.actions.is_empty());
    assert!(dup.ignored.unwrap().starts_with("duplicate delivery"));
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn routes_send_kinds_to_their_channel_and_mute_what_nobody_wants() {
    let sink = SlackSink::start().await;
    let deps = bot(
        &sink,
        &[(
            "REFLEX_SLACK_ROUTES",
            "kind=guardduty => #security; kind=health => mute",
        )],
    )
    .await;
    handle(
        &deps,
        &fixture("aws/guardduty/ssh-brute-force-high.json"),
        &inv(),
    )
    .await
    .unwrap();
    let muted = handle(
        &deps,
        &fixture("aws/health/service-issue-open.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(
        muted.ignored.as_deref(),
        Some("muted by route 'kind=health => mute'")
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].channel, "CSECURITY");
}

#[tokio::test]
async fn access_denied_posts_once_per_burst() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[("REFLEX_DENIED_BURST", "3/3600")]).await;
    let raw: Value =
        serde_json::from_slice(&fixture("aws/cloudtrail-security/access-denied-ec2.json")).unwrap();
    let mut ignored = Vec::new();
    for i in 0..5 {
        let mut e = raw.clone();
        e["id"] = Value::String(format!("denied-{i}"));
        e["detail"]["eventID"] = Value::String(format!("denied-{i}"));
        let o = handle(&deps, e.to_string().as_bytes(), &inv())
            .await
            .unwrap();
        ignored.push(o.ignored.is_some());
    }
    assert_eq!(ignored, [true, true, false, true, true]);
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn a_failed_post_frees_the_delivery_for_the_redelivery() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[]).await;
    sink.script([Reply::Status(404, "not found")]);
    let raw = fixture("aws/guardduty/ssh-brute-force-high.json");
    let failed = handle(&deps, &raw, &inv()).await.unwrap();
    assert_eq!(failed.actions[0].status, ActionStatus::Failed);
    let again = handle(&deps, &raw, &inv()).await.unwrap();
    assert_eq!(
        again.actions[0].status,
        ActionStatus::Done,
        "the redelivery posts"
    );
}

#[tokio::test]
async fn slack_api_errors_are_reported_and_transient_ones_retried() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[("REFLEX_SLACK_BOT_TOKEN", "xoxb-wrong")]).await;
    let o = handle(
        &deps,
        &fixture("aws/guardduty/ssh-brute-force-high.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(
        o.actions[0].error.as_deref(),
        Some("chat.postMessage: invalid_auth")
    );
    assert!(!o.actions[0].retryable);
    let deps = bot(&sink, &[]).await;
    sink.script([
        Reply::RateLimited {
            retry_after_secs: 1,
        },
        Reply::Status(503, "busy"),
    ]);
    let o = handle(
        &deps,
        &fixture("aws/guardduty/iam-anomalous-behavior-medium.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(o.actions[0].status, ActionStatus::Done);
    assert_eq!(o.actions[0].detail["attempts"], 3);
}

#[tokio::test]
async fn dry_run_plans_and_posts_nothing() {
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[("REFLEX_DRY_RUN", "true")]).await;
    let o = handle(
        &deps,
        &fixture("aws/sns/cloudwatch-alarm-static-threshold.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(o.actions[0].status, ActionStatus::Planned);
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn webhooks_post_plain_messages() {
    let sink = SlackSink::start().await;
    let url = sink.webhook_url();
    let deps = Deps::from_lookup(&from_pairs(&[("REFLEX_SLACK_WEBHOOK_URL", url.as_str())]))
        .await
        .unwrap();
    handle(
        &deps,
        &fixture("aws/sns/cloudwatch-alarm-static-threshold.json"),
        &inv(),
    )
    .await
    .unwrap();
    handle(&deps, &fixture("aws/sns/cloudwatch-alarm-ok.json"), &inv())
        .await
        .unwrap();
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.path.starts_with("/services/")));
    assert_eq!(reqs[1].body["attachments"][0]["color"], "#2EB67D");
}

#[test]
fn bad_input_is_a_one_line_error() {
    for (raw, want) in [
        (&b""[..], "empty payload"),
        (b"{\"Records\": [{\"Sns\": {\"Message\": 7}}]}", "Records[0].Sns.Message"),
        (b"{\"detail-type\": \"CloudWatch Alarm State Change\", \"source\": \"aws.cloudwatch\", \"detail\": {\"alarmName\": 5}}", "detail.alarmName"),
        (b"[1]", "expected a JSON object"),
        (b"{\"Records\": [{\"Sns\": {\"Message\": \"{\\\"AlarmName\\\": \\\"x\\\", \\\"NewStateValue\\\": 3}\"}}]}", "Records[0].Sns.Message.NewStateValue"),
    ] {
        let e = parse(raw, &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(want), "{e} lacks {want}");
        assert!(!e.contains('\n'));
    }
    let unrelated = parse(b"{\"hello\": 1}", &[]).unwrap();
    assert!(matches!(&unrelated[0], Noticed::Ignored { .. }));
}

/// close-open-ports and block-ssh-bruteforce report their own changes: the CloudTrail
/// record of the same change, made by their role, posts nothing. Anyone else's change,
/// and a Reflex role's change that was denied, are still reported.
#[tokio::test]
async fn reflex_own_changes_are_not_reported_twice() {
    const SSH_ROLE: &str =
        "arn:aws:iam::123456789012:role/reflex-BlockSshBruteforceRole-7QK2M1ZP0X4B";
    const PORTS_ROLE: &str =
        "arn:aws:iam::123456789012:role/reflex-CloseOpenPortsRole-1H8X5C2V9N3M";
    let roles = format!("{PORTS_ROLE},{SSH_ROLE}");
    let sink = SlackSink::start().await;
    let deps = bot(&sink, &[("REFLEX_OWN_ROLE_ARNS", roles.as_str())]).await;
    for (rel, role) in [
        (
            "aws/cloudtrail-security/nacl-entry-created-by-reflex.json",
            SSH_ROLE,
        ),
        (
            "aws/cloudtrail-security/sg-ingress-revoked-by-reflex.json",
            PORTS_ROLE,
        ),
    ] {
        let o = handle(&deps, &fixture(rel), &inv()).await.unwrap();
        assert!(o.actions.is_empty(), "{rel}: {:?}", o.actions);
        let why = o.ignored.unwrap_or_default();
        assert!(
            why.contains(role) && why.contains("REFLEX_OWN_ROLE_ARNS"),
            "{rel}: {why}"
        );
        assert!(o.trigger.starts_with("aws.cloudtrail/"), "{}", o.trigger);
    }
    assert_eq!(sink.messages().len(), 0);

    // Someone else's NACL change is reported.
    let o = handle(
        &deps,
        &fixture("aws/cloudtrail-security/nacl-entry-created.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(o.actions.len(), 1, "{:?}", o.ignored);
    assert_eq!(sink.messages().len(), 1);

    // The same role, denied: reported (an access-denied burst member, not a change).
    let mut denied: Value = serde_json::from_slice(&fixture(
        "aws/cloudtrail-security/nacl-entry-created-by-reflex.json",
    ))
    .unwrap();
    denied["id"] = Value::String("denied-1".into());
    denied["detail"]["eventID"] = Value::String("denied-1".into());
    denied["detail"]["errorCode"] = Value::String("Client.UnauthorizedOperation".into());
    let n = parse(denied.to_string().as_bytes(), &deps.config.own_roles).unwrap();
    assert!(matches!(&n[0], Noticed::Notice(_)), "{n:?}");

    // Without the setting, the Reflex-made change is reported like any other.
    let plain = bot(&sink, &[]).await;
    let o = handle(
        &plain,
        &fixture("aws/cloudtrail-security/sg-ingress-revoked-by-reflex.json"),
        &inv(),
    )
    .await
    .unwrap();
    assert_eq!(o.actions.len(), 1, "{:?}", o.ignored);
    assert_eq!(sink.messages().len(), 2);
}

/// 50 alarms in one second, delivered in full at Slack's pace of one message per
/// second per channel: every 429 is waited out (Retry-After), nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_50_alarms_is_delivered_in_full_at_slacks_pace() {
    let sink = SlackSink::start().await;
    sink.pace(Duration::from_secs(1));
    let deps = std::sync::Arc::new(bot(&sink, &[]).await);
    let raw: Value =
        serde_json::from_slice(&fixture("aws/cloudwatch/alarm-state-change-alarm.json")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut e = raw.clone();
        e["id"] = Value::String(format!("burst-{i}"));
        e["resources"][0] = Value::String(format!(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:burst-{i}"
        ));
        e["detail"]["alarmName"] = Value::String(format!("burst-{i}"));
        let deps = std::sync::Arc::clone(&deps);
        tasks.push(tokio::spawn(async move {
            let inv = Invocation::with_budget(Duration::from_secs(120));
            handle(&deps, e.to_string().as_bytes(), &inv).await
        }));
    }
    for t in tasks {
        let o = t.await.unwrap().unwrap();
        assert_eq!(
            o.actions[0].status,
            ActionStatus::Done,
            "{:?}",
            o.actions[0].error
        );
    }
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 50, "every alarm delivered");
    assert!(
        sink.rate_limited() > 0,
        "the stand-in paced the burst with 429s"
    );
}
