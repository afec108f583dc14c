use super::*;
use crate::store::StoreError;

/// An hour, in milliseconds.
const HOUR: u64 = 3_600_000;
const UNBOUNDED: usize = usize::MAX;

#[tokio::test(start_paused = true)]
async fn expired_entries_are_never_returned_and_are_purged() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("k".into(), b"v".to_vec(), 10_000).await.unwrap();
    assert_eq!(store.get("k".into()).await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.ttl("k".into()).await.unwrap(), Some(10_000));

    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(store.get("k".into()).await.unwrap(), None);
    assert_eq!(store.ttl("k".into()).await.unwrap(), None);
    // Let the purge task run: the entry is gone from memory, not just hidden.
    tokio::task::yield_now().await;
    assert_eq!(store.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn many_short_lived_entries_do_not_pile_up() {
    let store = MemoryStore::new(UNBOUNDED);
    for i in 0..1000 {
        let ttl = 1 + i % 50;
        store
            .set(format!("k{i}"), b"v".to_vec(), ttl)
            .await
            .unwrap();
    }
    store.set("long".into(), b"v".to_vec(), HOUR).await.unwrap();
    tokio::time::advance(Duration::from_millis(60)).await;
    tokio::task::yield_now().await;
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn insert_writes_only_when_absent() {
    let store = MemoryStore::new(UNBOUNDED);
    assert!(store
        .insert("k".into(), b"first".to_vec(), HOUR)
        .await
        .unwrap());
    assert!(!store
        .insert("k".into(), b"second".to_vec(), HOUR)
        .await
        .unwrap());
    assert_eq!(
        store.get("k".into()).await.unwrap(),
        Some(b"first".to_vec())
    );
}

#[tokio::test(start_paused = true)]
async fn insert_may_replace_an_expired_entry() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("k".into(), b"old".to_vec(), 1_000).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(store
        .insert("k".into(), b"new".to_vec(), HOUR)
        .await
        .unwrap());
    assert_eq!(store.get("k".into()).await.unwrap(), Some(b"new".to_vec()));
}

#[tokio::test(start_paused = true)]
async fn set_replaces_value_and_expiry() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("k".into(), b"a".to_vec(), 1_000).await.unwrap();
    store.set("k".into(), b"b".to_vec(), HOUR).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(store.get("k".into()).await.unwrap(), Some(b"b".to_vec()));
}

#[tokio::test]
async fn delete_reports_whether_the_key_existed() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("k".into(), b"v".to_vec(), HOUR).await.unwrap();
    assert!(store.delete("k".into()).await.unwrap());
    assert!(!store.delete("k".into()).await.unwrap());
    assert_eq!(store.get("k".into()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn take_returns_a_live_value_once() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("k".into(), b"v".to_vec(), HOUR).await.unwrap();
    assert_eq!(store.take("k".into()).await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.take("k".into()).await.unwrap(), None);
    store.set("e".into(), b"v".to_vec(), 1_000).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.take("e".into()).await.unwrap(), None, "expired");
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn get_many_answers_in_order() {
    let store = MemoryStore::new(UNBOUNDED);
    store.set("a".into(), b"1".to_vec(), HOUR).await.unwrap();
    store.set("c".into(), b"3".to_vec(), HOUR).await.unwrap();
    let keys = ["a", "b", "c"].map(String::from);
    assert_eq!(
        store.get_many(keys.to_vec()).await.unwrap(),
        vec![Some(b"1".to_vec()), None, Some(b"3".to_vec())]
    );
}

#[tokio::test]
async fn limits_are_refused_before_any_write() {
    let store = MemoryStore::new(UNBOUNDED);
    let big = vec![0u8; crate::store::MAX_VALUE_BYTES + 1];
    let long_key = "k".repeat(crate::store::MAX_KEY_BYTES + 1);
    for result in [
        store.set("k".into(), big, HOUR).await,
        store.set(long_key, b"v".to_vec(), HOUR).await,
        store.set("k".into(), b"v".to_vec(), 0).await,
    ] {
        assert!(matches!(result, Err(StoreError::Rejected(_))));
    }
    assert_eq!(store.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_store_refuses_new_keys_until_entries_expire() {
    let store = MemoryStore::new(2);
    store.set("a".into(), b"1".to_vec(), 1_000).await.unwrap();
    store.set("b".into(), b"2".to_vec(), HOUR).await.unwrap();
    assert!(store.is_full());
    let refused = store
        .insert("c".into(), b"3".to_vec(), HOUR)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(why) if why.contains("tokenginx.max_entries: 2")),
        "{refused}"
    );
    // Existing keys may still change and go; nothing is lost.
    store.set("b".into(), b"2'".to_vec(), HOUR).await.unwrap();
    assert_eq!(store.get("a".into()).await.unwrap(), Some(b"1".to_vec()));
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert!(!store.is_full());
    assert!(store.insert("c".into(), b"3".to_vec(), HOUR).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn each_rate_limit_bucket_admits_its_burst_then_one_per_interval() {
    let store = MemoryStore::new(UNBOUNDED);
    let limit = RateLimit {
        interval: Duration::from_secs(1),
        burst: 2,
    };
    assert_eq!(store.charge("a", limit).await.unwrap(), None);
    assert_eq!(store.charge("a", limit).await.unwrap(), None);
    assert_eq!(
        store.charge("a", limit).await.unwrap(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        store.charge("b", limit).await.unwrap(),
        None,
        "its own bucket"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(store.charge("a", limit).await.unwrap(), None);
    assert_eq!(store.len(), 0, "buckets are not entries");
}

fn change(key: &str, value: Option<&str>) -> crate::contract::store::Change {
    crate::contract::store::Change {
        key: key.into(),
        value: value.map(|v| v.as_bytes().to_vec()),
        ttl_ms: HOUR,
    }
}

fn expect(key: &str, value: Option<&str>) -> Expect {
    Expect {
        key: key.into(),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

#[tokio::test]
async fn apply_changes_all_keys_when_every_expectation_holds_and_none_otherwise() {
    let store = MemoryStore::new(UNBOUNDED);
    store
        .set("g:{t}".into(), b"1".to_vec(), HOUR)
        .await
        .unwrap();
    store
        .set("old:{t}".into(), b"x".to_vec(), HOUR)
        .await
        .unwrap();
    let rotate = Transaction {
        expect: vec![expect("g:{t}", Some("1")), expect("new:{t}", None)],
        changes: vec![
            change("g:{t}", Some("2")),
            change("new:{t}", Some("y")),
            change("old:{t}", None),
        ],
    };
    assert!(store.apply(rotate.clone()).await.unwrap());
    assert_eq!(
        store.get("g:{t}".into()).await.unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(
        store.get("new:{t}".into()).await.unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(store.get("old:{t}".into()).await.unwrap(), None);
    // The same again: "g" now holds 2, so nothing changes.
    store
        .set("old:{t}".into(), b"x".to_vec(), HOUR)
        .await
        .unwrap();
    assert!(!store.apply(rotate).await.unwrap());
    assert_eq!(
        store.get("old:{t}".into()).await.unwrap(),
        Some(b"x".to_vec())
    );
}

#[tokio::test]
async fn a_full_store_refuses_a_whole_transaction() {
    let store = MemoryStore::new(2);
    store
        .set("a:{t}".into(), b"1".to_vec(), HOUR)
        .await
        .unwrap();
    let tx = Transaction {
        expect: vec![],
        changes: vec![
            change("a:{t}", Some("2")),
            change("b:{t}", Some("1")),
            change("c:{t}", Some("1")),
        ],
    };
    assert!(matches!(
        store.apply(tx).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(
        store.get("a:{t}".into()).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(store.len(), 1);
}

/// A key a transaction names twice, written twice or deleted then written, takes one
/// place: the count stays the shards' own, and the last place can still be filled.
#[tokio::test]
async fn a_key_named_twice_in_a_transaction_takes_one_place() {
    let store = MemoryStore::new(2);
    store
        .set("a:{t}".into(), b"1".to_vec(), HOUR)
        .await
        .unwrap();
    let twice = |first, second| Transaction {
        expect: vec![],
        changes: vec![change("b:{t}", first), change("b:{t}", second)],
    };
    assert!(store.apply(twice(Some("1"), Some("2"))).await.unwrap());
    assert_eq!(store.len(), 2);
    assert!(store.apply(twice(None, Some("3"))).await.unwrap());
    assert_eq!(store.len(), 2);
    assert!(store.is_full());
    assert!(store.delete("b:{t}".into()).await.unwrap());
    assert!(store.delete("a:{t}".into()).await.unwrap());
    assert_eq!(store.len(), 0);
    assert!(store.apply(twice(Some("1"), Some("2"))).await.unwrap());
    assert_eq!(
        store.get("b:{t}".into()).await.unwrap(),
        Some(b"2".to_vec())
    );
}

#[tokio::test]
async fn of_concurrent_compare_and_sets_on_one_value_exactly_one_applies() {
    let store = MemoryStore::new(UNBOUNDED);
    store
        .set("g:{t}".into(), b"0".to_vec(), HOUR)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let tx = Transaction {
                    expect: vec![expect("g:{t}", Some("0"))],
                    changes: vec![change("g:{t}", Some(&format!("{}", i + 1)))],
                };
                store.apply(tx).await
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap().unwrap() as usize;
    }
    assert_eq!(applied, 1);
}

#[tokio::test]
async fn concurrent_inserts_of_one_key_admit_exactly_one() {
    let store = MemoryStore::new(UNBOUNDED);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert("k".into(), format!("{i}").into_bytes(), HOUR)
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap().unwrap() as usize;
    }
    assert_eq!(admitted, 1);
}
