//! drain-before-maintenance when drains overlap: two VMs in one backend pool under the
//! default cap of one drain at a time, through the agent and through Event Grid, with
//! the Azure host, the ARM and Kubernetes stand-ins and the IMDS stand-in.

use std::time::Duration;

use reflex_testkit::{ArmFake, ImdsFake, KubeFake, azure_event, not_before_in};
use serde_json::{Value, json};

use crate::drain::{POOL, admin_states, agent_for, azure_world, drain_host_and_store, scheduled};

fn settings(arm: &ArmFake, kube: &KubeFake) -> Vec<(&'static str, String)> {
    vec![
        ("REFLEX_ARM_ENDPOINT", arm.endpoint()),
        ("REFLEX_ARM_TOKEN", "test-token".into()),
        ("REFLEX_AZURE_LB_POOLS", POOL.into()),
        ("REFLEX_KUBE_API_URL", kube.url()),
        ("REFLEX_KUBE_TOKEN", "kube-token".into()),
    ]
}

fn pairs<'a>(s: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    s.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn states(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(n, s)| ((*n).to_string(), s.map(str::to_string)))
        .collect()
}

/// Two VMs (`vm-web-1` with Kubernetes node `aks-web-1`, and `vm-web-2`) in one
/// backend pool, and the drain function behind the Azure host with `extra` settings.
/// Keep every stand-in bound (`kube: _kube`) for the whole test: a dropped one stops.
struct PoolWorld {
    arm: ArmFake,
    kube: KubeFake,
    host: crate::support::Host,
    store: std::sync::Arc<dyn reflex_core::Store>,
}

async fn pool_world(extra: &[(&'static str, &str)]) -> PoolWorld {
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    let mut s = settings(&arm, &kube);
    s.extend(extra.iter().map(|(k, v)| (*k, (*v).to_string())));
    let (host, store) = drain_host_and_store(&pairs(&s)).await;
    PoolWorld {
        arm,
        kube,
        host,
        store,
    }
}

/// What the store still holds besides delivery dedup marks (`seen/`).
async fn leftovers(store: &std::sync::Arc<dyn reflex_core::Store>) -> Vec<String> {
    store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("seen/"))
        .collect()
}

fn records(agent: &reflex_agent::Watcher, record: &str) -> Vec<Value> {
    agent
        .journal
        .records
        .iter()
        .filter(|r| r["record"] == record)
        .cloned()
        .collect()
}

/// Two VMs of one pool get a Redeploy at the same time; the cap is one drain at a
/// time. The second is deferred (HTTP 202, `drain: deferred`), its agent does not
/// approve and asks again; once the first is back, the second drains and only then is
/// approved. Both recover; the pool ends with both addresses back, and no drain
/// record, slot or pending entry is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_in_one_pool_drain_one_at_a_time_and_the_second_is_approved_only_once_drained() {
    let PoolWorld {
        arm,
        kube,
        host,
        store,
    } = pool_world(&[]).await;
    let imds1 = ImdsFake::start("vm-web-1").await;
    let imds2 = ImdsFake::start("vm-web-2").await;
    let mut a1 = agent_for(&host, &imds1).with_retry_deferred(Duration::ZERO);
    let mut a2 = agent_for(&host, &imds2).with_retry_deferred(Duration::ZERO);
    let nb = not_before_in(600);
    imds1.put_event(azure_event("E-1", "Redeploy", "vm-web-1", &nb, -1));
    imds2.put_event(azure_event("E-2", "Redeploy", "vm-web-2", &nb, -1));

    a1.tick().await.unwrap();
    a2.tick().await.unwrap();
    assert_eq!(imds1.approvals(), ["E-1"]);
    assert!(
        imds2.approvals().is_empty(),
        "the second drain is deferred, so its event is not approved"
    );
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("Down")), ("vm-web-2", None)])
    );
    let deferred = records(&a2, "drain_deferred");
    assert_eq!(deferred.len(), 1, "{:?}", a2.journal.records);
    assert!(
        deferred[0]["detail"]
            .as_str()
            .unwrap()
            .contains("already in progress"),
        "{}",
        deferred[0]
    );
    assert!(records(&a2, "drain_done").is_empty());

    // Asked again while the slot is still taken: still deferred, still not approved.
    a2.tick().await.unwrap();
    assert!(imds2.approvals().is_empty());
    assert_eq!(records(&a2, "drain_deferred").len(), 2);
    assert_eq!(admin_states(&arm)[1], ("vm-web-2".to_string(), None));

    // The first VM's maintenance ends: it recovers and frees the slot.
    imds1.remove_event("E-1");
    for _ in 0..3 {
        a1.tick().await.unwrap();
    }
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", None)])
    );

    // Now the second drains, and only then is approved.
    a2.tick().await.unwrap();
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", Some("Down"))])
    );
    assert_eq!(imds2.approvals(), ["E-2"]);
    assert_eq!(records(&a2, "drain_done").len(), 1);

    imds2.remove_event("E-2");
    for _ in 0..3 {
        a2.tick().await.unwrap();
    }
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", Some("None"))])
    );
    assert!(
        kube.node("aks-web-1").unwrap()["spec"]
            .get("unschedulable")
            .is_none()
    );
    assert_eq!(leftovers(&store).await, Vec::<String>::new());
}

/// The Event Grid notice for `vm`, event id `event`.
fn scheduled_for(vm: &str, event: &str, status: &str, not_before_in: u64) -> Value {
    let text = scheduled(status, not_before_in)
        .to_string()
        .replace("vm-web-1", vm)
        .replace("88eaf97d-81f7-4057-874e-e5e2d41ce741", event);
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v[0]["id"] = format!("eg-{vm}-{status}").into();
    v
}

const EVENT_2: &str = "5a0c9d3e-2b7f-4f43-9d8e-0c6f1d2a7b11";

/// Acknowledge requests for `event`, with when they were made.
fn acks(arm: &ArmFake, event: &str) -> Vec<std::time::SystemTime> {
    arm.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/{event}/acknowledge")))
        .map(|r| r.at)
        .collect()
}

/// The timer trigger's invocation of the resume function, as the Functions host sends
/// it to a custom handler.
fn timer_tick() -> Value {
    json!({"Data": {"timer": {
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {"Last": "2026-12-02T10:00:00+00:00", "Next": "2026-12-02T10:01:00+00:00", "LastUpdated": "2026-12-02T10:00:00+00:00"},
        "IsPastDue": false}}, "Metadata": {}})
}

/// An Event Grid delivery whose drain found no free slot is answered 202 and not
/// acknowledged; the timer-triggered resume function (`drain-before-maintenance-resume`
/// behind the host) carries it on once the slot is free, and acknowledges it only
/// after the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_grid_drain_deferred_for_want_of_a_slot_is_resumed_by_the_timer_function() {
    let PoolWorld {
        arm,
        kube: _kube,
        host,
        store,
    } = pool_world(&[]).await;
    let http = reqwest::Client::new();
    let post =
        |path: &str, body: Value| http.post(format!("{}{path}", host.url)).json(&body).send();
    let webhook = "/api/drain-before-maintenance";
    let first = post(webhook, scheduled("Scheduled", 600)).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["drain"], "drained", "{first}");

    let second = post(
        webhook,
        scheduled_for("vm-web-2", EVENT_2, "Scheduled", 600),
    )
    .await
    .unwrap();
    assert_eq!(second.status(), 202, "deferred is accepted, not done");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["drain"], "deferred", "{second}");
    assert!(acks(&arm, EVENT_2).is_empty());

    let resume = "/drain-before-maintenance-resume";
    let early = post(resume, timer_tick()).await.unwrap();
    assert_eq!(early.status(), 202, "the slot is still taken");
    assert!(acks(&arm, EVENT_2).is_empty());
    assert_eq!(admin_states(&arm)[1], ("vm-web-2".to_string(), None));

    let done = post(webhook, scheduled("Completed", 0)).await.unwrap();
    assert_eq!(done.status(), 200);

    let resumed = post(resume, timer_tick()).await.unwrap();
    assert_eq!(resumed.status(), 200);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["ReturnValue"]["drain"], "drained", "{resumed}");
    assert_eq!(
        resumed["ReturnValue"]["trigger"], "azure.timer/resume",
        "{resumed}"
    );
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", Some("Down"))])
    );
    let ack = acks(&arm, EVENT_2);
    assert_eq!(ack.len(), 1);
    let pool_down = arm
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.body.to_string().contains("\"Down\""))
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(pool_down <= ack[0], "the acknowledge comes after the drain");
    let pending: Vec<String> = leftovers(&store)
        .await
        .into_iter()
        .filter(|k| k.starts_with("pending/"))
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
}

/// The agent's call for `vm`.
fn agent_call(vm: &str, event: &str, action: &str) -> Value {
    json!({"source": "reflex-agent", "action": action, "node": vm, "maintenance": {
        "cloud": "azure", "id": event, "kind": "redeploy", "phase": "scheduled",
        "targets": [vm], "not_before": null, "duration_secs": null,
        "description": null, "lifecycle": null, "trigger": "azure.imds/redeploy",
        "scope": crate::drain::vm_id(vm)}})
}

fn pool_puts(arm: &ArmFake) -> Vec<reflex_testkit::ArmRequest> {
    arm.requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.eq_ignore_ascii_case(POOL))
        .collect()
}

/// Someone else writes the backend pool between the drain's read and its write (here:
/// the other VM's address goes Down). The drain's PUT carries the ETag it read, ARM
/// refuses it with 412, and the drain reads the pool again: both changes stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_changed_between_read_and_write_is_read_again_not_overwritten() {
    let PoolWorld {
        arm,
        kube: _kube,
        host,
        ..
    } = pool_world(&[]).await;
    let mut other = arm.resource(POOL).unwrap();
    other["properties"]["loadBalancerBackendAddresses"][1]["properties"]["adminState"] =
        "Down".into();
    // The first GET of the pool is the re-read before deciding; the second is the
    // read of the read-change-write.
    arm.write_after_get(POOL, 2, other);
    let res = reqwest::Client::new()
        .post(format!("{}/api/drain-before-maintenance", host.url))
        .json(&agent_call("vm-web-1", "E-31", "drain"))
        .send()
        .await
        .unwrap();
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome["drain"], "drained", "{outcome}");
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("Down")), ("vm-web-2", Some("Down"))]),
        "the other writer's change is kept"
    );
    let puts = pool_puts(&arm);
    assert_eq!(puts.len(), 2, "the stale write is refused, then redone");
    assert!(
        puts.iter().all(|p| p.if_match.is_some()),
        "every PUT names its ETag"
    );
    assert_ne!(puts[0].if_match, puts[1].if_match);
}

/// Two VMs of one pool drained at the same moment, with a cap of 2: both addresses end
/// Down, and after both recoveries both are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_drains_of_one_pool_both_take_effect_and_both_recover() {
    let PoolWorld {
        arm,
        kube: _kube,
        host,
        store,
    } = pool_world(&[("REFLEX_DRAIN_MAX_CONCURRENT", "2")]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/drain-before-maintenance", host.url);
    let call = |vm: &str, event: &str, action: &str| {
        http.post(&url).json(&agent_call(vm, event, action)).send()
    };
    let (a, b) = tokio::join!(
        call("vm-web-1", "E-41", "drain"),
        call("vm-web-2", "E-42", "drain")
    );
    for r in [a, b] {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        let o: Value = r.json().await.unwrap();
        assert_eq!(o["drain"], "drained", "{o}");
    }
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("Down")), ("vm-web-2", Some("Down"))])
    );
    let (a, b) = tokio::join!(
        call("vm-web-1", "E-41", "recover"),
        call("vm-web-2", "E-42", "recover")
    );
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", Some("None"))])
    );
    assert_eq!(leftovers(&store).await, Vec::<String>::new());
}

/// A second notice for a node that is already out (another event, here an Event Grid
/// Redeploy after the agent's drain) joins that drain instead of replacing its record.
/// The end of the first event does not bring the node back while the second still
/// holds it; the end of the second undoes everything the first did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_event_for_a_drained_node_joins_its_drain_and_the_node_returns_after_both() {
    let PoolWorld {
        arm,
        kube,
        host,
        store,
    } = pool_world(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/drain-before-maintenance", host.url);
    let send = |body: Value| http.post(&url).json(&body).send();
    let cordoned = || kube.node("aks-web-1").unwrap()["spec"]["unschedulable"] == true;

    let first: Value = send(agent_call("vm-web-1", "E-51", "drain"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["drain"], "drained", "{first}");
    let second = send(scheduled_for("vm-web-1", EVENT_2, "Scheduled", 600))
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["drain"], "drained", "{second}");
    assert_eq!(
        acks(&arm, EVENT_2).len(),
        1,
        "the second event is acknowledged"
    );
    let record: Value =
        serde_json::from_str(&store.get("drain/vm-web-1").await.unwrap().unwrap()).unwrap();
    assert_eq!(record["event"], "E-51", "{record}");
    assert_eq!(record["joined"], json!([EVENT_2]), "{record}");
    assert_eq!(
        record["pools"][0]["addresses"],
        json!(["vm-web-1"]),
        "{record}"
    );

    let early: Value = send(agent_call("vm-web-1", "E-51", "recover"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        early["ignored"]
            .as_str()
            .unwrap()
            .contains("still holds its drain"),
        "{early}"
    );
    assert_eq!(
        admin_states(&arm)[0],
        ("vm-web-1".to_string(), Some("Down".to_string())),
        "the node stays out while the second event holds it"
    );
    assert!(cordoned());

    let done = send(scheduled_for("vm-web-1", EVENT_2, "Completed", 0))
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(
        admin_states(&arm),
        states(&[("vm-web-1", Some("None")), ("vm-web-2", None)])
    );
    assert!(!cordoned());
    assert_eq!(leftovers(&store).await, Vec::<String>::new());
}

/// A pod whose PodDisruptionBudget keeps refusing does not hold the other pods back:
/// they are evicted at once while it is retried. When the invocation ends before the
/// notice does, the drain is deferred (nothing is acknowledged), and the resume tick
/// carries the blocked eviction on; only then is the event acknowledged. Through the
/// real `reflex` binary, with the state in DynamoDB on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_blocked_pod_does_not_hold_the_others_back_and_its_eviction_resumes_later() {
    let w = crate::support::world().await;
    crate::support::table(&w.sdk, "reflex-state").await;
    let arm = ArmFake::start().await;
    let kube = KubeFake::start().await;
    azure_world(&arm, &kube);
    kube.add_pod(reflex_testkit::pod_doc(
        "shop",
        "aaa-batch",
        "aks-web-1",
        Some("ReplicaSet"),
        false,
        30,
    ));
    // Refused until the budget allows it again (below, before the resume).
    kube.refuse("shop/aaa-batch", u32::MAX);
    let mut s = settings(&arm, &kube);
    s.push(("REFLEX_DYNAMODB_TABLE", "reflex-state".into()));
    let env = pairs(&s);
    let first = w
        .invoke_fn(
            "drain-before-maintenance",
            &serde_json::to_vec(&scheduled("Scheduled", 600)).unwrap(),
            &["--timeout", "4"],
            &env,
        )
        .await;
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.stdout);
    let o = &first.outcome;
    assert_eq!(o["drain"], "deferred", "{o}");
    let pods = kube.pods();
    assert!(
        pods.contains(&"shop/aaa-batch".to_string()),
        "still protected: {pods:?}"
    );
    assert!(
        !pods.contains(&"shop/web-1".to_string()) && !pods.contains(&"shop/api-1".to_string()),
        "the other pods did not wait for it: {pods:?}"
    );
    let evict = o["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "evict_pods")
        .unwrap();
    assert_eq!(evict["status"], "skipped", "{evict}");
    assert!(
        evict["reason"].as_str().unwrap().contains("shop/aaa-batch"),
        "{evict}"
    );
    let acks = || {
        arm.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/acknowledge"))
            .count()
    };
    assert_eq!(acks(), 0, "a deferred drain is not acknowledged");

    kube.refuse("shop/aaa-batch", 0);

    let resumed = w
        .invoke_fn(
            "drain-before-maintenance",
            br#"{"source":"reflex","action":"resume"}"#,
            &["--timeout", "600"],
            &env,
        )
        .await;
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    assert_eq!(resumed.outcome["drain"], "drained", "{}", resumed.outcome);
    assert!(!kube.pods().contains(&"shop/aaa-batch".to_string()));
    assert_eq!(acks(), 1, "acknowledged once the last pod is out");
}

/// An eviction its budget never allows is given up at the deadline, by Reflex's own
/// bounded retries: the Kubernetes client does not retry 429s on its own (kube-rs 5
/// would, up to 15 times with a backoff growing to 1000 s, past any notice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_refused_for_ever_is_given_up_at_its_deadline() {
    use reflex_kube::Nodes;
    let kube = KubeFake::start().await;
    kube.add_node(reflex_testkit::node_doc("n1", "aws:///eu-west-1a/i-1"));
    kube.add_pod(reflex_testkit::pod_doc(
        "shop",
        "stuck",
        "n1",
        Some("ReplicaSet"),
        false,
        30,
    ));
    kube.refuse("shop/stuck", u32::MAX);
    let url = kube.url();
    let settings = reflex_kube::KubeSettings::from_lookup(&reflex_core::settings::from_pairs(&[
        ("REFLEX_KUBE_API_URL", url.as_str()),
        ("REFLEX_KUBE_TOKEN", "kube-token"),
    ]))
    .unwrap()
    .unwrap();
    let nodes = reflex_kube::KubeNodes::new(&settings).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let e = nodes.evict("n1", deadline).await.unwrap();
    assert_eq!(e.blocked, ["shop/stuck"]);
    let posts = kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .count();
    assert_eq!(
        u32::try_from(posts).unwrap(),
        e.refusals,
        "every refusal reached Reflex's own retry loop"
    );
    assert!(posts <= 4, "{posts} eviction requests in 2 s");
}

/// `REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL` caps drains across groups: with room in the
/// pool's own cap but a global cap of 1, the second VM is deferred, and gives back the
/// group slot it had taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_defers_a_drain_that_its_group_would_allow() {
    let PoolWorld {
        arm,
        kube: _kube,
        host,
        store,
    } = pool_world(&[
        ("REFLEX_DRAIN_MAX_CONCURRENT", "5"),
        ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "1"),
    ])
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/drain-before-maintenance", host.url);
    let call = |vm: &str, event: &str| http.post(&url).json(&agent_call(vm, event, "drain")).send();
    let first: Value = call("vm-web-1", "E-61")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["drain"], "drained", "{first}");
    let second = call("vm-web-2", "E-62").await.unwrap();
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    let slot = &second["actions"][0];
    assert_eq!(slot["action"], "take_drain_slot");
    assert!(
        slot["reason"]
            .as_str()
            .unwrap()
            .contains("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"),
        "{second}"
    );
    assert_eq!(admin_states(&arm)[1], ("vm-web-2".to_string(), None));
    let slots: Vec<(String, String)> = store.list("lease").await.unwrap().into_iter().collect();
    assert!(
        slots.iter().all(|(_, owner)| owner == "vm-web-1"),
        "only the drained VM holds slots: {slots:?}"
    );
    assert_eq!(
        slots.len(),
        2,
        "its group slot and the global one: {slots:?}"
    );
}
