//! The contract every state store keeps, run against each real backend.

use std::sync::Arc;
use std::time::Duration;

use reflex_core::{Store, ThreadRef};

/// Claims, leases, confirmation, release, threads, counters, records and owner-held
/// claims, including races of ten claims and of ten holds on one key (exactly one
/// wins each). Keys are prefixed with `tag` so the contract can share a table.
pub async fn store_contract(store: Arc<dyn Store>, tag: &str) {
    let k = format!("{tag}:delivery:sns:1");
    assert!(
        store.claim(&k, Duration::from_secs(60)).await.unwrap(),
        "first claim"
    );
    assert!(
        !store.claim(&k, Duration::from_secs(60)).await.unwrap(),
        "duplicate"
    );
    store.release(&k).await.unwrap();
    assert!(
        store.claim(&k, Duration::from_secs(60)).await.unwrap(),
        "released"
    );
    store.confirm(&k, Duration::from_secs(3600)).await.unwrap();
    assert!(
        !store.claim(&k, Duration::from_secs(60)).await.unwrap(),
        "confirmed"
    );
    store
        .release(&format!("{tag}:never-claimed"))
        .await
        .unwrap();

    // An expired lease can be taken over (epoch-second granularity: wait 2 s).
    let lease = format!("{tag}:delivery:lease");
    assert!(store.claim(&lease, Duration::from_secs(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        store.claim(&lease, Duration::from_secs(60)).await.unwrap(),
        "expired lease"
    );

    let t = format!("{tag}:thread:alarm:arn:aws:cloudwatch:us-east-1:1:alarm:a/b c'd");
    assert_eq!(store.thread(&t).await.unwrap(), None);
    let mut thread = ThreadRef {
        channel: "CALERTS".into(),
        ts: "1795536000.000001".into(),
        state: "firing".into(),
        since: "2026-11-24T10:20:15.123Z".into(),
    };
    store
        .save_thread(&t, &thread, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(store.thread(&t).await.unwrap().as_ref(), Some(&thread));
    thread.state = "resolved".into();
    store
        .save_thread(&t, &thread, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(store.thread(&t).await.unwrap(), Some(thread));

    let c = format!("{tag}:burst:alice:1");
    for want in 1..=3 {
        assert_eq!(
            store.count(&c, Duration::from_secs(600)).await.unwrap(),
            want
        );
    }
    assert_eq!(
        store
            .count(&format!("{tag}:burst:bob:1"), Duration::from_secs(600))
            .await
            .unwrap(),
        1
    );

    // Records: put, replace, get, and a prefix listing that skips other keys and
    // expired records.
    let day = Duration::from_secs(86_400);
    let r = |n: &str| format!("{tag}:drain/{n}");
    assert_eq!(store.get(&r("i-1")).await.unwrap(), None);
    store.put(&r("i-1"), r#"{"n":1}"#, day).await.unwrap();
    store
        .put(&r("i-1"), r#"{"n":2,"q":"a'b"}"#, day)
        .await
        .unwrap();
    store.put(&r("i-2"), "{}", day).await.unwrap();
    store
        .put(&format!("{tag}:drain0"), "{}", day)
        .await
        .unwrap();
    store
        .put(&r("i-3"), "{}", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        store.get(&r("i-1")).await.unwrap().as_deref(),
        Some(r#"{"n":2,"q":"a'b"}"#)
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.get(&r("i-3")).await.unwrap(), None, "expired");
    let listed = store.list(&format!("{tag}:drain/")).await.unwrap();
    assert_eq!(
        listed,
        vec![
            (r("i-1"), r#"{"n":2,"q":"a'b"}"#.to_string()),
            (r("i-2"), "{}".to_string())
        ]
    );
    store.release(&r("i-2")).await.unwrap();
    assert_eq!(store.list(&format!("{tag}:drain/")).await.unwrap().len(), 1);

    let race = format!("{tag}:delivery:race");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = Arc::clone(&store);
        let key = race.clone();
        tasks.push(tokio::spawn(async move {
            s.claim(&key, Duration::from_secs(60)).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one of ten racing claims wins");

    holds(&store, tag).await;
}

/// Owner-held claims (`hold` / `let_go`): the drain's slots.
async fn holds(store: &Arc<dyn Store>, tag: &str) {
    let minute = Duration::from_secs(60);
    let slot = format!("{tag}:lease/pool-a/0");
    assert!(
        store.hold(&slot, "vm-1", minute).await.unwrap(),
        "a free key is held"
    );
    assert_eq!(
        store.get(&slot).await.unwrap().as_deref(),
        Some("vm-1"),
        "a held key shows its owner"
    );
    assert!(
        !store.hold(&slot, "vm-2", minute).await.unwrap(),
        "another owner cannot take a live hold"
    );
    assert!(
        !store.let_go(&slot, "vm-2").await.unwrap(),
        "another owner cannot let go of a live hold"
    );
    assert_eq!(
        store.get(&slot).await.unwrap().as_deref(),
        Some("vm-1"),
        "a refused let_go leaves the key held by its owner"
    );
    assert!(
        store.hold(&slot, "vm-1", minute).await.unwrap(),
        "the owner renews its hold"
    );
    assert!(
        store.let_go(&slot, "vm-1").await.unwrap(),
        "the owner lets go"
    );
    assert_eq!(
        store.get(&slot).await.unwrap(),
        None,
        "a key let go is gone"
    );
    assert!(
        store.let_go(&slot, "vm-1").await.unwrap(),
        "letting go of an absent key is done already"
    );
    assert!(
        store.hold(&slot, "vm-2", minute).await.unwrap(),
        "another owner holds a key once it is let go"
    );
    store
        .put(&format!("{tag}:lease/pool-a0"), "{}", minute)
        .await
        .unwrap();
    assert_eq!(
        store.list(&format!("{tag}:lease/pool-a/")).await.unwrap(),
        vec![(slot.clone(), "vm-2".to_string())],
        "a listing shows holds with their owners"
    );

    let claimed = format!("{tag}:lease/pool-b/0");
    assert!(store.claim(&claimed, minute).await.unwrap());
    assert!(
        !store.hold(&claimed, "vm-1", minute).await.unwrap(),
        "a live claim without an owner cannot be held"
    );
    assert!(
        !store.let_go(&claimed, "vm-1").await.unwrap(),
        "a live claim without an owner cannot be let go of"
    );

    // Expiry (epoch-second granularity: wait 2 s).
    let second = Duration::from_secs(1);
    let renewed = format!("{tag}:lease/pool-c/0");
    let lapsed = format!("{tag}:lease/pool-c/1");
    let lapsed_unclaimed = format!("{tag}:lease/pool-c/2");
    for k in [&renewed, &lapsed, &lapsed_unclaimed] {
        assert!(store.hold(k, "vm-1", second).await.unwrap());
    }
    assert!(
        store.hold(&renewed, "vm-1", minute).await.unwrap(),
        "the owner renews a short hold for longer"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        !store.hold(&renewed, "vm-2", minute).await.unwrap(),
        "a renewed hold outlives its first lease"
    );
    assert_eq!(
        store.get(&lapsed).await.unwrap(),
        None,
        "an expired hold shows no owner"
    );
    assert!(
        store.hold(&lapsed, "vm-2", minute).await.unwrap(),
        "another owner takes an expired hold"
    );
    assert!(
        !store.let_go(&lapsed, "vm-1").await.unwrap(),
        "the former owner cannot let go of a hold taken over after expiry"
    );
    assert_eq!(
        store.get(&lapsed).await.unwrap().as_deref(),
        Some("vm-2"),
        "the new owner keeps a hold taken over after expiry"
    );
    assert!(
        store.let_go(&lapsed_unclaimed, "vm-2").await.unwrap(),
        "letting go of someone else's expired hold is done already"
    );
    assert!(
        store.let_go(&lapsed_unclaimed, "vm-1").await.unwrap(),
        "the owner letting go of its expired hold is done already"
    );

    let race = format!("{tag}:lease/race/0");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = Arc::clone(store);
        let key = race.clone();
        tasks.push(tokio::spawn(async move {
            s.hold(&key, &format!("vm-{i}"), Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(
        wins, 1,
        "exactly one of ten owners racing to hold a key wins"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_keeps_the_contract() {
        store_contract(Arc::new(reflex_core::store::MemoryStore::default()), "mem").await;
    }
}
