//! Issue 14, trust under attack: hostile ids cannot steer the ARM token, the policy
//! cannot be side-stepped by splitting the world, and nothing from an event reaches
//! Slack unescaped. Each test fails on the code before the fix.

use std::process::Stdio;

use reflex_testkit::arm::{IDENTITY_HEADER, nsg_doc};
use reflex_testkit::{ArmFake, ArmReply, SlackSink, Witness};
use serde_json::{Value, json};

use crate::support::{action_statuses as statuses, events_dir, host, world};

const SUB: &str = "00000000-0000-0000-0000-000000000000";

fn fixture(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(events_dir().join(rel)).unwrap()).unwrap()
}

/// The id an attacker writes: ARM's base URL followed by this makes `witness` the
/// URL's host (`https://management.azure.com@witness/providers/…`).
fn hijack(witness: &Witness) -> String {
    format!(
        "@{}/providers/microsoft.compute/virtualmachines/vm-web-1",
        witness.authority()
    )
}

/// Three ways an event names the VM (the agent's `scope`, Event Grid's
/// `resourceInfo.id`, a log alert's `_ResourceId`), each carrying `id`.
fn hostile_drain_payloads(id: &str) -> Vec<(&'static str, Value)> {
    let agent = json!({"source": "reflex-agent", "action": "drain", "maintenance": {
        "cloud": "azure", "id": "E-1", "kind": "redeploy", "phase": "scheduled",
        "targets": ["vm-web-1"], "not_before": null, "duration_secs": null,
        "description": null, "lifecycle": null, "trigger": "azure.imds/redeploy",
        "scope": id}});
    let mut grid = fixture("azure/event-grid/scheduled-event-redeploy-scheduled.json");
    grid[0]["data"]["resourceInfo"]["id"] = id.into();
    let mut alert = fixture("azure/common-alert-schema/log-alert-v2-scheduled-events.json");
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "_ResourceId", "value": id}));
    vec![("agent", agent), ("event grid", grid), ("log alert", alert)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_vm_id_is_refused_by_the_host_and_the_token_goes_nowhere() {
    let arm = ArmFake::start().await;
    let witness = Witness::start().await;
    let arm_url = arm.endpoint();
    let lookup = reflex_core::settings::from_pairs(&[
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "secret-arm-token"),
        (
            "REFLEX_AZURE_VM_SCOPE",
            &format!("/subscriptions/{SUB}/resourceGroups/rg-web"),
        ),
    ]);
    let deps = drain_before_maintenance::Deps::from_lookup(&lookup)
        .await
        .unwrap();
    let server = host(std::sync::Arc::new(deps), &lookup).await;
    let http = reqwest::Client::new();
    let mut ids = vec![hijack(&witness)];
    ids.extend(
        [
            "x?api-version=1#",
            "a b",
            "..",
            "a%2F..%2Fb",
            "a\\b",
        ]
        .iter()
        .map(|name| {
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{name}"
            )
        }),
    );
    for id in &ids {
        for (how, body) in hostile_drain_payloads(id) {
            let res = http
                .post(format!("{}/api/drain-before-maintenance", server.url))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let reply: Value = res.json().await.unwrap_or(Value::Null);
            let error = reply["error"].as_str().unwrap_or_default();
            assert_eq!(status, 400, "{how} with {id}: {reply}");
            assert!(
                error.contains("scope") && !error.contains('\n'),
                "{how}: {error}"
            );
        }
    }
    assert!(witness.seen().is_empty(), "{:?}", witness.seen());
    assert!(arm.requests().is_empty(), "no ARM call for a refused id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_2_on_a_hostile_vm_id_and_calls_nothing() {
    let arm = ArmFake::start().await;
    let witness = Witness::start().await;
    let (_, agent) = hostile_drain_payloads(&hijack(&witness)).remove(0);
    let dir = std::env::temp_dir().join(format!("reflex-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hostile-scope.json");
    std::fs::write(&file, serde_json::to_vec(&agent).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reflex"));
    for (k, _) in std::env::vars() {
        if k.starts_with("REFLEX_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["invoke", "drain-before-maintenance"])
        .arg(&file)
        .env("REFLEX_ARM_ENDPOINT", arm.endpoint())
        .env("REFLEX_ARM_TOKEN", "secret-arm-token")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("maintenance.scope"), "{stderr}");
    assert!(witness.seen().is_empty());
    assert!(arm.requests().is_empty());
}

const NSG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web";

/// close-open-ports behind the Azure host, the NSG `nsg-web` holding `rules`.
async fn nsg_host(
    arm: &ArmFake,
    slack: &SlackSink,
    rules: &[(&str, &[&str], &[&str])],
    extra: &[(&str, &str)],
) -> crate::support::Host {
    arm.put_nsg(nsg_doc(NSG, &[], rules));
    let mut pairs = vec![
        ("REFLEX_ARM_ENDPOINT".to_string(), arm.endpoint()),
        ("IDENTITY_ENDPOINT".to_string(), arm.identity_endpoint()),
        ("IDENTITY_HEADER".to_string(), IDENTITY_HEADER.to_string()),
        ("REFLEX_SLACK_WEBHOOK_URL".to_string(), slack.webhook_url()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    let env: std::collections::HashMap<String, String> = pairs.into_iter().collect();
    let lookup = move |k: &str| env.get(k).cloned();
    let deps = close_open_ports::Deps::from_lookup(&lookup).await.unwrap();
    host(std::sync::Arc::new(deps), &lookup).await
}

async fn post(url: &str, body: Vec<u8>) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{url}/api/close-open-ports"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// An NSG write alert (the whole NSG is judged).
fn nsg_write() -> Vec<u8> {
    std::fs::read(events_dir().join("azure/common-alert-schema/activity-log-nsg-write.json"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_url_on_another_origin_never_gets_the_arm_token() {
    let arm = ArmFake::start().await;
    let slack = SlackSink::start().await;
    let witness = Witness::start().await;
    let server = nsg_host(&arm, &slack, &[("allow-ssh-any", &["22"], &["*"])], &[]).await;
    // The GET passes; the DELETE is accepted with an operation URL elsewhere.
    arm.script([
        ArmReply::Slow(std::time::Duration::ZERO),
        ArmReply::Accepted {
            operation_url: format!("http://{}/operations/1", witness.authority()),
        },
    ]);
    let (status, outcome) = post(&server.url, nsg_write()).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        statuses(&outcome),
        [("delete_security_rule".to_string(), "failed".to_string())],
        "{outcome}"
    );
    assert!(
        outcome["actions"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("refused to send the ARM token"),
        "{outcome}"
    );
    assert!(witness.seen().is_empty(), "{:?}", witness.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nsg_outside_reflex_azure_scopes_is_left_alone() {
    let arm = ArmFake::start().await;
    let slack = SlackSink::start().await;
    let other = format!("/subscriptions/{SUB}/resourceGroups/rg-other");
    let inside = format!("/subscriptions/{SUB}/resourceGroups/rg-web,{other}");
    let run = |scopes: String| {
        let (arm, slack) = (&arm, &slack);
        async move {
            let env = [("REFLEX_AZURE_SCOPES", scopes.as_str())];
            let server = nsg_host(arm, slack, &[("allow-ssh-any", &["22"], &["*"])], &env).await;
            post(&server.url, nsg_write()).await
        }
    };
    let (status, outcome) = run(other.clone()).await;
    assert_eq!(status, 200, "{outcome}");
    assert!(
        outcome["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("outside REFLEX_AZURE_SCOPES"),
        "{outcome}"
    );
    assert!(arm.requests().is_empty(), "not even read");
    assert!(slack.requests().is_empty());
    // Inside the scope it is acted on as before.
    let (_, outcome) = run(inside).await;
    assert_eq!(
        statuses(&outcome),
        [("delete_security_rule".to_string(), "done".to_string())],
        "{outcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_split_in_two_in_an_nsg_is_closed_and_an_office_range_is_not() {
    let arm = ArmFake::start().await;
    let slack = SlackSink::start().await;
    let server = nsg_host(
        &arm,
        &slack,
        &[
            ("allow-ssh-halves", &["22"], &["0.0.0.0/1", "128.0.0.0/1"]),
            ("allow-ssh-office", &["22"], &["203.0.113.0/24"]),
        ],
        &[],
    )
    .await;
    let (_, outcome) = post(&server.url, nsg_write()).await;
    assert_eq!(
        statuses(&outcome),
        [("delete_security_rule".to_string(), "done".to_string())],
        "{outcome}"
    );
    let rules: Vec<String> = arm.resource(NSG).unwrap()["properties"]["securityRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules, ["allow-ssh-office"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_world_and_a_world_prefix_list_are_revoked_on_moto_and_an_office_range_stays() {
    let w = world().await;
    let g = w.group("split", &[]).await;
    let low = w.open(&g, 22, "0.0.0.0/1").await;
    let high = w.open(&g, 22, "128.0.0.0/1").await;
    let v6 = w.open(&g, 22, "2000::/3").await;
    w.open(&g, 22, "203.0.113.0/24").await;
    w.open(&g, 22, "10.0.0.0/8").await;
    let pl = w
        .ec2
        .create_managed_prefix_list()
        .prefix_list_name("everyone")
        .address_family("IPv4")
        .max_entries(5)
        .entries(
            aws_sdk_ec2::types::AddPrefixListEntry::builder()
                .cidr("0.0.0.0/0")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .prefix_list
        .unwrap()
        .prefix_list_id
        .unwrap();
    w.ec2
        .authorize_security_group_ingress()
        .group_id(&g)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .prefix_list_ids(
                    aws_sdk_ec2::types::PrefixListId::builder()
                        .prefix_list_id(&pl)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sweep = serde_json::to_vec(&fixture("aws/scheduled/daily-sweep.json")).unwrap();
    let run = w.invoke(&sweep, &[], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let revoked: Vec<String> = run.outcome["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "revoke_ingress" && a["status"] == "done")
        .map(|a| {
            a["detail"]["rule_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for id in [&low, &high, &v6] {
        assert!(revoked.contains(id), "{id} not revoked: {}", run.stdout);
    }
    assert_eq!(
        revoked.len(),
        4,
        "the three wide rules and the prefix-list rule: {}",
        run.stdout
    );
    let left: Vec<String> = w.rules(&g).await.into_iter().map(|(_, c)| c).collect();
    assert_eq!(left, ["10.0.0.0/8", "203.0.113.0/24"]);
}

/// Every string in `v` that sits under a `url` key.
fn urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("url", Value::String(u)) => out.push(u.clone()),
                    _ => urls(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| urls(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_named_to_ping_the_channel_reaches_slack_escaped() {
    let w = world().await;
    let hostile = "<!channel> <https://evil.example|click here>";
    let mut event = fixture("aws/sns/cloudwatch-alarm-static-threshold.json");
    let mut message: Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["AlarmName"] = hostile.into();
    message["AlarmArn"] =
        format!("arn:aws:cloudwatch:ap-northeast-1:123456789012:alarm:{hostile}").into();
    message["AlarmDescription"] = hostile.into();
    event["Records"][0]["Sns"]["Message"] = message.to_string().into();
    event["Records"][0]["Sns"]["Subject"] = format!("ALARM: \"{hostile}\"").into();
    let run = w
        .invoke_fn(
            "alert-to-slack",
            &serde_json::to_vec(&event).unwrap(),
            &[],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let sent = w.slack.requests();
    assert_eq!(sent.len(), 1, "{}", run.stdout);
    let raw = &sent[0].raw;
    assert!(!raw.contains("<!channel>"), "{raw}");
    assert!(!raw.contains("<https://evil.example"), "{raw}");
    assert!(
        raw.contains("&lt;!channel&gt;"),
        "the name is still shown: {raw}"
    );
    let mut found = Vec::new();
    urls(&sent[0].body, &mut found);
    for u in found {
        let host = reqwest::Url::parse(&u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        assert_ne!(host.as_deref(), Some("evil.example"), "{u}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_conflict_or_a_cancelled_operation_is_retryable() {
    let arm = ArmFake::start().await;
    let slack = SlackSink::start().await;
    let server = nsg_host(&arm, &slack, &[("allow-ssh-any", &["22"], &["*"])], &[]).await;
    // 409 on the DELETE: another operation holds the NSG.
    arm.script([
        ArmReply::Slow(std::time::Duration::ZERO),
        ArmReply::Status(409),
    ]);
    let (status, outcome) = post(&server.url, nsg_write()).await;
    assert_eq!(status, 503, "retry the delivery: {outcome}");
    assert_eq!(outcome["actions"][0]["retryable"], true, "{outcome}");
    // The operation ends Canceled (superseded): the redelivery re-reads and retries.
    arm.set_delete_mode(reflex_testkit::DeleteMode::AsyncCanceled);
    let (status, outcome) = post(&server.url, nsg_write()).await;
    assert_eq!(status, 503, "{outcome}");
    assert_eq!(outcome["actions"][0]["retryable"], true, "{outcome}");
    // Once ARM lets it through, the rule goes.
    arm.set_delete_mode(reflex_testkit::DeleteMode::Async);
    let (status, outcome) = post(&server.url, nsg_write()).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        statuses(&outcome),
        [("delete_security_rule".to_string(), "done".to_string())]
    );
}
