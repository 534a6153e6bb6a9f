//! The contract every state store keeps, run against each real backend.

use std::sync::Arc;
use std::time::Duration;

use reflex_core::{Store, ThreadRef};

/// Claims, leases, confirmation, release, threads and counters, including a race of
/// ten claims on one key (exactly one wins). Keys are prefixed with `tag` so the
/// contract can share a table.
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
}
