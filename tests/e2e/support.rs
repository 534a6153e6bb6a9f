use std::path::{Path, PathBuf};
use std::process::Stdio;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification};
use reflex_testkit::{Moto, SlackSink};
use serde_json::Value;

pub const REGION: &str = "us-east-1";

/// One test's world: its own moto, its own Slack stand-in, an EC2 client on moto.
pub struct World {
    pub moto: Moto,
    pub slack: SlackSink,
    pub ec2: aws_sdk_ec2::Client,
    pub sdk: aws_config::SdkConfig,
}

pub async fn world() -> World {
    let moto = Moto::start();
    let slack = SlackSink::start().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    World {
        moto,
        slack,
        ec2,
        sdk,
    }
}

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub outcome: Value,
    pub stdout: String,
    pub stderr: String,
}

pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

impl World {
    /// Runs `reflex invoke close-open-ports FILE [args]` with this world's endpoints.
    pub async fn invoke(&self, payload: &[u8], args: &[&str], env: &[(&str, &str)]) -> Run {
        self.invoke_fn("close-open-ports", payload, args, env).await
    }

    /// Runs `reflex invoke FUNCTION FILE [args]` with this world's endpoints.
    pub async fn invoke_fn(
        &self,
        function: &str,
        payload: &[u8],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let dir = std::env::temp_dir().join(format!("reflex-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("event-{}.json", rand_suffix()));
        std::fs::write(&file, payload).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reflex"));
        cmd.arg("invoke").arg(function).arg(&file).args(args);
        self.configure(&mut cmd, env);
        let out = cmd.output().await.expect("run reflex");
        let _ = std::fs::remove_file(&file);
        finish(&out)
    }

    pub fn configure(&self, cmd: &mut tokio::process::Command, env: &[(&str, &str)]) {
        for (k, _) in std::env::vars() {
            if k.starts_with("REFLEX_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("REFLEX_SLACK_WEBHOOK_URL", self.slack.webhook_url())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
    }

    /// A group with the given tags; returns its id.
    pub async fn group(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let mut req = self
            .ec2
            .create_security_group()
            .group_name(name)
            .description("reflex e2e");
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            req = req.tag_specifications(spec.build());
        }
        req.send().await.unwrap().group_id.unwrap()
    }

    /// Adds one tcp ingress rule; returns its rule id.
    pub async fn open(&self, group: &str, port: i32, cidr: &str) -> String {
        let mut p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port);
        p = if cidr.contains(':') {
            p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
        } else {
            p.ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        };
        let out = self
            .ec2
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(p.build())
            .send()
            .await
            .unwrap();
        out.security_group_rules.unwrap()[0]
            .security_group_rule_id
            .clone()
            .unwrap()
    }

    /// The group's ingress rules as `(port, cidr)`, sorted.
    pub async fn rules(&self, group: &str) -> Vec<(i32, String)> {
        let out = self
            .ec2
            .describe_security_group_rules()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-id")
                    .values(group)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut v: Vec<(i32, String)> = out
            .security_group_rules
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.is_egress != Some(true))
            .map(|r| {
                (
                    r.from_port.unwrap_or(-1),
                    r.cidr_ipv4.or(r.cidr_ipv6).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

fn finish(out: &std::process::Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked: {stderr}"
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        outcome: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr,
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::SeqCst))
}

/// Runs the binary with raw CLI args (no file handling).
pub async fn reflex(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run reflex");
    finish(&out)
}

/// A CloudTrail fixture rewritten to name `group` and the rule ids in `ids`
/// (response items in order).
pub fn cloudtrail(case: &str, group: &str, ids: &[&str]) -> Vec<u8> {
    let raw = std::fs::read(events_dir().join("aws/cloudtrail").join(case)).unwrap();
    let mut v: Value = serde_json::from_slice(&raw).unwrap();
    v["detail"]["requestParameters"]["groupId"] = group.into();
    let items = v["detail"]["responseElements"]["securityGroupRuleSet"]["items"]
        .as_array_mut()
        .unwrap();
    assert_eq!(items.len(), ids.len(), "{case}: one id per response item");
    for (item, id) in items.iter_mut().zip(ids) {
        item["groupId"] = group.into();
        item["securityGroupRuleId"] = (*id).into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// `(action, status)` of each action of an outcome.
pub fn action_statuses(outcome: &Value) -> Vec<(String, String)> {
    outcome["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("status"))
        })
        .collect()
}

pub fn statuses(outcome: &Value) -> Vec<(String, String)> {
    outcome["actions"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|a| {
            (
                a["detail"]["rule_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A running Azure host (the custom handler's router on a loopback socket, with the
/// binary's configuration path); stops when dropped.
pub struct Host {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `function` the way `reflex-azure-host` does, with settings from `lookup`.
pub async fn host(
    function: std::sync::Arc<dyn reflex_runtime::Function>,
    lookup: &impl reflex_core::settings::Lookup,
) -> Host {
    let state = reflex_azure_host::AppState::new(
        vec![function],
        reflex_azure_host::Auth::from_lookup(lookup).unwrap(),
        std::time::Duration::from_secs(20),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = reflex_azure_host::app(std::sync::Arc::new(state));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Host { url, task }
}

/// A state table on moto (key `pk`, on demand), as the functions' stores expect.
pub async fn table(sdk: &aws_config::SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// A VPC and one subnet in it on moto, and an image id to launch from:
/// `(vpc, subnet, image)`.
pub async fn network(
    ec2: &aws_sdk_ec2::Client,
    cidr: &str,
    subnet_cidr: &str,
) -> (String, String, String) {
    let image = ec2.describe_images().send().await.unwrap().images.unwrap()[0]
        .image_id
        .clone()
        .unwrap();
    let vpc = ec2
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block(subnet_cidr)
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    (vpc, subnet, image)
}
