//! Many clients at once.

use crate::harness::*;
use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_tokens_are_distinct_active_then_all_revoked() {
    let host = Arc::new(Host::start());
    let issue: Vec<_> = (0..200)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.issue((DEMO_ID, DEMO_SECRET), None).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in issue {
        tokens.push(task.await.unwrap());
    }
    let distinct: HashSet<_> = tokens.iter().collect();
    assert_eq!(distinct.len(), 200);

    let check = |active: bool| {
        let tokens = tokens.clone();
        let host = host.clone();
        async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .map(|token| {
                    let host = host.clone();
                    tokio::spawn(async move { host.introspect(&token).await["active"] == true })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), active);
            }
        }
    };
    check(true).await;

    let revoke: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|token| {
            let host = host.clone();
            tokio::spawn(async move {
                host.post(
                    "/api/v1/oauth/revoke",
                    &[("token", &token)],
                    Some((DEMO_ID, DEMO_SECRET)),
                )
                .await
                .status
            })
        })
        .collect();
    for task in revoke {
        assert_eq!(task.await.unwrap(), 200);
    }
    check(false).await;
}
