//! The agent against the IMDS stand-in, with real shell hooks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use reflex_testkit::{
    ImdsFake, ImdsReply, Reply as SlackReply, SlackSink, azure_event, not_before_in,
};
use serde_json::{Value, json};

use crate::args::{Args, duration};
use crate::watch::Watcher;

/// A fresh directory for one test's hook output and state.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reflex-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Hooks that append `HOOK ID KIND TYPE STATUS RESOURCES` to `hooks.log` and keep
/// the JSON they were given on stdin.
fn hook(dir: &Path, extra: &str) -> String {
    format!(
        "{extra}echo \"$REFLEX_EVENT_HOOK $REFLEX_EVENT_ID $REFLEX_EVENT_KIND $REFLEX_EVENT_TYPE $REFLEX_EVENT_STATUS $REFLEX_EVENT_RESOURCES\" >> {d}/hooks.log; cat > {d}/$REFLEX_EVENT_HOOK.json",
        d = dir.display()
    )
}

/// Announces a scheduled event for vm-web-1 starting `secs` from now.
fn announce(imds: &ImdsFake, id: &str, kind: &str, secs: u64, duration: i64) {
    imds.put_event(azure_event(
        id,
        kind,
        "vm-web-1",
        &not_before_in(secs),
        duration,
    ));
}

fn hook_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn watcher(imds: &ImdsFake, cloud: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Watcher {
    let mut argv = vec!["reflex-agent", "--cloud", cloud];
    argv.extend_from_slice(extra_args);
    let args = Args::try_parse_from(argv).unwrap();
    let endpoint = imds.endpoint();
    let mut pairs = vec![("REFLEX_IMDS_ENDPOINT", endpoint.as_str())];
    pairs.extend_from_slice(env);
    args.watcher(&reflex_core::settings::from_pairs(&pairs))
        .unwrap()
}

fn records(w: &Watcher) -> Vec<(String, String)> {
    w.journal
        .records
        .iter()
        .map(|r| {
            (
                r["record"].as_str().unwrap_or_default().to_string(),
                r["event_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has(w: &Watcher, record: &str, id: &str) -> bool {
    records(w).contains(&(record.to_string(), id.to_string()))
}

#[tokio::test]
async fn an_azure_redeploy_is_logged_drained_then_approved_then_recovered() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("redeploy");
    let log = dir.join("events.jsonl");
    let (drain, recover) = (hook(&dir, "sleep 0.3; "), hook(&dir, ""));
    let mut w = watcher(
        &imds,
        "azure",
        &[
            "--drain-hook",
            &drain,
            "--recover-hook",
            &recover,
            "--log-file",
            log.to_str().unwrap(),
        ],
        &[],
    );
    announce(&imds, "E-1", "Redeploy", 600, -1);
    let started = Instant::now();
    w.tick().await.unwrap();
    // Drained first (the hook takes 0.3 s), approved only after.
    assert_eq!(
        hook_lines(&dir),
        ["drain E-1 redeploy Redeploy scheduled vm-web-1"]
    );
    assert_eq!(imds.approvals(), ["E-1"]);
    assert!(imds.approved_at("E-1").unwrap().duration_since(started) >= Duration::from_millis(300));
    let stdin: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("drain.json")).unwrap()).unwrap();
    assert_eq!(stdin["EventType"], "Redeploy");
    // The approval starts the event; the agent logs the change and does nothing else.
    w.tick().await.unwrap();
    assert!(has(&w, "event_status", "E-1"));
    assert_eq!(imds.approvals().len(), 1);
    // One answer without the event in the middle of the maintenance is not its end:
    // nothing is recovered, and the event is back at the next poll.
    let listed = imds.event("E-1").unwrap();
    imds.remove_event("E-1");
    w.tick().await.unwrap();
    assert!(has(&w, "event_absent", "E-1"));
    assert_eq!(
        hook_lines(&dir).len(),
        1,
        "not recovered on one empty answer"
    );
    imds.put_event(listed);
    w.tick().await.unwrap();
    assert_eq!(w.tracked()["E-1"].absent_polls, 0);
    // Over: IMDS drops the event for three polls in a row (the default
    // --gone-after); the agent recovers the node and forgets the event.
    imds.remove_event("E-1");
    for _ in 0..2 {
        w.tick().await.unwrap();
        assert_eq!(hook_lines(&dir).len(), 1);
    }
    w.tick().await.unwrap();
    assert_eq!(
        hook_lines(&dir),
        [
            "drain E-1 redeploy Redeploy scheduled vm-web-1",
            "recover E-1 redeploy Redeploy started vm-web-1"
        ]
    );
    assert!(w.tracked().is_empty());
    let order: Vec<String> = records(&w).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        order,
        [
            "started",
            "event_new",
            "drain_started",
            "drain_done",
            "approved",
            "event_status",
            "event_absent",
            "event_absent",
            "event_absent",
            "event_gone",
            "recover_started",
            "recover_done"
        ]
    );
    // The same records, one JSON object per line, in the log file.
    let file = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), order.len());
    assert_eq!(lines[1]["kind"], "redeploy");
    assert_eq!(lines[1]["resources"], json!(["vm-web-1"]));
}

#[tokio::test]
async fn events_are_compared_by_id_and_other_vms_are_left_alone() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("by-id");
    let mut w = watcher(&imds, "azure", &["--drain-hook", &hook(&dir, "")], &[]);
    imds.put_event(azure_event(
        "OTHER",
        "Reboot",
        "vm-web-2",
        &not_before_in(900),
        -1,
    ));
    w.tick().await.unwrap();
    assert!(hook_lines(&dir).is_empty());
    assert!(!records(&w).iter().any(|(r, _)| r == "event_new"));
    announce(&imds, "E-2", "Reboot", 900, -1);
    w.tick().await.unwrap();
    // A new DocumentIncarnation with the same events is not a new event.
    announce(&imds, "E-2", "Reboot", 900, -1);
    w.tick().await.unwrap();
    w.tick().await.unwrap();
    assert_eq!(hook_lines(&dir).len(), 1);
    assert_eq!(imds.approvals(), ["E-2"]);
    assert_eq!(
        records(&w).iter().filter(|(r, _)| r == "event_new").count(),
        1
    );
}

#[tokio::test]
async fn throttling_and_server_errors_back_off_and_a_slow_first_answer_is_awaited() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("backoff");
    imds.script([
        ImdsReply::Slow(Duration::from_secs(2)),
        ImdsReply::TooMany,
        ImdsReply::Status(503),
    ]);
    announce(&imds, "E-3", "Preempt", 30, -1);
    let mut w = watcher(&imds, "azure", &["--drain-hook", &hook(&dir, "")], &[]);
    let start = Instant::now();
    // The slow first answer is awaited (the first poll has a long timeout) and
    // answers normally; then the 429 and the 503 are retried with backoff.
    w.run(
        Duration::from_millis(100),
        Some(Duration::from_secs(60)),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(hook_lines(&dir).len(), 1);
    assert!(start.elapsed() >= Duration::from_secs(2));
    w.run(
        Duration::from_millis(100),
        Some(Duration::from_secs(60)),
        std::future::pending(),
    )
    .await
    .unwrap();
    let errors: Vec<String> = w
        .journal
        .records
        .iter()
        .filter(|r| r["record"] == "poll_error")
        .map(|r| r["detail"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("Azure IMDS: HTTP 429"), "{errors:?}");
    assert!(errors[0].ends_with("retrying in 100ms"), "{errors:?}");
    assert!(errors[1].starts_with("Azure IMDS: HTTP 503"), "{errors:?}");
    assert!(errors[1].ends_with("retrying in 200ms"), "{errors:?}");
    // Every request went with Metadata: true (the stand-in answers 400 otherwise)
    // and the VM name came from instance metadata.
    assert!(
        imds.requests()
            .iter()
            .any(|r| r.path == "/metadata/instance/compute")
    );
}

#[tokio::test]
async fn a_failed_drain_is_not_approved_and_the_hook_is_bounded_by_not_before() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("timeout");
    let mut w = watcher(
        &imds,
        "azure",
        &[
            "--drain-hook",
            "sleep 30",
            "--recover-hook",
            &hook(&dir, ""),
        ],
        &[],
    );
    announce(&imds, "E-4", "Reboot", 2, -1);
    let start = Instant::now();
    w.tick().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the hook was not cut off"
    );
    assert!(imds.approvals().is_empty());
    let failed = w
        .journal
        .records
        .iter()
        .find(|r| r["record"] == "drain_failed")
        .unwrap();
    assert!(
        failed["detail"].as_str().unwrap().contains("was killed"),
        "{failed}"
    );
    // The drain may have half-happened: the recover hook still runs at the end.
    imds.remove_event("E-4");
    for _ in 0..3 {
        w.tick().await.unwrap();
    }
    assert_eq!(
        hook_lines(&dir),
        ["recover E-4 reboot Reboot scheduled vm-web-1"]
    );
}

#[tokio::test]
async fn the_policy_rides_out_short_freezes_and_without_hooks_nothing_is_approved() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("policy");
    let mut w = watcher(&imds, "azure", &["--drain-hook", &hook(&dir, "")], &[]);
    announce(&imds, "F-1", "Freeze", 900, 5);
    w.tick().await.unwrap();
    assert!(hook_lines(&dir).is_empty());
    assert!(has(&w, "ignored", "F-1"));
    assert!(imds.approvals().is_empty());
    // Watching only: logged, never approved.
    let imds2 = ImdsFake::start("vm-web-1").await;
    let mut bare = watcher(&imds2, "azure", &[], &[]);
    announce(&imds2, "R-1", "Reboot", 900, -1);
    bare.tick().await.unwrap();
    assert!(has(&bare, "drain_skipped", "R-1"));
    assert!(imds2.approvals().is_empty());
    // A policy that drains freezes too.
    let imds3 = ImdsFake::start("vm-web-1").await;
    let mut all = watcher(
        &imds3,
        "azure",
        &["--drain-hook", &hook(&dir, "")],
        &[("REFLEX_DRAIN_POLICY", "freeze=now")],
    );
    announce(&imds3, "F-2", "Freeze", 900, 5);
    all.tick().await.unwrap();
    assert_eq!(imds3.approvals(), ["F-2"]);
}

#[tokio::test]
async fn a_restart_still_recovers_what_was_drained() {
    let imds = ImdsFake::start("vm-web-1").await;
    let dir = scratch("restart");
    let state = dir.join("state.json");
    let args = [
        "--drain-hook",
        &hook(&dir, ""),
        "--recover-hook",
        &hook(&dir, ""),
        "--state-file",
        state.to_str().unwrap(),
    ];
    let args: Vec<&str> = args.iter().map(|s| &**s).collect();
    let mut before = watcher(&imds, "azure", &args, &[]);
    announce(&imds, "E-5", "Redeploy", 600, -1);
    before.tick().await.unwrap();
    drop(before);
    // The VM was redeployed; a new agent process starts and the event is gone.
    imds.remove_event("E-5");
    let mut after = watcher(&imds, "azure", &args, &[]);
    for _ in 0..3 {
        after.tick().await.unwrap();
    }
    assert_eq!(hook_lines(&dir).len(), 2);
    assert!(hook_lines(&dir)[1].starts_with("recover E-5 redeploy"));
    assert!(after.tracked().is_empty());
}

#[tokio::test]
async fn aws_spot_maintenance_and_rebalance_notices_go_through_imdsv2() {
    let imds = ImdsFake::start("unused").await;
    let dir = scratch("aws");
    let mut w = watcher(
        &imds,
        "aws",
        &[
            "--drain-hook",
            &hook(&dir, ""),
            "--recover-hook",
            &hook(&dir, ""),
        ],
        &[],
    );
    w.tick().await.unwrap();
    assert!(hook_lines(&dir).is_empty(), "nothing announced");
    imds.set_spot(Some(
        json!({"action": "terminate", "time": "2026-11-24T10:17:00Z"}),
    ));
    imds.set_maintenance(vec![json!({
        "NotBefore": "21 Jan 2030 09:00:43 GMT", "Code": "system-reboot",
        "Description": "scheduled reboot", "EventId": "instance-event-0d59937288b749b32",
        "NotAfter": "21 Jan 2030 09:17:23 GMT", "State": "active"
    })]);
    imds.set_rebalance(Some(json!({"noticeTime": "2026-11-24T10:10:00Z"})));
    w.tick().await.unwrap();
    // The spot warning drains now; maintenance years ahead waits for its budget; a
    // rebalance recommendation is ignored by default. AWS has nothing to approve.
    assert_eq!(
        hook_lines(&dir),
        [
            "drain spot:2026-11-24T10:17:00Z spot-interruption terminate scheduled i-0abc1234def567890"
        ]
    );
    assert!(has(
        &w,
        "drain_scheduled",
        "instance-event-0d59937288b749b32"
    ));
    assert!(has(&w, "ignored", "rebalance:2026-11-24T10:10:00Z"));
    assert!(imds.approvals().is_empty());
    imds.set_spot(None);
    for _ in 0..3 {
        w.tick().await.unwrap();
    }
    assert!(hook_lines(&dir)[1].starts_with("recover spot:2026-11-24T10:17:00Z"));
    // One session token served every call.
    assert_eq!(imds.tokens_issued(), 1);
}

#[tokio::test]
async fn the_drain_function_is_called_over_http() {
    let imds = ImdsFake::start("vm-web-1").await;
    let function = SlackSink::start().await;
    let url = format!("http://{}/api/drain-before-maintenance", function.addr());
    let mut w = watcher(
        &imds,
        "azure",
        &["--drain-url", &url],
        &[("REFLEX_AGENT_FUNCTION_KEY", "k-123")],
    );
    announce(&imds, "E-6", "Redeploy", 600, -1);
    // The function first defers (no free drain slot), then drains.
    function.script([
        SlackReply::Status(
            202,
            r#"{"drain":"deferred","actions":[{"status":"skipped","reason":"1 drain(s) already in progress in rg-web"}]}"#,
        ),
        SlackReply::Status(200, r#"{"drain":"drained","actions":[]}"#),
    ]);
    w.tick().await.unwrap();
    assert!(
        imds.approvals().is_empty(),
        "a deferred drain is not approved"
    );
    assert!(
        w.journal
            .records
            .iter()
            .any(|r| r["record"] == "drain_deferred"
                && r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("already in progress in rg-web"))),
        "{:?}",
        w.journal.records
    );
    // Asked again only after the retry wait (10 s by default).
    w.tick().await.unwrap();
    assert_eq!(function.requests().len(), 1);
    let mut w = w.with_retry_deferred(Duration::ZERO);
    w.tick().await.unwrap();
    let calls = function.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].path, "/api/drain-before-maintenance");
    let body = &calls[0].body;
    assert_eq!(body["source"], "reflex-agent");
    assert_eq!(body["action"], "drain");
    assert_eq!(body["node"], "vm-web-1");
    assert_eq!(body["maintenance"]["kind"], "redeploy");
    assert!(
        body["maintenance"]["scope"]
            .as_str()
            .is_some_and(|s| s.ends_with("/virtualMachines/vm-web-1")),
        "{body}"
    );
    assert_eq!(body["event"]["EventId"], "E-6");
    assert_eq!(imds.approvals(), ["E-6"]);
}

/// The function keeps deferring (no free drain slot) until the notice runs out: the
/// agent stops asking, records it, and never approves; the cloud starts the event at
/// its own deadline.
#[tokio::test]
async fn a_drain_deferred_until_the_notice_ends_is_never_approved() {
    let imds = ImdsFake::start("vm-web-1").await;
    let function = SlackSink::start().await;
    let url = format!("http://{}/api/drain-before-maintenance", function.addr());
    let mut w =
        watcher(&imds, "azure", &["--drain-url", &url], &[]).with_retry_deferred(Duration::ZERO);
    announce(&imds, "E-8", "Redeploy", 2, -1);
    let deferred = r#"{"drain":"deferred","actions":[{"status":"skipped","reason":"1 drain(s) already in progress"}]}"#;
    function.script([
        SlackReply::Status(202, deferred),
        SlackReply::Status(202, deferred),
        SlackReply::Status(202, deferred),
    ]);
    w.tick().await.unwrap();
    assert!(imds.approvals().is_empty());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    w.tick().await.unwrap();
    w.tick().await.unwrap();
    assert!(imds.approvals().is_empty(), "never approved early");
    assert!(has(&w, "drain_expired", "E-8"), "{:?}", w.journal.records);
    assert_eq!(
        function.requests().len(),
        1,
        "not asked again once the notice is over"
    );
    // What was done of the drain is undone when the event ends.
    assert!(w.tracked()["E-8"].drain_failed);
}

#[test]
fn durations_and_settings_are_checked() {
    assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
    assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
    assert!(duration("0s").unwrap_err().contains("more than zero"));
    assert!(duration("fast").unwrap_err().contains("not a duration"));
    assert!(duration("3d").unwrap_err().contains("the unit is one of"));
    // 2^64/60 minutes overflowed the multiplication (a panic in a debug build).
    assert!(
        duration("307445734561825861m")
            .unwrap_err()
            .contains("at most 7 days")
    );
    assert!(
        duration("18446744073709551615h")
            .unwrap_err()
            .contains("at most 7 days")
    );
    let args = Args::try_parse_from(["reflex-agent", "--cloud", "azure"]).unwrap();
    let bad = reflex_core::settings::from_pairs(&[("REFLEX_DRAIN_POLICY", "reboot=later")]);
    assert!(
        args.watcher(&bad)
            .unwrap_err()
            .contains("REFLEX_DRAIN_POLICY")
    );
    let bad = reflex_core::settings::from_pairs(&[("REFLEX_IMDS_ENDPOINT", "169.254.169.254")]);
    assert!(
        args.watcher(&bad)
            .unwrap_err()
            .contains("REFLEX_IMDS_ENDPOINT")
    );
    assert!(Args::try_parse_from(["reflex-agent", "--cloud", "gcp"]).is_err());
}
