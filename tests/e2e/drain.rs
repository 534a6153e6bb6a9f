//! drain-before-maintenance end to end: the real `reflex` binary against moto (EC2,
//! ELBv2, Auto Scaling, DynamoDB), the Auto Scaling lifecycle front, the Kubernetes
//! API stand-in and the ARM stand-in.

use std::time::{Duration, SystemTime};

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::Tag;
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use clap::Parser;
use reflex_testkit::{
    ArmFake, AsgFront, ImdsFake, KubeFake, azure_event, node_doc, not_before_in, pod_doc,
};
use serde_json::{Value, json};

use crate::support::{Run, World, events_dir, table, world};

const FUNCTION: &str = "drain-before-maintenance";
const TABLE: &str = "reflex-state";

/// A fleet on moto: `n` instances in Auto Scaling group `asg-web`, all registered in
/// target group `web` on port 80; `tagged` ones carry `reflex:drain=true`.
struct Fleet {
    w: World,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    asg: aws_sdk_autoscaling::Client,
    tg: String,
    ids: Vec<String>,
}

/// An instance-type HTTP target group on port 80 in `vpc`; its ARN.
async fn target_group(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
    vpc: &str,
) -> String {
    elb.create_target_group()
        .name(name)
        .protocol("HTTP".into())
        .port(80)
        .vpc_id(vpc)
        .target_type("instance".into())
        .send()
        .await
        .unwrap()
        .target_groups
        .unwrap()[0]
        .target_group_arn
        .clone()
        .unwrap()
}

async fn fleet(n: i32, tagged: bool) -> Fleet {
    let w = world().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&w.sdk);
    let asg = aws_sdk_autoscaling::Client::new(&w.sdk);
    table(&w.sdk, TABLE).await;
    let (vpc, subnet, image) = crate::support::network(&w.ec2, "10.0.0.0/16", "10.0.1.0/24").await;
    w.ec2
        .create_launch_template()
        .launch_template_name("lt-web")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type("t3.micro".into())
                .build(),
        )
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("asg-web")
        .min_size(0)
        .max_size(10)
        .desired_capacity(n)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("lt-web")
                .build(),
        )
        .vpc_zone_identifier(&subnet)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = asg
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap()
        .auto_scaling_groups
        .unwrap()[0]
        .instances
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|i| i.instance_id)
        .collect();
    assert_eq!(ids.len(), usize::try_from(n).unwrap());
    if tagged {
        w.ec2
            .create_tags()
            .set_resources(Some(ids.clone()))
            .tags(Tag::builder().key("reflex:drain").value("true").build())
            .send()
            .await
            .unwrap();
    }
    let tg = target_group(&elb, "web", &vpc).await;
    let mut reg = elb.register_targets().target_group_arn(&tg);
    for id in &ids {
        reg = reg.targets(TargetDescription::builder().id(id).build());
    }
    reg.send().await.unwrap();
    Fleet {
        w,
        elb,
        asg,
        tg,
        ids,
    }
}

impl Fleet {
    async fn registered(&self) -> Vec<String> {
        self.registered_in(&self.tg).await
    }

    async fn registered_in(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .elb
            .describe_target_health()
            .target_group_arn(group)
            .send()
            .await
            .unwrap()
            .target_health_descriptions
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| d.target.and_then(|t| t.id))
            .collect();
        v.sort();
        v
    }

    async fn lifecycle_state(&self, id: &str) -> String {
        self.asg
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap()
            .auto_scaling_instances
            .unwrap()[0]
            .lifecycle_state
            .clone()
            .unwrap()
    }

    async fn invoke(&self, payload: &Value, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![
            ("REFLEX_DYNAMODB_TABLE", TABLE),
            ("REFLEX_DRAIN_POLL_SECS", "1"),
        ];
        all.extend_from_slice(env);
        self.w
            .invoke_fn(FUNCTION, &serde_json::to_vec(payload).unwrap(), args, &all)
            .await
    }
}

fn fixture(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(events_dir().join(rel)).unwrap()).unwrap()
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn spot(id: &str, event: &str) -> Value {
    let mut v = fixture("aws/ec2/spot-interruption-warning.json");
    v["id"] = event.into();
    v["time"] = rfc3339(SystemTime::now()).into();
    v["detail"]["instance-id"] = id.into();
    v
}

fn health(ids: &[&str], status: &str, start_in: i64) -> Value {
    let mut v = fixture("aws/health/ec2-maintenance-closed.json");
    let start = SystemTime::now() + Duration::from_secs(u64::try_from(start_in.max(0)).unwrap());
    v["detail"]["statusCode"] = status.into();
    v["detail"]["startTime"] = httpdate::fmt_http_date(start).into();
    v["detail"]["affectedEntities"] = ids.iter().map(|i| json!({"entityValue": i})).collect();
    v["id"] = format!("health-{status}-{}", ids.join("-")).into();
    v
}

fn actions(run: &Run) -> Vec<(String, String)> {
    run.outcome["actions"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default().to_string(),
                a["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_warning_drains_the_target_once_and_a_completed_event_brings_it_back() {
    let f = fleet(2, true).await;
    let (a, b) = (f.ids[0].clone(), f.ids[1].clone());
    // A target group of another VPC. AWS would refuse to register `a` in it (instance
    // targets must be in the group's VPC); moto does not check, which shows that the
    // drain reads only the groups of the instance's own VPC: this one is left alone.
    let (other_vpc, _, _) = crate::support::network(&f.w.ec2, "10.9.0.0/16", "10.9.1.0/24").await;
    let other = target_group(&f.elb, "other-vpc", &other_vpc).await;
    f.elb
        .register_targets()
        .target_group_arn(&other)
        .targets(TargetDescription::builder().id(&a).build())
        .send()
        .await
        .unwrap();
    let warning = spot(&a, "spot-1");
    let run = f.invoke(&warning, &[], &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        actions(&run),
        pairs(&[
            ("take_drain_slot", "done"),
            ("deregister_target", "done"),
            ("enter_standby", "done"),
            ("wait_draining", "done"),
        ])
    );
    assert_eq!(
        f.registered().await,
        vec![b.clone()],
        "the warned instance left the target group"
    );
    assert_eq!(f.lifecycle_state(&a).await, "Standby");
    assert_eq!(
        f.registered_in(&other).await,
        vec![a.clone()],
        "another VPC's group is not read"
    );
    let posts = f.w.slack.requests();
    assert_eq!(posts.len(), 2, "start and done");
    let text = |i: usize| posts[i].body.to_string();
    assert!(text(0).contains(&format!("Draining {a}")), "{}", text(0));
    assert!(text(1).contains(&format!("Drained {a}")), "{}", text(1));

    // The same delivery again: nothing changes, nothing is posted.
    let again = f.invoke(&warning, &[], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(actions(&again).is_empty());
    assert!(
        again.outcome["ignored"]
            .as_str()
            .unwrap()
            .contains("duplicate delivery"),
        "{}",
        again.outcome
    );
    assert_eq!(f.w.slack.requests().len(), 2);

    // The maintenance is over: register again, leave Standby, free the slot.
    let closed = health(&[&a], "closed", -600);
    let back = f.invoke(&closed, &[], &[]).await;
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(
        actions(&back),
        pairs(&[
            ("register_target", "done"),
            ("exit_standby", "done"),
            ("release_drain_slot", "done")
        ])
    );
    let mut both = vec![a.clone(), b];
    both.sort();
    assert_eq!(f.registered().await, both);
    assert_eq!(f.lifecycle_state(&a).await, "InService");
    assert!(
        f.w.slack.requests()[2]
            .body
            .to_string()
            .contains(&format!("Recovered {a}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_lifecycle_hook_is_continued_only_after_the_drain() {
    let f = fleet(1, true).await;
    let front = AsgFront::start(&f.w.moto.endpoint()).await;
    let id = f.ids[0].clone();
    let mut event = fixture("aws/autoscaling/terminate-lifecycle-action.json");
    event["detail"]["EC2InstanceId"] = id.clone().into();
    let run = f
        .invoke(
            &event,
            &[],
            &[("AWS_ENDPOINT_URL_AUTO_SCALING", &front.endpoint())],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        actions(&run),
        pairs(&[
            ("take_drain_slot", "done"),
            ("deregister_target", "done"),
            ("wait_draining", "done"),
            ("complete_lifecycle_action", "done"),
        ])
    );
    assert!(f.registered().await.is_empty());
    assert_eq!(
        f.lifecycle_state(&id).await,
        "InService",
        "never put in Standby while terminating"
    );
    let calls = front.calls();
    let kinds: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        kinds,
        ["RecordLifecycleActionHeartbeat", "CompleteLifecycleAction"]
    );
    let done = &calls[1];
    assert_eq!(
        (
            done.group.as_str(),
            done.hook.as_str(),
            done.instance.as_str(),
            done.result.as_deref()
        ),
        (
            "asg-web",
            "reflex-drain-before-terminate",
            id.as_str(),
            Some("CONTINUE")
        )
    );
    assert_eq!(
        done.token.as_deref(),
        Some("15337553-35c6-4b22-b936-23715260b9f5")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_warned_at_once_drain_within_the_cap_and_the_rest_resume_later() {
    let f = fleet(5, true).await;
    let cap = [("REFLEX_DRAIN_MAX_CONCURRENT", "2")];
    let runs = futures_join(&f, &cap).await;
    let drained: Vec<&Run> = runs
        .iter()
        .filter(|r| actions(r).contains(&("deregister_target".into(), "done".into())))
        .collect();
    let held: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            actions(r).first() == Some(&("take_drain_slot".to_string(), "skipped".to_string()))
        })
        .collect();
    assert_eq!(drained.len(), 2, "{runs:#?}");
    assert_eq!(held.len(), 3);
    assert!(
        held[0].outcome["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already in progress")
    );
    assert_eq!(
        f.registered().await.len(),
        3,
        "only two left the target group"
    );

    // One drained node comes back; the next resume drains one more, not more.
    let node = drained[0].outcome["observed"][0]["node"]
        .as_str()
        .unwrap()
        .to_string();
    let back = f.invoke(&health(&[&node], "closed", -60), &[], &cap).await;
    assert!(
        actions(&back).contains(&("release_drain_slot".into(), "done".into())),
        "{}",
        back.stdout
    );
    let tick = fixture("aws/scheduled/daily-sweep.json");
    let resumed = f.invoke(&tick, &[], &cap).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let done = actions(&resumed)
        .iter()
        .filter(|a| a.0 == "deregister_target" && a.1 == "done")
        .count();
    assert_eq!(done, 1, "{}", resumed.stdout);
    assert_eq!(f.registered().await.len(), 3, "one back, one more out");
}

async fn futures_join(f: &Fleet, env: &[(&str, &str)]) -> Vec<Run> {
    let payloads: Vec<Value> = f
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| spot(id, &format!("spot-{i}")))
        .collect();
    let mut handles = Vec::new();
    for p in &payloads {
        handles.push(f.invoke(p, &[], env));
    }
    let mut out = Vec::new();
    // Start all five processes before awaiting any of them.
    let started: Vec<_> = handles.into_iter().map(Box::pin).collect();
    for r in join_all(started).await {
        out.push(r);
    }
    out
}

/// Polls every future to completion concurrently (no extra crate).
async fn join_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) -> Vec<F::Output> {
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_the_drain_and_changes_nothing() {
    let f = fleet(1, true).await;
    let id = f.ids[0].clone();
    let run = f.invoke(&spot(&id, "spot-dry"), &["--dry-run"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.outcome["dry_run"], true);
    assert!(
        actions(&run).iter().all(|a| a.1 == "planned"),
        "{}",
        run.stdout
    );
    assert_eq!(actions(&run).len(), 4);
    assert_eq!(f.registered().await, vec![id.clone()]);
    assert_eq!(f.lifecycle_state(&id).await, "InService");
    let posts = f.w.slack.requests();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body.to_string().contains("DRY RUN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_without_the_opt_in_tag_are_ignored_without_error() {
    let f = fleet(1, false).await;
    let id = f.ids[0].clone();
    let run = f.invoke(&spot(&id, "spot-untagged"), &[], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.outcome["ignored"]
            .as_str()
            .unwrap()
            .contains("reflex:drain=true missing"),
        "{}",
        run.stdout
    );
    assert_eq!(f.registered().await, vec![id]);
    assert!(f.w.slack.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_days_ahead_is_scheduled_and_drained_by_a_later_resume() {
    let f = fleet(1, true).await;
    let id = f.ids[0].clone();
    // Drain 1 s before a start 7 s away: due in about 6 s, a margin that a loaded
    // machine's slow first invocations cannot use up.
    let policy = [("REFLEX_DRAIN_POLICY", "maintenance=before:1")];
    let run = f.invoke(&health(&[&id], "upcoming", 7), &[], &policy).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(actions(&run), pairs(&[("schedule_drain", "done")]));
    assert_eq!(f.registered().await, vec![id.clone()], "nothing yet");
    let tick = fixture("aws/scheduled/daily-sweep.json");
    let early = f.invoke(&tick, &[], &policy).await;
    assert!(
        early.outcome["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("no pending drain is due"),
        "{}",
        early.stdout
    );
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let resumed = f.invoke(&tick, &[], &policy).await;
    assert!(
        actions(&resumed).contains(&("deregister_target".into(), "done".into())),
        "{}",
        resumed.stdout
    );
    assert!(f.registered().await.is_empty());
}

// ---------------------------------------------------------------- Azure

pub(crate) const SUB: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web";

pub(crate) fn vm_id(name: &str) -> String {
    format!("{SUB}/providers/Microsoft.Compute/virtualMachines/{name}")
}

pub(crate) fn nic(name: &str) -> String {
    format!("{SUB}/providers/Microsoft.Network/networkInterfaces/{name}-nic")
}

pub(crate) const POOL: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/loadBalancers/lb-web/backendAddressPools/web";

pub(crate) fn azure_world(arm: &ArmFake, kube: &KubeFake) {
    for vm in ["vm-web-1", "vm-web-2"] {
        let put = json!({"name": vm, "tags": {"reflex:drain": "true"}, "properties": {"networkProfile": {"networkInterfaces": [{"id": nic(vm)}]}}});
        arm_put(arm, &vm_id(vm), put);
    }
    let address = |vm: &str| json!({"name": vm, "properties": {"networkInterfaceIPConfiguration": {"id": format!("{}/ipConfigurations/ipconfig1", nic(vm))}}});
    arm_put(
        arm,
        POOL,
        json!({"properties": {"loadBalancerBackendAddresses": [address("vm-web-1"), address("vm-web-2")]}}),
    );
    kube.add_node(node_doc(
        "aks-web-1",
        &format!("azure://{}", vm_id("vm-web-1")),
    ));
    kube.add_pod(pod_doc(
        "shop",
        "web-1",
        "aks-web-1",
        Some("ReplicaSet"),
        false,
        600,
    ));
    kube.add_pod(pod_doc(
        "shop",
        "api-1",
        "aks-web-1",
        Some("ReplicaSet"),
        false,
        30,
    ));
    kube.add_pod(pod_doc(
        "kube-system",
        "node-agent",
        "aks-web-1",
        Some("DaemonSet"),
        false,
        30,
    ));
    kube.add_pod(pod_doc(
        "kube-system",
        "static-proxy",
        "aks-web-1",
        None,
        true,
        30,
    ));
    kube.refuse("shop/api-1", 2);
}

pub(crate) fn arm_put(arm: &ArmFake, id: &str, mut doc: Value) {
    doc["id"] = id.into();
    arm.put_nsg(doc);
}

pub(crate) fn scheduled(status: &str, not_before_in: u64) -> Value {
    let mut v = fixture("azure/event-grid/scheduled-event-redeploy-scheduled.json");
    let props = &mut v[0]["data"]["resourceInfo"]["properties"];
    props["EventStatus"] = status.into();
    props["NotBefore"] =
        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(not_before_in)).into();
    v[0]["id"] = format!("eg-{status}").into();
    v
}

pub(crate) fn admin_states(arm: &ArmFake) -> Vec<(String, Option<String>)> {
    arm.resource(POOL).unwrap()["properties"]["loadBalancerBackendAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["properties"]["adminState"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_redeploy_drains_pool_and_node_then_acknowledges_and_recovers_after_completion() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    let env = [
        ("REFLEX_ARM_ENDPOINT", arm.endpoint()),
        ("REFLEX_ARM_TOKEN", "test-token".to_string()),
        ("REFLEX_AZURE_LB_POOLS", POOL.to_string()),
        ("REFLEX_KUBE_API_URL", kube.url()),
        ("REFLEX_KUBE_TOKEN", "kube-token".to_string()),
        ("REFLEX_DYNAMODB_TABLE", TABLE.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A long invocation budget, so the notice (120 s) is what clamps the grace periods.
    let budget = ["--timeout", "600"];
    let run = w
        .invoke_fn(
            FUNCTION,
            &serde_json::to_vec(&scheduled("Scheduled", 120)).unwrap(),
            &budget,
            &env,
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        actions(&run),
        pairs(&[
            ("take_drain_slot", "done"),
            ("lb_admin_down", "done"),
            ("cordon_node", "done"),
            ("evict_pods", "done"),
            ("acknowledge_event", "done"),
        ])
    );
    assert_eq!(
        admin_states(&arm),
        vec![
            ("vm-web-1".into(), Some("Down".into())),
            ("vm-web-2".into(), None)
        ]
    );
    let node = kube.node("aks-web-1").unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(node["spec"]["taints"][0]["key"], "reflex.dev/draining");
    assert_eq!(
        kube.pods(),
        ["kube-system/node-agent", "kube-system/static-proxy"],
        "DaemonSet and mirror pods stay"
    );
    let evictions: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(
        evictions.len(),
        4,
        "api-1 refused twice by its PDB, then evicted; web-1 once"
    );
    let web = evictions
        .iter()
        .find(|r| r.path.contains("/web-1/"))
        .unwrap();
    let grace = web.body["deleteOptions"]["gracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        (100..=115).contains(&grace),
        "600 s clamped to the notice left: {grace}"
    );
    let ack = arm
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert!(ack.path.ends_with("/providers/Microsoft.Maintenance/scheduledevents/88eaf97d-81f7-4057-874e-e5e2d41ce741/acknowledge"), "{}", ack.path);
    assert!(ack.query.contains("api-version=2025-11-01"));
    let pool_put = arm
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let last_eviction = evictions.last().unwrap().at;
    assert!(
        pool_put.at <= ack.at && last_eviction <= ack.at,
        "the acknowledge comes after the drain"
    );

    let done = w
        .invoke_fn(
            FUNCTION,
            &serde_json::to_vec(&scheduled("Completed", 0)).unwrap(),
            &[],
            &env,
        )
        .await;
    assert_eq!(done.code, 0, "{}\n{}", done.stderr, done.stdout);
    assert_eq!(
        actions(&done),
        pairs(&[
            ("lb_admin_up", "done"),
            ("uncordon_node", "done"),
            ("release_drain_slot", "done")
        ])
    );
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("None".into()))
    );
    let node = kube.node("aks-web-1").unwrap();
    assert!(node["spec"].get("unschedulable").is_none(), "{node}");
    assert_eq!(node["spec"]["taints"], json!([]));
}

/// The agent's path: `reflex-agent` sees the Redeploy in IMDS, calls the function
/// (behind the Azure host) to drain, and approves in IMDS only after the function
/// answered; when the event leaves IMDS, it calls the function to recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_drains_through_the_function_then_approves_and_recovers() {
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    let imds = ImdsFake::start("vm-web-1").await;
    let (mut agent, _host) = agent_through_host(&arm, &kube, &imds).await;

    imds.put_event(azure_event(
        "E-77",
        "Redeploy",
        "vm-web-1",
        &not_before_in(600),
        -1,
    ));
    agent.tick().await.unwrap();
    assert_eq!(imds.approvals(), ["E-77"]);
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("Down".into()))
    );
    assert_eq!(
        kube.node("aks-web-1").unwrap()["spec"]["unschedulable"],
        true
    );
    assert!(
        arm.requests().iter().all(|r| r.method != "POST"),
        "the agent approves through IMDS; the function does not acknowledge through ARM"
    );

    imds.remove_event("E-77");
    for _ in 0..3 {
        agent.tick().await.unwrap();
    }
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("None".into()))
    );
    assert!(
        kube.node("aks-web-1").unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
}

/// Every fixture in `events/`, plus broken payloads, through the real binary: an
/// outcome (exit 0) or one clear line (exit 2); never a panic, never a change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_and_broken_payload_is_handled_or_refused_in_one_line() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let arm = ArmFake::start().await;
    let arm_url = arm.endpoint();
    let env = [
        ("REFLEX_DYNAMODB_TABLE", TABLE),
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "t"),
        ("REFLEX_AZURE_VM_SCOPE", SUB),
    ];
    let mut handled = 0;
    for path in reflex_testkit::json_files(&events_dir()) {
        let raw = std::fs::read(&path).unwrap();
        let run = w.invoke_fn(FUNCTION, &raw, &[], &env).await;
        let name = path.display();
        match run.code {
            0 => {
                handled += 1;
                assert!(
                    run.outcome["function"] == FUNCTION,
                    "{name}: {}",
                    run.stdout
                );
                assert!(
                    run.outcome["actions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|a| a["status"] != "done"),
                    "{name}: nothing exists here, so nothing may be changed: {}",
                    run.stdout
                );
            }
            2 => assert_eq!(
                run.stderr.trim_end().lines().count(),
                1,
                "{name}: {}",
                run.stderr
            ),
            other => panic!("{name}: exit {other}: {}", run.stderr),
        }
    }
    assert!(handled > 80, "most fixtures are valid events: {handled}");
    let spot = serde_json::to_vec(&spot("i-0123456789abcdef0", "bad")).unwrap();
    let huge = format!(
        "[{}]",
        vec!["{\"eventType\":\"x\",\"data\":{}}"; 120_000].join(",")
    );
    for (bad, says) in [
        (spot[..spot.len() / 2].to_vec(), "not valid JSON"),
        (Vec::new(), "empty payload"),
        (b"42".to_vec(), "expected a JSON object"),
        (br#"{"source":"aws.ec2","detail-type":"EC2 Spot Instance Interruption Warning","id":"1","detail":{"instance-id":7}}"#.to_vec(), "detail.instance-id"),
        (br#"{"source":"reflex-agent","action":"reboot","maintenance":{}}"#.to_vec(), "maintenance"),
        (br#"[{"eventType":"Microsoft.ResourceNotifications.MaintenanceResources.ScheduledEventEmitted","data":{"resourceInfo":{"id":"x","properties":{"EventId":1}}}}]"#.to_vec(), "[0].data.resourceInfo"),
        (huge.into_bytes(), "above the 5000 Event Grid delivers at most"),
    ] {
        let run = w.invoke_fn(FUNCTION, &bad, &[], &env).await;
        let head: String = run.stdout.chars().take(400).collect();
        assert_eq!(run.code, 2, "{says}: {head} {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    assert!(w.slack.requests().is_empty());
}

/// An operator cordoned the node before the maintenance: Reflex drains it (its own
/// taint on top) and recovery takes only Reflex's taint away; the node stays
/// cordoned, as the operator left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_cordon_survives_the_drain_and_the_recovery() {
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    let mut node = node_doc("aks-web-1", &format!("azure://{}", vm_id("vm-web-1")));
    node["spec"]["unschedulable"] = true.into();
    kube.add_node(node);
    let imds = ImdsFake::start("vm-web-1").await;
    let (mut agent, _host) = agent_through_host(&arm, &kube, &imds).await;
    imds.put_event(azure_event(
        "E-78",
        "Redeploy",
        "vm-web-1",
        &not_before_in(600),
        -1,
    ));
    agent.tick().await.unwrap();
    assert_eq!(imds.approvals(), ["E-78"]);
    let drained = kube.node("aks-web-1").unwrap();
    assert_eq!(drained["spec"]["unschedulable"], true);
    assert!(
        drained["spec"]["taints"]
            .to_string()
            .contains("reflex.dev/draining")
    );

    imds.remove_event("E-78");
    for _ in 0..3 {
        agent.tick().await.unwrap();
    }
    let after = kube.node("aks-web-1").unwrap();
    assert_eq!(
        after["spec"]["unschedulable"], true,
        "the operator's cordon stays: {after}"
    );
    assert!(
        !after["spec"]["taints"]
            .to_string()
            .contains("reflex.dev/draining"),
        "{after}"
    );
    assert!(
        after["metadata"]["annotations"]
            .get("reflex.dev/was-unschedulable")
            .is_none(),
        "{after}"
    );
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("None".into())),
        "the load balancer is still restored"
    );
}

/// An event (here the agent's call) lists two VMs but names one: each target is
/// checked on its own tags. The untagged VM's Kubernetes node is not cordoned and its
/// address stays in the pool; the outcome shows the decision per target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_targets_that_opted_in_are_drained() {
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    arm_put(
        &arm,
        &vm_id("vm-web-2"),
        json!({"name": "vm-web-2", "tags": {}, "properties": {"networkProfile": {"networkInterfaces": [{"id": nic("vm-web-2")}]}}}),
    );
    kube.add_node(node_doc(
        "aks-web-2",
        &format!("azure://{}", vm_id("vm-web-2")),
    ));
    let (arm_url, kube_url) = (arm.endpoint(), kube.url());
    let host = drain_host(&[
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "test-token"),
        ("REFLEX_AZURE_LB_POOLS", POOL),
        ("REFLEX_KUBE_API_URL", kube_url.as_str()),
        ("REFLEX_KUBE_TOKEN", "kube-token"),
    ])
    .await;
    let call = json!({"source": "reflex-agent", "action": "drain", "maintenance": {
        "cloud": "azure", "id": "E-90", "kind": "redeploy", "phase": "scheduled",
        "targets": ["vm-web-1", "vm-web-2"], "not_before": null, "duration_secs": null,
        "description": null, "lifecycle": null, "trigger": "azure.imds/redeploy",
        "scope": vm_id("vm-web-1")}});
    let res = reqwest::Client::new()
        .post(format!("{}/api/drain-before-maintenance", host.url))
        .json(&call)
        .send()
        .await
        .unwrap();
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(
        admin_states(&arm),
        [
            ("vm-web-1".to_string(), Some("Down".to_string())),
            ("vm-web-2".to_string(), None)
        ],
        "{outcome}"
    );
    assert_eq!(
        kube.node("aks-web-1").unwrap()["spec"]["unschedulable"],
        true
    );
    assert!(
        kube.node("aks-web-2").unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "the untagged VM's node is left alone: {outcome}"
    );
    let decisions: Vec<(String, String)> = outcome["observed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["node"].as_str().unwrap().to_string(),
                o["decision"]["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("vm-web-1".to_string(), "drain".to_string()),
            ("vm-web-2".to_string(), "ignore".to_string())
        ]
    );
    assert!(
        outcome["observed"][1]["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("has not opted in"),
        "{outcome}"
    );
}

/// `reflex-agent` watching `imds` and calling the drain function behind the Azure
/// host (in process, memory store kept across calls), which reaches ARM and the
/// cluster. The VM's resource id comes from the agent (IMDS compute.resourceId), so
/// no REFLEX_AZURE_VM_SCOPE. Keep the host alive as long as the agent.
async fn agent_through_host(
    arm: &ArmFake,
    kube: &KubeFake,
    imds: &ImdsFake,
) -> (reflex_agent::Watcher, crate::support::Host) {
    let (arm_url, kube_url) = (arm.endpoint(), kube.url());
    let host = drain_host(&[
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "test-token"),
        ("REFLEX_AZURE_LB_POOLS", POOL),
        ("REFLEX_KUBE_API_URL", kube_url.as_str()),
        ("REFLEX_KUBE_TOKEN", "kube-token"),
    ])
    .await;
    (agent_for(&host, imds), host)
}

/// `reflex-agent` watching `imds` and calling the drain function behind `host`.
pub(crate) fn agent_for(host: &crate::support::Host, imds: &ImdsFake) -> reflex_agent::Watcher {
    let url = format!("{}/api/drain-before-maintenance", host.url);
    let args = reflex_agent::Args::try_parse_from([
        "reflex-agent",
        "--cloud",
        "azure",
        "--drain-url",
        &url,
    ])
    .unwrap();
    let imds_url = imds.endpoint();
    args.watcher(&reflex_core::settings::from_pairs(&[(
        "REFLEX_IMDS_ENDPOINT",
        imds_url.as_str(),
    )]))
    .unwrap()
}

/// The function behind the Azure host (in process, memory store), with `settings`.
pub(crate) async fn drain_host(settings: &[(&str, &str)]) -> crate::support::Host {
    drain_host_and_store(settings).await.0
}

/// [`drain_host`], and its state store to look into.
pub(crate) async fn drain_host_and_store(
    settings: &[(&str, &str)],
) -> (crate::support::Host, std::sync::Arc<dyn reflex_core::Store>) {
    let lookup = reflex_core::settings::from_pairs(settings);
    let deps = drain_before_maintenance::Deps::from_lookup(&lookup)
        .await
        .unwrap();
    let store = deps.store.clone();
    (
        crate::support::host(std::sync::Arc::new(deps), &lookup).await,
        store,
    )
}

/// Event Grid proves a webhook endpoint with a validation event; the function (behind
/// the Azure host's forwarded HTTP route) answers `{"validationResponse": code}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_route_answers_the_event_grid_handshake() {
    let arm = ArmFake::start().await;
    let arm_url = arm.endpoint();
    let settings = [
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "t"),
    ];
    let host = drain_host(&settings).await;
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(format!("{}/api/drain-before-maintenance", host.url))
            .header("content-type", "application/json")
            .header("aeg-event-type", "SubscriptionValidation")
            .body(body)
            .send()
    };
    let raw =
        std::fs::read(events_dir().join("azure/event-grid/subscription-validation.json")).unwrap();
    let res = post(raw).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["validationResponse"],
        "f3a1c9e7-52b4-4d8e-a0c6-1b7e9d3f5a28"
    );
    // A scheduled event for a VM ARM does not know: ignored, nothing changed.
    let raw = std::fs::read(
        events_dir().join("azure/event-grid/scheduled-event-redeploy-scheduled.json"),
    )
    .unwrap();
    let res = post(raw).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["ignored"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    assert!(arm.requests().iter().all(|r| r.method == "GET"));
}

/// A Log Alerts V2 alert on the scheduled-events log names the VM by its `Computer`
/// dimension: the VM is found through `REFLEX_AZURE_VM_SCOPE`, drained (no acknowledge:
/// the alert carries no event id), and recovered when the alert resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_alert_drains_the_vm_it_names_and_its_resolution_recovers_it() {
    let w = world().await;
    table(&w.sdk, TABLE).await;
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    let arm_url = arm.endpoint();
    let env = [
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "t"),
        ("REFLEX_AZURE_LB_POOLS", POOL),
        ("REFLEX_AZURE_VM_SCOPE", SUB),
        ("REFLEX_DYNAMODB_TABLE", TABLE),
    ];
    let mut alert = fixture("azure/common-alert-schema/log-alert-v2-scheduled-events.json");
    let run = w
        .invoke_fn(FUNCTION, &serde_json::to_vec(&alert).unwrap(), &[], &env)
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(
        actions(&run),
        pairs(&[("take_drain_slot", "done"), ("lb_admin_down", "done")])
    );
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("Down".into()))
    );
    assert!(
        arm.requests().iter().all(|r| r.method != "POST"),
        "no acknowledge"
    );
    alert["data"]["essentials"]["monitorCondition"] = "Resolved".into();
    let back = w
        .invoke_fn(FUNCTION, &serde_json::to_vec(&alert).unwrap(), &[], &env)
        .await;
    assert_eq!(
        actions(&back),
        pairs(&[("lb_admin_up", "done"), ("release_drain_slot", "done")])
    );
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".into(), Some("None".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_recommendation_drains_only_when_the_policy_opts_in() {
    let f = fleet(1, true).await;
    let id = f.ids[0].clone();
    let mut event = fixture("aws/ec2/rebalance-recommendation.json");
    event["detail"]["instance-id"] = id.clone().into();
    let run = f.invoke(&event, &[], &[]).await;
    assert!(
        run.outcome["ignored"].as_str().unwrap().contains("ignores"),
        "{}",
        run.stdout
    );
    assert_eq!(f.registered().await, vec![id.clone()]);
    event["id"] = "rebalance-2".into();
    let run = f
        .invoke(&event, &[], &[("REFLEX_DRAIN_POLICY", "rebalance=now")])
        .await;
    assert!(
        actions(&run).contains(&("deregister_target".into(), "done".into())),
        "{}",
        run.stdout
    );
    assert!(f.registered().await.is_empty());
}

/// A target whose deregistration delay outlasts the notice (held `draining` by the
/// ELBv2 front): the wait ends at the notice minus the margin, and the outcome says
/// it was cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_still_draining_when_the_notice_ends_is_cut_short() {
    let f = fleet(1, true).await;
    let front = AsgFront::start(&f.w.moto.endpoint()).await;
    let id = f.ids[0].clone();
    front.keep_draining(&f.tg, &id, 80);
    // The warning came 110 s ago: 10 s of the 120 s notice are left.
    let mut event = spot(&id, "spot-cut");
    event["time"] = rfc3339(SystemTime::now() - Duration::from_secs(110)).into();
    let run = f
        .invoke(
            &event,
            &["--timeout", "600"],
            &[(
                "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
                &front.endpoint(),
            )],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let wait = run.outcome["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "wait_draining")
        .unwrap()
        .clone();
    assert_eq!(wait["status"], "done", "{wait}");
    assert_eq!(wait["detail"]["cut_short"], "the notice ran out", "{wait}");
    assert_eq!(
        wait["detail"]["still_draining"][0]["state"], "draining",
        "{wait}"
    );
    let waited = wait["detail"]["waited_secs"].as_u64().unwrap();
    assert!(
        waited <= 10,
        "cut at the notice minus the 5 s margin, not the deregistration delay: {waited} s"
    );
}

/// A terminate lifecycle hook whose target keeps draining past the invocation: the
/// wait is deferred (no CONTINUE yet), the scheduled resume carries it on once the
/// target is gone, and CONTINUE comes only after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_invocation_is_resumed_by_the_schedule_and_continue_comes_last() {
    let f = fleet(1, true).await;
    let front = AsgFront::start(&f.w.moto.endpoint()).await;
    let id = f.ids[0].clone();
    front.keep_draining(&f.tg, &id, 80);
    let mut event = fixture("aws/autoscaling/terminate-lifecycle-action.json");
    event["detail"]["EC2InstanceId"] = id.clone().into();
    let fronts = [
        ("AWS_ENDPOINT_URL_AUTO_SCALING", front.endpoint()),
        (
            "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            front.endpoint(),
        ),
    ];
    let env: Vec<(&str, &str)> = fronts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = f.invoke(&event, &["--timeout", "4"], &env).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    assert_eq!(first.outcome["drain"], "deferred", "{}", first.outcome);
    assert_eq!(
        actions(&first),
        pairs(&[
            ("take_drain_slot", "done"),
            ("deregister_target", "done"),
            ("wait_draining", "skipped"),
            ("complete_lifecycle_action", "skipped"),
        ])
    );
    let continued = |calls: &[reflex_testkit::LifecycleCall]| {
        calls
            .iter()
            .filter(|c| c.action == "CompleteLifecycleAction")
            .count()
    };
    assert_eq!(continued(&front.calls()), 0, "no CONTINUE while it drains");

    front.stop_draining(&id);
    let resumed = f
        .invoke(
            &json!({"source": "aws.events", "detail-type": "Scheduled Event", "id": "tick-1", "detail": {}}),
            &["--timeout", "600"],
            &env,
        )
        .await;
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    assert_eq!(resumed.outcome["drain"], "drained", "{}", resumed.outcome);
    let names: Vec<String> = actions(&resumed).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("complete_lifecycle_action"),
        "{names:?}"
    );
    let calls = front.calls();
    assert_eq!(continued(&calls), 1);
    assert_eq!(
        calls.last().map(|c| c.result.as_deref()),
        Some(Some("CONTINUE"))
    );
}

/// A drain slower than its slot's lease keeps the slot, renewing it while it drains:
/// another node warned meanwhile is deferred, not let in by an expired slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drain_keeps_its_slot_past_the_lease_by_renewing_it() {
    let f = fleet(2, true).await;
    let front = AsgFront::start(&f.w.moto.endpoint()).await;
    let (a, b) = (f.ids[0].clone(), f.ids[1].clone());
    front.keep_draining(&f.tg, &a, 80);
    let elb = front.endpoint();
    let env = [
        ("REFLEX_DRAIN_LEASE_SECS", "3"),
        ("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", elb.as_str()),
        ("AWS_ENDPOINT_URL_AUTO_SCALING", elb.as_str()),
    ];
    let mut event = fixture("aws/autoscaling/terminate-lifecycle-action.json");
    event["detail"]["EC2InstanceId"] = a.clone().into();
    let slow = f.invoke(&event, &["--timeout", "14"], &env);
    let other = async {
        // Once A is deregistered (its slot taken), wait past the 3 s lease.
        for _ in 0..100 {
            if !f.registered().await.contains(&a) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        f.invoke(&spot(&b, "spot-b"), &["--timeout", "60"], &env)
            .await
    };
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(slow.code, 0, "{}\n{}", slow.stderr, slow.stdout);
    assert_eq!(other.code, 0, "{}\n{}", other.stderr, other.stdout);
    assert_eq!(
        other.outcome["drain"], "deferred",
        "the slot A renews is not free: {}",
        other.outcome
    );
    assert!(
        f.registered().await.contains(&b),
        "B is not drained while A holds the slot"
    );
    assert_eq!(slow.outcome["drain"], "deferred", "{}", slow.outcome);
}

/// An AKS node pool is a scale set: its Event Grid notice names the scale set and the
/// instance (`aks-np-vmss_3`); the node is found by its providerID's scale-set
/// instance, not by a VM name, and never a node of another scale set with the same
/// instance number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aks_scale_set_instance_is_found_by_its_provider_id_and_drained() {
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    let set = format!("{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-np-vmss");
    let other = format!("{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-other-vmss");
    arm_put(
        &arm,
        &set,
        json!({"name": "aks-np-vmss", "tags": {"reflex:drain": "true"}, "properties": {}}),
    );
    kube.add_node(node_doc(
        "aks-np-vmss000003",
        &format!("azure://{set}/virtualMachines/3"),
    ));
    kube.add_node(node_doc(
        "aks-other-vmss000003",
        &format!("azure://{other}/virtualMachines/3"),
    ));
    kube.add_pod(pod_doc(
        "shop",
        "web-3",
        "aks-np-vmss000003",
        Some("ReplicaSet"),
        false,
        30,
    ));
    let event = "6b3f4e2a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let text = scheduled("Scheduled", 600)
        .to_string()
        .replace(
            "Microsoft.Compute/virtualMachines/vm-web-1",
            "Microsoft.Compute/virtualMachineScaleSets/aks-np-vmss",
        )
        .replace("\"vm-web-1\"", "\"aks-np-vmss_3\"")
        .replace("88eaf97d-81f7-4057-874e-e5e2d41ce741", event);
    let (arm_url, kube_url) = (arm.endpoint(), kube.url());
    let host = drain_host(&[
        ("REFLEX_ARM_ENDPOINT", arm_url.as_str()),
        ("REFLEX_ARM_TOKEN", "test-token"),
        ("REFLEX_KUBE_API_URL", kube_url.as_str()),
        ("REFLEX_KUBE_TOKEN", "kube-token"),
    ])
    .await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/drain-before-maintenance", host.url))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome["drain"], "drained", "{outcome}");
    assert_eq!(
        kube.node("aks-np-vmss000003").unwrap()["spec"]["unschedulable"],
        true,
        "{outcome}"
    );
    assert!(
        kube.node("aks-other-vmss000003").unwrap()["spec"]
            .get("unschedulable")
            .is_none(),
        "the other scale set's instance 3 is left alone"
    );
    assert!(!kube.pods().contains(&"shop/web-3".to_string()));
    let ack = arm
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert!(
        ack.path
            .ends_with(&format!("/virtualMachineScaleSets/aks-np-vmss/providers/Microsoft.Maintenance/scheduledevents/{event}/acknowledge")),
        "{}",
        ack.path
    );
}
