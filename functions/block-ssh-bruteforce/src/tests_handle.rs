//! The act step in process: in-memory network ACLs, IP set and store, a recording
//! notifier, and a store that fails on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use reflex_aws::logs::LogEvent;
use reflex_aws::nacl::{AclEntry, AclView};
use reflex_core::settings::from_pairs;
use reflex_core::store::{MemoryStore, StoreError, ThreadRef};
use reflex_core::{CloudError, CloudErrorKind, NotificationRecord};

use super::*;

const INSTANCE: &str = "i-0abc1234def567890";
const ACL: &str = "acl-0123456789abcdef0";
const IP_SET: &str = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh/abc";

#[derive(Default)]
struct Acls(Mutex<Vec<AclEntry>>);

impl Acls {
    fn entries(&self) -> Vec<(i32, String)> {
        let mut v: Vec<(i32, String)> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.rule_number, e.cidr.clone()))
            .collect();
        v.sort();
        v
    }
}

#[async_trait::async_trait]
impl NetworkAcls for Acls {
    async fn of_instance(&self, instance: &str) -> Result<Option<AclView>, CloudError> {
        Ok((instance == INSTANCE).then(|| AclView {
            instance: instance.into(),
            subnet: "subnet-1".into(),
            acl: ACL.into(),
            inbound: self.0.lock().unwrap().clone(),
        }))
    }
    async fn inbound(&self, _acl: &str) -> Result<Option<Vec<AclEntry>>, CloudError> {
        Ok(Some(self.0.lock().unwrap().clone()))
    }
    async fn deny(&self, _acl: &str, rule_number: i32, cidr: &str) -> Result<(), CloudError> {
        let mut v = self.0.lock().unwrap();
        if v.iter().any(|e| e.rule_number == rule_number) {
            let code = "NetworkAclEntryAlreadyExists";
            return Err(CloudError::new(CloudErrorKind::Other, code, "taken"));
        }
        v.push(AclEntry {
            rule_number,
            action: "deny".into(),
            cidr: cidr.into(),
        });
        Ok(())
    }
    async fn remove(&self, _acl: &str, rule_number: i32) -> Result<(), CloudError> {
        self.0
            .lock()
            .unwrap()
            .retain(|e| e.rule_number != rule_number);
        Ok(())
    }
}

#[derive(Default)]
struct Sets(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl IpSets for Sets {
    async fn addresses(&self, _: &reflex_aws::waf::IpSetRef) -> Result<Vec<String>, CloudError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn add(&self, _: &reflex_aws::waf::IpSetRef, cidr: &str) -> Result<bool, CloudError> {
        self.0.lock().unwrap().push(cidr.into());
        Ok(true)
    }
    async fn remove(&self, _: &reflex_aws::waf::IpSetRef, cidr: &str) -> Result<bool, CloudError> {
        self.0.lock().unwrap().retain(|c| c != cidr);
        Ok(true)
    }
}

/// A store whose writes of block records fail (DynamoDB throttling, say).
#[derive(Debug, Default)]
struct FailingBlockWrites(MemoryStore);

#[async_trait::async_trait]
impl Store for FailingBlockWrites {
    async fn claim(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        self.0.claim(key, lease).await
    }
    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.0.confirm(key, ttl).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.0.release(key).await
    }
    async fn thread(&self, key: &str) -> Result<Option<ThreadRef>, StoreError> {
        self.0.thread(key).await
    }
    async fn save_thread(&self, key: &str, t: &ThreadRef, ttl: Duration) -> Result<(), StoreError> {
        self.0.save_thread(key, t, ttl).await
    }
    async fn count(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.0.count(key, ttl).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        if key.starts_with("ssh-block/") {
            return Err(StoreError::new("ProvisionedThroughputExceeded", true));
        }
        self.0.put(key, value, ttl).await
    }
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.0.list(prefix).await
    }
    async fn hold(&self, key: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        self.0.hold(key, owner, lease).await
    }
    async fn let_go(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        self.0.let_go(key, owner).await
    }
}

#[derive(Default)]
struct Said(Mutex<Vec<Message>>);

#[async_trait::async_trait]
impl Notifier for Said {
    async fn send(&self, message: &Message, _: std::time::Instant) -> NotificationRecord {
        self.0.lock().unwrap().push(message.clone());
        NotificationRecord::new("test", 1, None)
    }
}

struct World {
    deps: Deps,
    acls: Arc<Acls>,
    sets: Arc<Sets>,
    said: Arc<Said>,
}

fn world(env: &[(&str, &str)], store: Arc<dyn Store>) -> World {
    let (acls, sets, said) = (
        Arc::new(Acls::default()),
        Arc::new(Sets::default()),
        Arc::new(Said::default()),
    );
    let deps = Deps {
        config: Config::from_lookup(&from_pairs(env)).unwrap(),
        acls: acls.clone(),
        ip_sets: sets.clone(),
        store,
        notifiers: vec![said.clone()],
    };
    World {
        deps,
        acls,
        sets,
        said,
    }
}

/// Six failed passwords from `ip` (one connection each), as one delivery.
fn burst(ip: &str) -> Batch {
    let log_events = (0..6)
        .map(|i| LogEvent {
            id: format!("{ip}-{i}"),
            timestamp: 1_795_515_300_000 + i * 1000,
            message: format!(
                "Nov 24 10:15:0{i} h sshd[{}]: Failed password for root from {ip} port {} ssh2",
                100 + i,
                5000 + i
            ),
        })
        .collect();
    Batch {
        message_type: "DATA_MESSAGE".into(),
        owner: "123456789012".into(),
        log_group: "/var/log/secure".into(),
        log_stream: INSTANCE.into(),
        subscription_filters: Vec::new(),
        log_events,
    }
}

async fn deliver(w: &World, b: &Batch) -> Result<Outcome, HandleError> {
    let inv = Invocation::with_budget(Duration::from_secs(5));
    sources(&w.deps, b, "aws.logs/test", &lines_of(b), &inv).await
}

fn actions(o: &Outcome) -> Vec<(String, String, ActionStatus)> {
    o.actions
        .iter()
        .map(|a| (a.action.clone(), a.target.clone(), a.status))
        .collect()
}

#[tokio::test]
async fn a_block_is_recorded_before_its_entry_so_a_failing_store_adds_no_entry() {
    let w = world(&[], Arc::new(FailingBlockWrites::default()));
    let r = deliver(&w, &burst("203.0.113.7")).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(w.acls.entries(), [], "no entry without its record");
    assert!(w.said.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_store_adds_nothing_to_the_ip_set_either() {
    let w = world(
        &[("REFLEX_SSH_WAF_IPSET_ARN", IP_SET)],
        Arc::new(FailingBlockWrites::default()),
    );
    assert!(deliver(&w, &burst("203.0.113.7")).await.is_err());
    assert!(w.sets.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_entry_that_could_not_be_made_leaves_a_record_the_sweep_drops() {
    let env = [
        ("REFLEX_SSH_BLOCK_SECS", "1"),
        ("REFLEX_NACL_RULE_RANGE", "50-51"),
    ];
    let w = world(&env, Arc::new(MemoryStore::default()));
    // Rule 50 is someone else's, and rule 51 is taken between the read and the write
    // (a concurrent delivery): the entry fails, its record stays behind.
    w.acls.deny(ACL, 50, "192.0.2.1/32").await.unwrap();
    let view = w.acls.of_instance(INSTANCE).await.unwrap().unwrap();
    w.acls.deny(ACL, 51, "192.0.2.2/32").await.unwrap();
    let b = new_block(
        &w.deps,
        "203.0.113.7/32".parse().unwrap(),
        ACL,
        51,
        INSTANCE,
        6,
    );
    let made = Made {
        action: String::new(),
        key: format!("ssh-block/{}/203.0.113.7/51", view.acl),
        detail: Value::Null,
        block: b,
    };
    let mut out = Outcome::ignored(NAME, "t", false, "");
    let act = w.deps.acls.deny(ACL, 51, "203.0.113.7/32");
    commit(&w.deps, made, act, &mut out).await.unwrap();
    assert_eq!(out.actions[0].status, ActionStatus::Failed);
    assert!(out.actions[0].retryable);
    assert_eq!(w.deps.store.list("ssh-block/").await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let inv = Invocation::with_budget(Duration::from_secs(5));
    let swept = crate::sweep::sweep(&w.deps, &inv).await.unwrap();
    assert_eq!(
        actions(&swept),
        [(
            "remove_block".into(),
            "203.0.113.7".into(),
            ActionStatus::Skipped
        )]
    );
    assert!(w.deps.store.list("ssh-block/").await.unwrap().is_empty());
    let others = [
        (50, "192.0.2.1/32".to_string()),
        (51, "192.0.2.2/32".to_string()),
    ];
    assert_eq!(w.acls.entries(), others, "someone else's entries stay");
}

#[tokio::test]
async fn when_the_range_is_full_the_oldest_reflex_block_makes_way_and_is_reported() {
    let w = world(
        &[("REFLEX_NACL_RULE_RANGE", "50-51")],
        Arc::new(MemoryStore::default()),
    );
    for ip in ["203.0.113.1", "203.0.113.2"] {
        let o = deliver(&w, &burst(ip)).await.unwrap();
        assert_eq!(
            actions(&o),
            [("deny_source".into(), ip.into(), ActionStatus::Done)]
        );
    }
    let o = deliver(&w, &burst("203.0.113.3")).await.unwrap();
    assert_eq!(
        actions(&o),
        [
            (
                "remove_block".into(),
                "203.0.113.1".into(),
                ActionStatus::Done
            ),
            (
                "deny_source".into(),
                "203.0.113.3".into(),
                ActionStatus::Done
            ),
        ],
        "{o:?}"
    );
    assert_eq!(
        o.actions[0].reason,
        "rule range full: oldest block makes way"
    );
    assert_eq!(
        w.acls.entries(),
        [
            (50, "203.0.113.3/32".to_string()),
            (51, "203.0.113.2/32".to_string())
        ]
    );
    let records: Vec<String> = w
        .deps
        .store
        .list("ssh-block/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        records.iter().all(|k| !k.contains("203.0.113.1")) && records.len() == 2,
        "{records:?}"
    );
    let last = w.said.0.lock().unwrap().last().cloned().unwrap();
    let action = last.fields.iter().find(|(k, _)| k == "Action").unwrap();
    assert!(
        action.1.contains("rule range full") && action.1.contains("203.0.113.1/32"),
        "{action:?}"
    );
}

#[tokio::test]
async fn an_ipv6_source_is_blocked_as_its_64() {
    let w = world(&[], Arc::new(MemoryStore::default()));
    let mut b = burst("2001:db8:0:7::1");
    for (i, e) in b.log_events.iter_mut().enumerate() {
        // Each connection from another address of the same /64.
        e.message = e
            .message
            .replace("2001:db8:0:7::1", &format!("2001:db8:0:7::{:x}", i + 1));
    }
    let o = deliver(&w, &b).await.unwrap();
    assert_eq!(
        actions(&o),
        [(
            "deny_source".into(),
            "2001:db8:0:7::/64".into(),
            ActionStatus::Done
        )],
        "{o:?}"
    );
    assert_eq!(w.acls.entries(), [(50, "2001:db8:0:7::/64".to_string())]);
}
