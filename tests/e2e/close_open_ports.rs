use reflex_testkit::{Reply, blocks};
use serde_json::Value;

use crate::support::{World, cloudtrail, reflex, statuses, world};

/// The scenario: tcp/22 from 0.0.0.0/0, tcp/3389 from ::/0, tcp/22 from
/// 10.0.0.0/8 and tcp/443 from 0.0.0.0/0, all opened by one call.
async fn mixed(w: &World, tags: &[(&str, &str)]) -> (String, Vec<String>, Vec<u8>) {
    mixed_named(w, "web", tags).await
}

async fn mixed_named(
    w: &World,
    name: &str,
    tags: &[(&str, &str)],
) -> (String, Vec<String>, Vec<u8>) {
    let g = w.group(name, tags).await;
    let ids = vec![
        w.open(&g, 22, "0.0.0.0/0").await,
        w.open(&g, 3389, "::/0").await,
        w.open(&g, 22, "10.0.0.0/8").await,
        w.open(&g, 443, "0.0.0.0/0").await,
    ];
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let event = cloudtrail("authorize-mixed-rules.json", &g, &refs);
    (g, ids, event)
}

fn texts(body: &Value) -> String {
    serde_json::to_string(blocks(body)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_open_ssh_and_rdp_are_revoked_and_the_rest_stays() {
    let w = world().await;
    let (g, ids, event) = mixed(&w, &[]).await;
    let run = w.invoke(&event, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        w.rules(&g).await,
        vec![(22, "10.0.0.0/8".into()), (443, "0.0.0.0/0".into())]
    );
    assert_eq!(
        statuses(&run.outcome),
        vec![
            (ids[0].clone(), "done".into()),
            (ids[1].clone(), "done".into())
        ]
    );
    assert_eq!(
        run.outcome["trigger"],
        "aws.cloudtrail/AuthorizeSecurityGroupIngress"
    );
    assert_eq!(
        run.outcome["actions"][0]["reason"],
        "tcp/22 open to 0.0.0.0/0 is forbidden"
    );
    assert_eq!(run.outcome["notifications"][0]["status"], "sent");

    let posts = w.slack.requests();
    assert_eq!(posts.len(), 1);
    let body = &posts[0].body;
    assert_eq!(blocks(body)[0]["type"], "header");
    let header = blocks(body)[0]["text"]["text"].as_str().unwrap_or_default();
    assert!(
        header.contains(&format!("Closed 2 world-open rules on {g} (web)")),
        "{header}"
    );
    let all = texts(body);
    assert!(
        all.contains("arn:aws:iam::123456789012:user/"),
        "who: {all}"
    );
    assert!(all.contains("Source IP"), "{all}");
    assert!(
        all.contains(&ids[0]) && all.contains(&ids[1]),
        "rule by rule: {all}"
    );
    assert!(
        all.contains("123456789012") && all.contains("us-east-1"),
        "where: {all}"
    );
    assert!(!all.contains("DRY RUN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_reports_planned() {
    let w = world().await;
    let (g, ids, event) = mixed(&w, &[]).await;
    let before = w.rules(&g).await;
    let run = w.invoke(&event, &["--dry-run"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.rules(&g).await, before);
    assert_eq!(run.outcome["dry_run"], true);
    assert_eq!(
        statuses(&run.outcome),
        vec![
            (ids[0].clone(), "planned".into()),
            (ids[1].clone(), "planned".into())
        ]
    );
    let posts = w.slack.requests();
    assert_eq!(posts.len(), 1);
    assert!(texts(&posts[0].body).contains("DRY RUN"));
    assert!(
        blocks(&posts[0].body)[0]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Would close")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_from_the_environment_is_honoured() {
    let w = world().await;
    let (g, _, event) = mixed(&w, &[]).await;
    let before = w.rules(&g).await;
    let run = w.invoke(&event, &[], &[("REFLEX_DRY_RUN", "true")]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.rules(&g).await, before);
    assert_eq!(run.outcome["dry_run"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_group_is_untouched_and_nobody_is_paged() {
    let w = world().await;
    let (g, _, event) = mixed(&w, &[("reflex:exempt", "true")]).await;
    let before = w.rules(&g).await;
    let run = w.invoke(&event, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.rules(&g).await, before);
    let reasons: Vec<&str> = run.outcome["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons, vec!["group is exempt (reflex:exempt=true)"; 2]);
    assert!(w.slack.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_delivery_is_already_gone_and_posts_nothing() {
    let w = world().await;
    let (g, ids, event) = mixed(&w, &[]).await;
    let first = w.invoke(&event, &[], &[]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = w.invoke(&event, &[], &[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        statuses(&second.outcome),
        vec![
            (ids[0].clone(), "skipped".into()),
            (ids[1].clone(), "skipped".into())
        ]
    );
    assert_eq!(second.outcome["actions"][0]["reason"], "already gone");
    assert_eq!(second.outcome["notifications"], serde_json::json!([]));
    assert_eq!(w.slack.requests().len(), 1, "only the first delivery posts");
    assert_eq!(w.rules(&g).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_finds_preexisting_offenders_in_several_groups() {
    let w = world().await;
    let a = w.group("legacy-a", &[]).await;
    let b = w.group("legacy-b", &[]).await;
    let c = w.group("legacy-exempt", &[("reflex:exempt", "true")]).await;
    w.open(&a, 22, "0.0.0.0/0").await;
    w.open(&a, 443, "0.0.0.0/0").await;
    w.open(&b, 3389, "::/0").await;
    w.open(&b, 22, "192.168.0.0/16").await;
    w.open(&c, 22, "0.0.0.0/0").await;
    let sweep =
        std::fs::read(crate::support::events_dir().join("aws/scheduled/daily-sweep.json")).unwrap();
    let run = w.invoke(&sweep, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.rules(&a).await, vec![(443, "0.0.0.0/0".into())]);
    assert_eq!(w.rules(&b).await, vec![(22, "192.168.0.0/16".into())]);
    assert_eq!(w.rules(&c).await, vec![(22, "0.0.0.0/0".into())]);
    let done = statuses(&run.outcome)
        .iter()
        .filter(|(_, s)| s == "done")
        .count();
    assert_eq!(done, 2);
    let posts = w.slack.requests();
    assert_eq!(posts.len(), 1);
    let header = blocks(&posts[0].body)[0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        header.contains("2 security groups") || header.contains("3 security groups"),
        "{header}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_noncompliance_checks_the_whole_group() {
    let w = world().await;
    let g = w.group("config", &[]).await;
    w.open(&g, 22, "0.0.0.0/0").await;
    w.open(&g, 8080, "0.0.0.0/0").await;
    let raw = std::fs::read(
        crate::support::events_dir().join("aws/config/restricted-ssh-noncompliant.json"),
    )
    .unwrap();
    let mut v: Value = serde_json::from_slice(&raw).unwrap();
    v["detail"]["resourceId"] = g.clone().into();
    v["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        ["resourceId"] = g.clone().into();
    let run = w.invoke(&serde_json::to_vec(&v).unwrap(), &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.rules(&g).await, vec![(8080, "0.0.0.0/0".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notification_never_undoes_the_remediation() {
    let w = world().await;
    let (g, _, event) = mixed(&w, &[]).await;
    w.slack.script([Reply::Status(404, "no_service")]);
    let run = w.invoke(&event, &[], &[]).await;
    assert_eq!(
        run.code, 0,
        "notification failures are reported, not fatal: {}",
        run.stderr
    );
    assert_eq!(w.rules(&g).await.len(), 2);
    assert_eq!(run.outcome["notifications"][0]["status"], "failed");
    assert_eq!(
        run.outcome["notifications"][0]["error"],
        "HTTP 404 no_service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_rate_limits_and_server_errors_are_retried_by_the_binary() {
    let w = world().await;
    let (_, _, event) = mixed(&w, &[]).await;
    w.slack.script([
        Reply::RateLimited {
            retry_after_secs: 1,
        },
        Reply::Status(500, "rollup_error"),
    ]);
    let run = w.invoke(&event, &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome["notifications"][0]["status"], "sent");
    assert_eq!(run.outcome["notifications"][0]["attempts"], 3);
    let posts = w.slack.requests();
    assert_eq!(posts.len(), 3);
    assert!(
        posts[1].at.duration_since(posts[0].at).as_millis() >= 950,
        "Retry-After honoured"
    );
    assert_eq!(posts[0].body, posts[2].body, "the same message is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_url_can_come_from_an_ssm_securestring() {
    let w = world().await;
    let ssm = aws_sdk_ssm::Client::new(&w.sdk);
    ssm.put_parameter()
        .name("/reflex/slack-webhook")
        .value(w.slack.webhook_url())
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let (_, _, event) = mixed(&w, &[]).await;
    let mut cmd_env = vec![("REFLEX_SLACK_WEBHOOK_SECRET", "/reflex/slack-webhook")];
    // The reference is used only when no URL is set.
    cmd_env.push(("REFLEX_SLACK_WEBHOOK_URL", ""));
    let run = w.invoke(&event, &[], &cmd_env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome["notifications"][0]["status"], "sent");
    assert_eq!(w.slack.requests().len(), 1);
    assert!(
        !run.stdout.contains("reflex-test-secret") && !run.stderr.contains("reflex-test-secret")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_url_can_come_from_a_secrets_manager_json_secret() {
    let w = world().await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk);
    let arn = sm
        .create_secret()
        .name("reflex/slack")
        .secret_string(serde_json::json!({"webhook_url": w.slack.webhook_url()}).to_string())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let (_, _, event) = mixed(&w, &[]).await;
    let env = [
        ("REFLEX_SLACK_WEBHOOK_SECRET", arn.as_str()),
        ("REFLEX_SLACK_WEBHOOK_URL", ""),
    ];
    let run = w.invoke(&event, &[], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome["notifications"][0]["status"], "sent");
    assert_eq!(w.slack.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_a_failed_notification_and_the_rules_are_still_revoked() {
    let w = world().await;
    let (group, _, event) = mixed(&w, &[]).await;
    let env = [
        (
            "REFLEX_SLACK_WEBHOOK_SECRET",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:reflex/none-AbCdEf",
        ),
        ("REFLEX_SLACK_WEBHOOK_URL", ""),
    ];
    let run = w.invoke(&event, &[], &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome["notifications"][0]["status"], "failed");
    assert_eq!(w.rules(&group).await.len(), 2, "remediation is not undone");
    assert!(w.slack.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_also_published_to_sns_when_configured() {
    let w = world().await;
    let sns = aws_sdk_sns::Client::new(&w.sdk);
    let topic = sns
        .create_topic()
        .name("reflex")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (_, _, event) = mixed(&w, &[]).await;
    let run = w
        .invoke(&event, &[], &[("REFLEX_SNS_TOPIC_ARN", &topic)])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let channels: Vec<(&str, &str)> = run.outcome["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap_or_default(),
                n["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(channels, vec![("slack", "sent"), ("sns", "sent")]);
    // A topic that does not exist is a reported failure, not a crash.
    let missing = "arn:aws:sns:us-east-1:123456789012:missing";
    let (_, _, event2) = mixed_named(&w, "web-2", &[]).await;
    let run = w
        .invoke(&event2, &[], &[("REFLEX_SNS_TOPIC_ARN", missing)])
        .await;
    assert_eq!(run.outcome["notifications"][1]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_ec2_is_an_error_not_a_panic() {
    let w = world().await;
    let (g, ids, _) = mixed(&w, &[]).await;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let event = cloudtrail("authorize-mixed-rules.json", &g, &refs);
    let run = w
        .invoke(
            &event,
            &["--timeout", "5"],
            &[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
                ("AWS_MAX_ATTEMPTS", "1"),
            ],
        )
        .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("reflex: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("DispatchFailure") || run.stderr.contains("Timeout"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_lists_every_function_and_its_triggers() {
    let run = reflex(&["functions"]).await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("close-open-ports\n"));
    assert!(run.stdout.contains("AuthorizeSecurityGroupIngress"));
    assert!(run.stdout.contains("Scheduled Event"));
}
