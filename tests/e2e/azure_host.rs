//! The Azure custom handler over real HTTP, with the documented custom-handler
//! payloads, against the ARM and managed-identity stand-in and the Slack stand-in.
//! The host's router is served in-process on a loopback socket with the same
//! configuration path as the binary (a settings lookup instead of the process env).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reflex_testkit::arm::{IDENTITY_HEADER, entra_token, nsg_doc};
use reflex_testkit::{ArmFake, ArmReply, SlackSink};
use serde_json::{Value, json};

use crate::support::{Host, action_statuses as statuses, events_dir, host};

const NSG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web";

struct Azure {
    arm: ArmFake,
    slack: SlackSink,
    url: String,
    http: reqwest::Client,
    _server: Host,
}

fn settings(arm: &ArmFake, slack: &SlackSink, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("REFLEX_ARM_ENDPOINT", arm.endpoint()),
        ("IDENTITY_ENDPOINT", arm.identity_endpoint()),
        ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()),
        ("REFLEX_SLACK_WEBHOOK_URL", slack.webhook_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // `{arm}` in a value stands for the stand-in's base URL.
    for (k, v) in extra {
        env.insert((*k).to_string(), v.replace("{arm}", &arm.endpoint()));
    }
    env
}

/// Starts the ARM and Slack stand-ins, the NSG `nsg-web` with the given tags, and
/// the host configured by `extra` settings.
async fn azure(tags: &[(&str, &str)], extra: &[(&str, &str)]) -> Azure {
    let arm = ArmFake::start().await;
    let slack = SlackSink::start().await;
    arm.put_nsg(nsg_doc(
        NSG,
        tags,
        &[
            ("allow-ssh-any", &["22"], &["*"]),
            ("allow-https", &["443"], &["Internet"]),
            ("allow-ssh-corp", &["22"], &["10.0.0.0/8"]),
            ("allow-rdp-any", &["3389"], &["0.0.0.0/0"]),
        ],
    ));
    let env = settings(&arm, &slack, extra);
    let lookup = move |k: &str| env.get(k).cloned().filter(|v| !v.is_empty());
    let deps = close_open_ports::Deps::from_lookup(&lookup).await.unwrap();
    let server = host(Arc::new(deps), &lookup).await;
    Azure {
        arm,
        slack,
        url: server.url.clone(),
        http: reqwest::Client::new(),
        _server: server,
    }
}

fn alert(case: &str) -> Vec<u8> {
    std::fs::read(events_dir().join("azure").join(case)).unwrap()
}

const RULE_WRITE: &str = "common-alert-schema/activity-log-administrative.json";

impl Azure {
    async fn post(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header(
                "x-azure-functions-invocationid",
                "3f1b6c2e-0000-4000-8000-000000000001",
            )
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn webhook(&self, body: Vec<u8>) -> (u16, Value) {
        self.post("/api/close-open-ports", body, &[]).await
    }

    fn arm_calls(&self) -> Vec<String> {
        self.arm
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

#[tokio::test]
async fn the_host_answers_the_readiness_ping() {
    let a = azure(&[], &[]).await;
    let res = a.http.get(format!("{}/", a.url)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn a_rule_write_alert_deletes_only_that_rule_and_posts_to_slack() {
    let a = azure(&[], &[]).await;
    let (status, outcome) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        statuses(&outcome),
        vec![("delete_security_rule".into(), "done".into())]
    );
    assert_eq!(outcome["actions"][0]["detail"]["name"], "allow-ssh-any");
    assert_eq!(
        a.arm.rule_names(NSG),
        ["allow-https", "allow-ssh-corp", "allow-rdp-any"],
        "only the written rule goes; no Deny rule is added"
    );
    let calls = a.arm_calls();
    assert_eq!(calls[0], format!("GET {NSG}"));
    assert_eq!(
        calls[1],
        format!("DELETE {NSG}/securityRules/allow-ssh-any")
    );
    assert!(
        calls[2..].iter().all(|c| c.starts_with("GET /operations/")),
        "{calls:?}"
    );
    assert!(
        calls.len() >= 4,
        "the async operation is polled until Succeeded: {calls:?}"
    );
    assert!(
        a.arm
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer test-token-1")),
        "every ARM call carries the managed-identity token"
    );
    let posts = a.slack.requests();
    assert_eq!(posts.len(), 1);
    let text = posts[0].raw.clone();
    for want in [
        "alice@contoso.com",
        "203.0.113.24",
        "allow-ssh-any",
        "nsg-web",
        "https://portal.azure.com/#@/resource/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web",
    ] {
        assert!(
            text.contains(want),
            "the Slack message lacks {want}: {text}"
        );
    }
    assert_eq!(outcome["notifications"][0]["status"], "sent");
}

#[tokio::test]
async fn the_token_is_cached_across_invocations() {
    let a = azure(&[], &[]).await;
    let (s1, _) = a.webhook(alert(RULE_WRITE)).await;
    let (s2, _) = a
        .webhook(alert("legacy/activity-log-microsoft-insights.json"))
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a.arm.tokens_issued(), 1);
    assert_eq!(a.arm.rule_names(NSG), ["allow-https", "allow-ssh-corp"]);
}

#[tokio::test]
async fn dry_run_deletes_nothing_and_reports_planned() {
    let a = azure(&[], &[("REFLEX_DRY_RUN", "true")]).await;
    let (status, outcome) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 200);
    assert_eq!(outcome["dry_run"], true);
    assert_eq!(
        statuses(&outcome),
        vec![("delete_security_rule".into(), "planned".into())]
    );
    assert_eq!(a.arm.rule_names(NSG).len(), 4);
    assert!(
        a.arm_calls().iter().all(|c| c.starts_with("GET ")),
        "{:?}",
        a.arm_calls()
    );
    assert!(a.slack.requests()[0].raw.contains("DRY RUN"));
}

#[tokio::test]
async fn an_exempt_nsg_is_untouched_and_nobody_is_paged() {
    let a = azure(&[("reflex:exempt", "true")], &[]).await;
    let (status, outcome) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&outcome),
        vec![("delete_security_rule".into(), "skipped".into())]
    );
    assert_eq!(
        outcome["actions"][0]["reason"],
        "NSG is exempt (reflex:exempt=true)"
    );
    assert_eq!(a.arm.rule_names(NSG).len(), 4);
    assert!(a.slack.requests().is_empty());
}

#[tokio::test]
async fn a_second_delivery_is_already_gone_and_posts_nothing() {
    let a = azure(&[], &[]).await;
    let (_, first) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(statuses(&first)[0].1, "done");
    let (status, second) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&second),
        vec![("delete_security_rule".into(), "skipped".into())]
    );
    assert_eq!(second["actions"][0]["reason"], "already gone");
    assert_eq!(a.slack.requests().len(), 1, "no second message");
}

#[tokio::test]
async fn arm_rate_limits_are_waited_out_and_server_errors_retried() {
    let a = azure(&[], &[]).await;
    a.arm.script([
        ArmReply::Throttled {
            retry_after_secs: 1,
        },
        ArmReply::Status(500),
    ]);
    let start = Instant::now();
    let (status, outcome) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(statuses(&outcome)[0].1, "done");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let gets = a
        .arm_calls()
        .iter()
        .filter(|c| *c == &format!("GET {NSG}"))
        .count();
    assert_eq!(gets, 3, "429, 500, then the real answer");
}

#[tokio::test]
async fn a_missing_nsg_is_already_gone_and_a_failed_delete_is_reported() {
    let a = azure(&[], &[]).await;
    let mut gone = alert(RULE_WRITE);
    let text = String::from_utf8(gone.clone())
        .unwrap()
        .replace("nsg-web", "nsg-deleted");
    gone = text.into_bytes();
    let (status, outcome) = a.webhook(gone).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&outcome),
        vec![("delete_security_rule".into(), "skipped".into())]
    );

    a.arm
        .set_delete_mode(reflex_testkit::DeleteMode::AsyncFails);
    let (status, outcome) = a.webhook(alert(RULE_WRITE)).await;
    // Not retryable (the operation itself failed): reported, as on Lambda, not retried.
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(statuses(&outcome)[0].1, "failed");
    assert!(a.slack.requests()[0].raw.contains("Could not close"));
    assert!(
        outcome["actions"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the delete failed")
    );
}

#[tokio::test]
async fn the_envelope_is_answered_with_outputs_logs_and_return_value() {
    let a = azure(&[], &[("REFLEX_DRY_RUN", "true")]).await;
    // An HTTP trigger without forwarding: the request arrives inside Data.
    let body = String::from_utf8(alert(RULE_WRITE)).unwrap();
    let envelope = json!({
        "Data": {"req": {"Url": "https://app.azurewebsites.net/api/close-open-ports", "Method": "POST",
                          "Query": {}, "Headers": {"Content-Type": ["application/json"]}, "Params": {},
                          "Body": body}},
        "Metadata": {"sys": {"MethodName": "close-open-ports", "UtcNow": "2026-11-12T10:17:43Z", "RandGuid": "5c3f"}}
    });
    let (status, reply) = a
        .post(
            "/close-open-ports",
            serde_json::to_vec(&envelope).unwrap(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 200);
    let inner: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(statuses(&inner)[0].1, "planned");
    assert_eq!(reply["ReturnValue"]["function"], "close-open-ports");
    assert!(
        reply["Logs"][0]
            .as_str()
            .unwrap()
            .contains("close-open-ports")
    );

    // An Event Grid trigger: the event in Data, string-encoded by the host.
    let event = json!({"id": "e1", "eventType": "Microsoft.Resources.ResourceWriteSuccess",
                       "subject": "/subscriptions/x", "data": {}, "dataVersion": "", "eventTime": "2026-11-12T10:00:00Z"});
    let envelope = json!({"Data": {"event": event.to_string()}, "Metadata": {"data": {}}});
    let (status, reply) = a
        .post(
            "/close-open-ports",
            serde_json::to_vec(&envelope).unwrap(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["ReturnValue"]["ignored"].is_string(), "{reply}");
    assert!(reply["Outputs"].as_object().is_some_and(|o| o.is_empty()));
}

#[tokio::test]
async fn bad_input_gets_400_and_no_arm_call() {
    let a = azure(&[], &[]).await;
    let mut wrong_type: Value = serde_json::from_slice(&alert(RULE_WRITE)).unwrap();
    wrong_type["data"]["essentials"]["monitoringService"] = json!(["x"]);
    let mut huge: Value = serde_json::from_slice(&alert(RULE_WRITE)).unwrap();
    huge["data"]["essentials"]["description"] = json!("x".repeat(5 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            alert(RULE_WRITE)[..200].to_vec(),
            "not valid JSON",
        ),
        (
            "wrong type",
            serde_json::to_vec(&wrong_type).unwrap(),
            "data.essentials.monitoringService",
        ),
        (
            "unknown schemaId",
            alert("common-alert-schema/unknown-schema-id.json"),
            "schemaId: unknown schema",
        ),
        ("empty", Vec::new(), "empty payload"),
        (
            "5 MB",
            serde_json::to_vec(&huge).unwrap(),
            "above the 1048576-byte limit",
        ),
    ];
    for (name, body, want) in cases {
        let (status, reply) = a.webhook(body).await;
        assert_eq!(status, 400, "{name}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(want), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: one line");
    }
    assert!(a.arm.requests().is_empty(), "{:?}", a.arm_calls());
    let (status, _) = a.post("/no-such-function", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401_and_changes_nothing() {
    let a = azure(&[], &[("REFLEX_WEBHOOK_TOKEN", "let-me-in")]).await;
    let (status, reply) = a.webhook(alert(RULE_WRITE)).await;
    assert_eq!(status, 401, "{reply}");
    let (status, _) = a
        .post(
            "/api/close-open-ports",
            alert(RULE_WRITE),
            &[("x-reflex-token", "let-me-out")],
        )
        .await;
    assert_eq!(status, 401);
    assert!(a.arm.requests().is_empty());
    assert_eq!(a.arm.rule_names(NSG).len(), 4);
    let (status, _) = a
        .post(
            "/api/close-open-ports?token=let-me-in",
            alert(RULE_WRITE),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(a.arm.rule_names(NSG).len(), 3);
}

#[tokio::test]
async fn the_cli_runs_the_same_function_on_an_azure_event() {
    let a = azure(&[], &[]).await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reflex"));
    for (k, _) in std::env::vars() {
        if k.starts_with("REFLEX_") || k.starts_with("IDENTITY_") {
            cmd.env_remove(k);
        }
    }
    let file = events_dir().join("azure").join(RULE_WRITE);
    cmd.arg("invoke").arg("close-open-ports").arg(&file);
    for (k, v) in settings(&a.arm, &a.slack, &[]) {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses(&outcome)[0].1, "done");
    assert_eq!(a.arm.rule_names(NSG).len(), 3);
    assert_eq!(a.slack.requests().len(), 1);
}

const AUDIENCE: &str = "api://reflex-webhook";
const ISSUER: &str = "https://sts.windows.net/8d3f4b1e-6c2a-4f7b-9e15-2b7c9a0d4e63/";

fn claims(patch: &Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut c = json!({
        "aud": AUDIENCE, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 3600,
        "appid": "461e8683-5575-4561-ac7f-899cc907d62a", "roles": ["ActionGroupsSecureWebhook"],
    });
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn entra_host(jwks_url: &str) -> Azure {
    azure(
        &[],
        &[
            ("REFLEX_WEBHOOK_AAD_AUDIENCE", AUDIENCE),
            ("REFLEX_WEBHOOK_AAD_ISSUER", ISSUER),
            ("REFLEX_WEBHOOK_AAD_JWKS_URL", jwks_url),
        ],
    )
    .await
}

#[tokio::test]
async fn entra_secure_webhook_tokens_are_verified() {
    let b = entra_host(&format!("{{arm}}{}", reflex_testkit::arm::JWKS_PATH)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = entra_token(&claims(&json!({})));
    // Change one signature character well inside it (the last one carries padding bits).
    let tampered = {
        let t = entra_token(&claims(&json!({})));
        let at = t.len() - 20;
        let c = if t.as_bytes()[at] == b'A' { "B" } else { "A" };
        format!("{}{c}{}", &t[..at], &t[at + 1..])
    };
    let refused = [
        ("no token", None),
        (
            "wrong audience",
            Some(entra_token(&claims(&json!({"aud": "api://other"})))),
        ),
        (
            "wrong issuer",
            Some(entra_token(&claims(
                &json!({"iss": "https://sts.windows.net/evil/"}),
            ))),
        ),
        (
            "expired",
            Some(entra_token(&claims(
                &json!({"exp": now - 3600, "nbf": now - 7200}),
            ))),
        ),
        (
            "no app role",
            Some(entra_token(&claims(&json!({"roles": ["Reader"]})))),
        ),
        ("bad signature", Some(tampered)),
        ("not a JWT", Some("not-a-jwt".to_string())),
    ];
    for (name, token) in refused {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        let (status, reply) = b
            .post("/api/close-open-ports", alert(RULE_WRITE), &headers)
            .await;
        assert_eq!(status, 401, "{name}: {reply}");
    }
    assert!(
        b.arm.requests().is_empty(),
        "a refused request changes nothing"
    );
    let bearer = format!("Bearer {good}");
    let (status, reply) = b
        .post(
            "/api/close-open-ports",
            alert(RULE_WRITE),
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(b.arm.rule_names(NSG).len(), 3);
    assert_eq!(b.arm.jwks_fetches(), 1, "the key set is cached");
}

#[tokio::test]
async fn unreachable_signing_keys_are_a_503_not_a_401() {
    let b = entra_host("http://127.0.0.1:9/keys").await;
    let bearer = format!("Bearer {}", entra_token(&claims(&json!({}))));
    let (status, reply) = b
        .post(
            "/api/close-open-ports",
            alert(RULE_WRITE),
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(status, 503, "{reply}");
    assert!(b.arm.requests().is_empty());
}
