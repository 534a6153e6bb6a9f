//! Bad input never crashes anything: a one-line error and exit 2, or `ignored`.

use serde_json::{Value, json};

use crate::support::{events_dir, reflex, world};

fn assert_one_line_error(run: &crate::support::Run, needle: &str) {
    assert_eq!(run.code, 2, "stdout: {} stderr: {}", run.stdout, run.stderr);
    let err = run.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("reflex: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(run.stdout.is_empty(), "no outcome on bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_get_exit_2_and_a_clear_line() {
    let w = world().await;
    let good =
        std::fs::read(events_dir().join("aws/cloudtrail/authorize-ssh-world-open.json")).unwrap();

    let truncated = &good[..good.len() / 2];
    assert_one_line_error(
        &w.invoke(truncated, &[], &[]).await,
        "not valid JSON: EOF while parsing",
    );

    assert_one_line_error(&w.invoke(b"", &[], &[]).await, "empty payload");

    let mut wrong: Value = serde_json::from_slice(&good).unwrap();
    wrong["detail"]["requestParameters"]["ipPermissions"]["items"][0]["fromPort"] =
        json!("twenty-two");
    assert_one_line_error(
        &w.invoke(&serde_json::to_vec(&wrong).unwrap(), &[], &[])
            .await,
        "detail.requestParameters.ipPermissions.items[0].fromPort: invalid type: string",
    );

    let mut no_name: Value = serde_json::from_slice(&good).unwrap();
    no_name["detail"]
        .as_object_mut()
        .unwrap()
        .remove("eventName");
    assert_one_line_error(
        &w.invoke(&serde_json::to_vec(&no_name).unwrap(), &[], &[])
            .await,
        "detail: missing field `eventName`",
    );

    assert_one_line_error(
        &w.invoke(b"[1, 2, 3]", &[], &[]).await,
        "expected a JSON object",
    );
    assert!(w.slack.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_events_are_ignored_with_exit_0() {
    let w = world().await;
    let raw =
        std::fs::read(events_dir().join("aws/eventbridge/ec2-instance-state-change.json")).unwrap();
    let run = w.invoke(&raw, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.outcome["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("not handled")
    );
    let run = w
        .invoke(br#"{"Records": [{"Sns": {"Message": "hi"}}]}"#, &[], &[])
        .await;
    assert_eq!(run.code, 0);
    assert!(
        run.outcome["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("not an EventBridge event")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_5000_permissions_is_handled_without_panic() {
    let w = world().await;
    let g = w.group("huge", &[]).await;
    let raw =
        std::fs::read(events_dir().join("aws/cloudtrail/authorize-ssh-world-open.json")).unwrap();
    let mut v: Value = serde_json::from_slice(&raw).unwrap();
    v["detail"]["requestParameters"]["groupId"] = g.clone().into();
    let perms: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"ipProtocol": "tcp", "fromPort": 10_000 + i, "toPort": 10_000 + i,
                   "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}, "ipv6Ranges": {}, "prefixListIds": {}, "groups": {}})
        })
        .collect();
    v["detail"]["requestParameters"]["ipPermissions"]["items"] = Value::Array(perms);
    v["detail"]["responseElements"] = Value::Null;
    let payload = serde_json::to_vec(&v).unwrap();
    assert!(payload.len() > 500_000);
    let run = w.invoke(&payload, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // None of these rules exist in the group and none opens a forbidden port.
    assert_eq!(run.outcome["actions"], json!([]));
    assert!(run.outcome["ignored"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_misuse_says_what_to_fix() {
    let run = reflex(&["invoke", "no-such-function", "x.json"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("unknown function 'no-such-function'; known: close-open-ports")
    );
    let run = reflex(&["invoke", "close-open-ports", "/nonexistent/event.json"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot read /nonexistent/event.json"));
    let run = reflex(&["invoke", "close-open-ports", "-", "--timeout", "nope"]).await;
    assert_eq!(run.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_exit_2_naming_the_variable() {
    let w = world().await;
    let raw = std::fs::read(events_dir().join("aws/scheduled/daily-sweep.json")).unwrap();
    let run = w
        .invoke(&raw, &[], &[("REFLEX_FORBIDDEN_PORTS", "22,ssh")])
        .await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("REFLEX_FORBIDDEN_PORTS='22,ssh'"),
        "{}",
        run.stderr
    );
}
