//! alert-to-slack end to end: the state stores against moto's DynamoDB and Azurite,
//! dedup and threads across separate runs of the real binary, and the Azure host's
//! webhook route with the Azure Table store.

use std::sync::Arc;

use reflex_testkit::{Azurite, BOT_TOKEN, store_contract};
use serde_json::Value;

use crate::support::{events_dir, host, table, world};

/// The bot posting to `#alerts`, with its state in the `reflex-alerts` table.
fn bot_env(api: &str) -> [(&'static str, &str); 4] {
    [
        ("REFLEX_SLACK_BOT_TOKEN", BOT_TOKEN),
        ("REFLEX_SLACK_API_URL", api),
        ("REFLEX_SLACK_CHANNEL", "#alerts"),
        ("REFLEX_DYNAMODB_TABLE", "reflex-alerts"),
    ]
}

fn event(rel: &str) -> Vec<u8> {
    std::fs::read(events_dir().join(rel)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_keeps_the_contract_on_moto() {
    let w = world().await;
    table(&w.sdk, "reflex-alerts").await;
    let store = reflex_aws::dynamo::DynamoStore::new(
        reflex_aws::LazySdk::from_config(w.sdk.clone()),
        "reflex-alerts",
    );
    store_contract(Arc::new(store), "ddb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_table_store_keeps_the_contract_on_azurite() {
    let azurite = Azurite::start();
    let store = reflex_azure::table::TableStore::from_connection_string(
        &azurite.connection_string(),
        "reflexalerts",
    )
    .unwrap();
    store_contract(Arc::new(store), "azt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_runs_share_dedup_and_the_thread_through_dynamodb() {
    let w = world().await;
    table(&w.sdk, "reflex-alerts").await;
    let api = w.slack.api_url();
    let env = bot_env(&api);
    let fire = event("aws/sns/cloudwatch-alarm-static-threshold.json");
    let first = w.invoke_fn("alert-to-slack", &fire, &[], &env).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.outcome["actions"][0]["status"], "done");
    // SNS delivers at least once: the same message again posts nothing.
    let dup = w.invoke_fn("alert-to-slack", &fire, &[], &env).await;
    assert_eq!(dup.code, 0, "{}", dup.stderr);
    assert_eq!(dup.outcome["actions"], Value::Array(vec![]));
    assert!(
        dup.outcome["ignored"]
            .as_str()
            .unwrap()
            .starts_with("duplicate delivery")
    );
    let ok = w
        .invoke_fn(
            "alert-to-slack",
            &event("aws/sns/cloudwatch-alarm-ok.json"),
            &[],
            &env,
        )
        .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let msgs = w.slack.messages();
    assert_eq!(msgs.len(), 2, "a parent and one reply");
    assert_eq!(msgs[1].thread_ts.as_deref(), Some(msgs[0].ts.as_str()));
    assert_eq!(msgs[0].updates, 1, "the parent now shows the resolution");
    assert_eq!(msgs[0].payload["attachments"][0]["color"], "#2EB67D");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_is_also_published_to_sns_once() {
    let w = world().await;
    table(&w.sdk, "reflex-alerts").await;
    let sns = aws_sdk_sns::Client::new(&w.sdk);
    let topic = sns
        .create_topic()
        .name("reflex-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    // moto delivers to HTTP subscribers: the stand-in records what the topic got.
    let endpoint = format!("http://{}/sns-subscriber", w.slack.addr());
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&endpoint)
        .send()
        .await
        .unwrap();
    let api = w.slack.api_url();
    let mut env = bot_env(&api).to_vec();
    env.push(("REFLEX_SNS_TOPIC_ARN", topic.as_str()));
    let fire = event("aws/sns/cloudwatch-alarm-static-threshold.json");
    for _ in 0..2 {
        let run = w.invoke_fn("alert-to-slack", &fire, &[], &env).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let published: Vec<Value> = w
        .slack
        .requests()
        .into_iter()
        .filter(|r| r.path == "/sns-subscriber")
        .map(|r| r.body)
        .collect();
    assert_eq!(published.len(), 1, "the duplicate publishes nothing");
    assert_eq!(published[0]["Type"], "Notification");
    assert_eq!(published[0]["TopicArn"], topic.as_str());
    let message = published[0]["Message"].as_str().unwrap();
    assert!(message.contains("web-cpu-high is in ALARM"), "{message}");
    // A topic that does not exist is a reported failure after the Slack post.
    let webhook = w.slack.webhook_url();
    let missing = [
        (
            "REFLEX_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:missing",
        ),
        ("REFLEX_SLACK_WEBHOOK_URL", webhook.as_str()),
    ];
    let run = w
        .invoke_fn(
            "alert-to-slack",
            &event("aws/sns/cloudwatch-alarm-ok.json"),
            &[],
            &missing,
        )
        .await;
    assert_eq!(
        run.outcome["actions"][0]["status"], "done",
        "{}",
        run.stdout
    );
    assert_eq!(run.outcome["notifications"][0]["channel"], "sns");
    assert_eq!(run.outcome["notifications"][0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_host_posts_an_alert_once_with_the_table_store() {
    let azurite = Azurite::start();
    let slack = reflex_testkit::SlackSink::start().await;
    let conn = azurite.connection_string();
    let api = slack.api_url();
    let pairs = [
        ("REFLEX_SLACK_BOT_TOKEN", BOT_TOKEN),
        ("REFLEX_SLACK_API_URL", api.as_str()),
        ("REFLEX_SLACK_CHANNEL", "#ops"),
        ("REFLEX_AZURE_TABLE", "reflexalerts"),
        ("REFLEX_AZURE_STORAGE_CONNECTION", conn.as_str()),
    ];
    let lookup = reflex_core::settings::from_pairs(&pairs);
    let deps = alert_to_slack::Deps::from_lookup(&lookup).await.unwrap();
    let server = host(Arc::new(deps), &lookup).await;
    let url = format!("{}/api/alert-to-slack", server.url);
    let http = reqwest::Client::new();
    let body = event("azure/common-alert-schema/metric-static.json");
    for _ in 0..2 {
        let r = http
            .post(&url)
            .body(body.clone())
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 1, "the duplicate delivery posted nothing");
    assert_eq!(msgs[0].channel, "COPS");
}
