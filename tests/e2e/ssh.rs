//! block-ssh-bruteforce end to end: the real `reflex` binary on CloudWatch Logs
//! subscription deliveries, against moto's EC2 network ACLs and DynamoDB.

use std::io::Write;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Run, World, events_dir, table, world};

const FUNCTION: &str = "block-ssh-bruteforce";
const TABLE: &str = "reflex-ssh";

/// An instance in its own subnet; returns (instance id, NACL id).
async fn instance(w: &World) -> (String, String) {
    let (_, subnet, image) = crate::support::network(&w.ec2, "10.1.0.0/16", "10.1.1.0/24").await;
    let id = w
        .ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap()
        .instances
        .unwrap()[0]
        .instance_id
        .clone()
        .unwrap();
    let acl = w
        .ec2
        .describe_network_acls()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("association.subnet-id")
                .values(&subnet)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .network_acls
        .unwrap()[0]
        .network_acl_id
        .clone()
        .unwrap();
    (id, acl)
}

/// A fixture's decoded delivery, re-encoded for `stream` (and with `salt` in its
/// event ids, to make a distinct delivery of the same lines).
fn delivery(fixture: &str, stream: &str, salt: &str) -> Value {
    let path = events_dir()
        .join("aws/cloudwatch-logs")
        .join(format!("{fixture}.decoded.txt"));
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["logStream"] = stream.into();
    for e in doc["logEvents"].as_array_mut().unwrap() {
        e["id"] = format!("{salt}{}", e["id"].as_str().unwrap()).into();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    json!({"awslogs": {"data": data}})
}

/// A delivery of `lines` (one second apart) on `stream`, event ids `{salt}{i}`.
fn lines_delivery(stream: &str, salt: &str, lines: &[String]) -> Value {
    let events: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("{salt}{i}"), "timestamp": 1_795_515_300_000_i64 + i64::try_from(i).unwrap() * 1000, "message": m}))
        .collect();
    let doc = json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/var/log/secure",
        "logStream": stream, "subscriptionFilters": ["reflex-ssh"], "logEvents": events});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    json!({"awslogs": {"data": data}})
}

/// Six failed passwords from `ip`, one connection each.
fn guesses(ip: &str) -> Vec<String> {
    (0..6)
        .map(|i| {
            format!(
                "Nov 24 10:15:0{i} h sshd[{}]: Failed password for root from {ip} port {} ssh2",
                300 + i,
                6000 + i
            )
        })
        .collect()
}

async fn invoke(w: &World, payload: &Value, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec![("REFLEX_DYNAMODB_TABLE", TABLE)];
    all.extend_from_slice(env);
    w.invoke_fn(FUNCTION, &serde_json::to_vec(payload).unwrap(), args, &all)
        .await
}

/// Moves the expiry of every block record into the past.
async fn expire_blocks(w: &World) {
    let db = aws_sdk_dynamodb::Client::new(&w.sdk);
    let items = db
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    for mut item in items {
        let key = item["pk"].as_s().unwrap().clone();
        if !key.starts_with("ssh-block/") {
            continue;
        }
        let mut record: Value = serde_json::from_str(item["record"].as_s().unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        record["expires_at"] = (now - 60).into();
        item.insert(
            "record".into(),
            aws_sdk_dynamodb::types::AttributeValue::S(record.to_string()),
        );
        db.put_item()
            .table_name(TABLE)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
}

/// Inbound NACL entries as (rule number, action, CIDR), the default 32767 left out.
async fn entries(w: &World, acl: &str) -> Vec<(i32, String, String)> {
    let acls = w
        .ec2
        .describe_network_acls()
        .network_acl_ids(acl)
        .send()
        .await
        .unwrap()
        .network_acls
        .unwrap();
    let mut v: Vec<(i32, String, String)> = acls[0]
        .entries()
        .iter()
        .filter(|e| e.egress != Some(true) && e.rule_number != Some(32767))
        .map(|e| {
            (
                e.rule_number.unwrap(),
                e.rule_action.as_ref().unwrap().as_str().to_string(),
                e.cidr_block
                    .clone()
                    .or_else(|| e.ipv6_cidr_block.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn statuses(run: &Run) -> Vec<(String, String, String)> {
    run.outcome["actions"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["target"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_denied_in_the_subnet_acl_once_and_reported() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let before = entries(&w, &acl).await;
    let burst = delivery("secure-bruteforce-rhel", &id, "a");
    let run = invoke(&w, &burst, &[], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(statuses(&run), [t("deny_source", "203.0.113.7", "done")]);
    let mut want = before.clone();
    want.push((50, "deny".into(), "203.0.113.7/32".into()));
    want.sort();
    assert_eq!(entries(&w, &acl).await, want);
    let posts = w.slack.requests();
    assert_eq!(posts.len(), 1);
    let text = posts[0].body.to_string();
    for needle in [
        "Blocked 203.0.113.7",
        "13 within 600 s",
        "oracle",
        &id,
        "rule 50",
        "Expires",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }

    // The same delivery again: ignored. The same lines in a new delivery: already blocked.
    let again = invoke(&w, &burst, &[], &[]).await;
    assert!(
        again.outcome["ignored"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{}",
        again.stdout
    );
    let other = invoke(&w, &delivery("secure-bruteforce-rhel", &id, "b"), &[], &[]).await;
    assert_eq!(
        statuses(&other),
        [t("deny_source", "203.0.113.7", "skipped")]
    );
    assert!(
        other.outcome["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already blocked by rule 50")
    );
    assert_eq!(entries(&w, &acl).await, want, "nothing added");
    assert_eq!(w.slack.requests().len(), 1, "nothing posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_sources_get_their_own_rule_and_a_login_after_failures_is_reported_not_blocked() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let run = invoke(
        &w,
        &delivery("journald-json-ipv6-bruteforce", "ubuntu-24", "a"),
        &[],
        &[("REFLEX_SSH_INSTANCE_ID", &id)],
    )
    .await;
    assert_eq!(
        statuses(&run),
        [t("deny_source", "2001:db8::/64", "done")],
        "{}",
        run.stdout
    );
    assert!(
        entries(&w, &acl)
            .await
            .contains(&(50, "deny".into(), "2001:db8::/64".into()))
    );
    let before = entries(&w, &acl).await;
    let login = invoke(
        &w,
        &delivery("journald-short-iso-then-accepted", &id, "a"),
        &[],
        &[],
    )
    .await;
    assert_eq!(
        statuses(&login),
        [t("report_login", "203.0.113.7", "done")],
        "{}",
        login.stdout
    );
    assert_eq!(entries(&w, &acl).await, before, "not blocked");
    let last = w.slack.requests().last().unwrap().body.to_string();
    assert!(
        last.contains("SSH login from 203.0.113.7 after 10 failures"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_only_expired_reflex_entries() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    // Someone else's entries: one inside Reflex's range (no record), one outside.
    for (rule, cidr) in [(60, "192.0.2.9/32"), (120, "192.0.2.10/32")] {
        w.ec2
            .create_network_acl_entry()
            .network_acl_id(&acl)
            .rule_number(rule)
            .egress(false)
            .protocol("-1")
            .rule_action(aws_sdk_ec2::types::RuleAction::Deny)
            .cidr_block(cidr)
            .send()
            .await
            .unwrap();
    }
    let run = invoke(&w, &delivery("secure-bruteforce-rhel", &id, "a"), &[], &[]).await;
    assert_eq!(statuses(&run), [t("deny_source", "203.0.113.7", "done")]);
    let tick = std::fs::read(events_dir().join("aws/scheduled/daily-sweep.json")).unwrap();
    let early = w
        .invoke_fn(FUNCTION, &tick, &[], &[("REFLEX_DYNAMODB_TABLE", TABLE)])
        .await;
    assert!(
        early.outcome["ignored"]
            .as_str()
            .unwrap()
            .contains("no block has expired"),
        "{}",
        early.stdout
    );
    // The block's time is up (moved into the past in its record, so that the test
    // does not race the clock on a loaded machine).
    expire_blocks(&w).await;
    let swept = w
        .invoke_fn(FUNCTION, &tick, &[], &[("REFLEX_DYNAMODB_TABLE", TABLE)])
        .await;
    assert_eq!(
        statuses(&swept),
        [t("remove_block", "203.0.113.7", "done")],
        "{} {}",
        swept.stdout,
        swept.stderr
    );
    let left: Vec<String> = entries(&w, &acl).await.into_iter().map(|e| e.2).collect();
    assert!(
        left.contains(&"192.0.2.9/32".to_string()) && left.contains(&"192.0.2.10/32".to_string())
    );
    assert!(!left.contains(&"203.0.113.7/32".to_string()));
    let again = w
        .invoke_fn(FUNCTION, &tick, &[], &[("REFLEX_DYNAMODB_TABLE", TABLE)])
        .await;
    assert!(
        statuses(&again).is_empty(),
        "the record went with the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_control_messages_quiet_sources_and_bad_input_change_nothing() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let before = entries(&w, &acl).await;
    let dry = invoke(
        &w,
        &delivery("secure-bruteforce-rhel", &id, "a"),
        &["--dry-run"],
        &[],
    )
    .await;
    assert_eq!(statuses(&dry), [t("deny_source", "203.0.113.7", "planned")]);
    for fixture in [
        "control-message",
        "secure-below-threshold",
        "secure-private-source",
    ] {
        let raw = std::fs::read(
            events_dir()
                .join("aws/cloudwatch-logs")
                .join(format!("{fixture}.json")),
        )
        .unwrap();
        let run = w
            .invoke_fn(FUNCTION, &raw, &[], &[("REFLEX_DYNAMODB_TABLE", TABLE)])
            .await;
        assert_eq!(run.code, 0, "{fixture}: {}", run.stderr);
        assert!(
            run.outcome["ignored"].is_string(),
            "{fixture}: {}",
            run.stdout
        );
    }
    assert_eq!(entries(&w, &acl).await, before);
    let bomb = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 9 * 1024 * 1024]).unwrap();
        json!({"awslogs": {"data": base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())}})
    };
    for (payload, says) in [
        (b"{\"awslogs\": {\"data\": \"%%%\"}}".to_vec(), "not base64"),
        (
            b"{\"awslogs\": {\"data\": 5}}".to_vec(),
            "expected a base64 string",
        ),
        (serde_json::to_vec(&bomb).unwrap(), "once decompressed"),
        (b"{\"awslogs\":".to_vec(), "not valid JSON"),
    ] {
        let run = w.invoke_fn(FUNCTION, &payload, &[], &[]).await;
        assert_eq!(run.code, 2, "{says}: {}", run.stdout);
        assert_eq!(run.stderr.trim_end().lines().count(), 1);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    assert_eq!(w.slack.requests().len(), 1, "only the dry-run's message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wafv2_ip_set_can_be_the_block_list_instead_of_the_acl() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let waf = aws_sdk_wafv2::Client::new(&w.sdk);
    let set = waf
        .create_ip_set()
        .name("reflex-ssh")
        .scope(aws_sdk_wafv2::types::Scope::Regional)
        .ip_address_version(aws_sdk_wafv2::types::IpAddressVersion::Ipv4)
        .addresses("192.0.2.1/32")
        .send()
        .await
        .unwrap()
        .summary
        .unwrap();
    let arn = set.arn.unwrap();
    let addresses = || async {
        let mut v = waf
            .get_ip_set()
            .name("reflex-ssh")
            .id(set.id.clone().unwrap())
            .scope(aws_sdk_wafv2::types::Scope::Regional)
            .send()
            .await
            .unwrap()
            .ip_set
            .unwrap()
            .addresses;
        v.sort();
        v
    };
    let before = entries(&w, &acl).await;
    let env = [
        ("REFLEX_SSH_WAF_IPSET_ARN", arn.as_str()),
        ("REFLEX_SSH_BLOCK_SECS", "1"),
    ];
    let run = invoke(&w, &delivery("secure-bruteforce-rhel", &id, "a"), &[], &env).await;
    assert_eq!(
        statuses(&run),
        [t("deny_source", "203.0.113.7", "done")],
        "{} {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(addresses().await, ["192.0.2.1/32", "203.0.113.7/32"]);
    assert_eq!(entries(&w, &acl).await, before, "the ACL is not touched");
    let again = invoke(&w, &delivery("secure-bruteforce-rhel", &id, "b"), &[], &env).await;
    assert_eq!(
        statuses(&again),
        [t("deny_source", "203.0.113.7", "skipped")]
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let tick = std::fs::read(events_dir().join("aws/scheduled/daily-sweep.json")).unwrap();
    let mut sweep_env = vec![("REFLEX_DYNAMODB_TABLE", TABLE)];
    sweep_env.extend_from_slice(&env);
    let swept = w.invoke_fn(FUNCTION, &tick, &[], &sweep_env).await;
    assert_eq!(
        statuses(&swept),
        [t("remove_block", "203.0.113.7", "done")],
        "{}",
        swept.stdout
    );
    assert_eq!(
        addresses().await,
        ["192.0.2.1/32"],
        "someone else's address stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_cannot_choose_the_address_that_is_blocked() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let before = entries(&w, &acl).await;
    // The reproduction: the user name carries `8.8.8.8 port 1`.
    let lines: Vec<String> = (0..12)
        .map(|i| format!("Nov 24 10:15:{i:02} h sshd[{}]: Connection closed by invalid user x 8.8.8.8 port 1 203.0.113.99 port 50000 [preauth]", 700 + i))
        .collect();
    let run = invoke(&w, &lines_delivery(&id, "a", &lines), &[], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        statuses(&run),
        [t("deny_source", "203.0.113.99", "done")],
        "{}",
        run.stdout
    );
    let mut want = before;
    want.push((50, "deny".into(), "203.0.113.99/32".into()));
    want.sort();
    let now = entries(&w, &acl).await;
    assert_eq!(now, want);
    assert!(now.iter().all(|e| !e.2.starts_with("8.8.8.8")), "{now:?}");
    let text = w.slack.requests()[0].body.to_string();
    assert!(text.contains("Blocked 203.0.113.99"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rule_range_makes_the_oldest_block_make_way_and_says_so() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let (id, acl) = instance(&w).await;
    let env = [("REFLEX_NACL_RULE_RANGE", "50-51")];
    for (salt, ip) in [("a", "203.0.113.1"), ("b", "203.0.113.2")] {
        let run = invoke(&w, &lines_delivery(&id, salt, &guesses(ip)), &[], &env).await;
        assert_eq!(
            statuses(&run),
            [t("deny_source", ip, "done")],
            "{}",
            run.stdout
        );
    }
    let run = invoke(
        &w,
        &lines_delivery(&id, "c", &guesses("203.0.113.3")),
        &[],
        &env,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [
            t("remove_block", "203.0.113.1", "done"),
            t("deny_source", "203.0.113.3", "done")
        ],
        "{}",
        run.stdout
    );
    assert_eq!(
        run.outcome["actions"][0]["reason"],
        "rule range full: oldest block makes way"
    );
    let ours: Vec<(i32, String)> = entries(&w, &acl)
        .await
        .into_iter()
        .filter(|e| e.1 == "deny")
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        ours,
        [
            (50, "203.0.113.3/32".to_string()),
            (51, "203.0.113.2/32".to_string())
        ]
    );
    let text = w.slack.requests().last().unwrap().body.to_string();
    assert!(
        text.contains("rule range full: the oldest block, 203.0.113.1/32, made way"),
        "{text}"
    );
}
